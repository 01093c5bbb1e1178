"""Lima's shortcut flags become the `--set` edits Lima's editflags.go writes, and apply as Lima's do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import UsageError
from limapy.expr.editflags import EditFlags, to_edits
from limapy.expr.edits import apply


def applied(flags: EditFlags, data: dict[str, Any] | None = None, *, existing: bool = False) -> dict[str, Any]:
    d = data if data is not None else {}
    for e in to_edits(flags, existing=existing):
        apply(d, e.expr)
    return d


def test_cpus_memory_disk_keep_their_origins() -> None:
    edits = to_edits(EditFlags(cpus=2, memory=1.5, disk=20))
    assert [(e.expr, e.origin) for e in edits] == [
        (".cpus = 2", "--cpus 2"), ('.memory = "1.5GiB"', "--memory 1.5"), ('.disk = "20GiB"', "--disk 20")]


def test_mount_is_prepended_in_reverse_order_and_tilde_expanded() -> None:
    d = applied(EditFlags(mounts=["~/a:w,/b"], mount_writable=False), {"mounts": [{"location": "/old"}]})
    home = str(Path.home())
    assert [m["location"] for m in d["mounts"]] == ["/b", f"{home}/a", "/old"]
    assert d["mounts"][1] == {"location": f"{home}/a", "mountPoint": f"{home}/a", "writable": True}
    assert d["mounts"][0]["writable"] is False


def test_mount_only_none_writable_type() -> None:
    assert applied(EditFlags(mount_only=["/x"]), {"mounts": [{"location": "/old"}]})["mounts"][0]["location"] == "/x"
    assert applied(EditFlags(mount_none=True), {"mounts": [{"location": "/old"}]})["mounts"] is None
    d = applied(EditFlags(mount_writable=True, mount_type="virtiofs"), {"mounts": [{"location": "/a"}]})
    assert d == {"mounts": [{"location": "/a", "writable": True}], "mountType": "virtiofs"}
    with pytest.raises(UsageError, match="cannot be combined"):
        to_edits(EditFlags(mount_none=True, mounts=["/a"]))


def test_port_forward_network_dns_video_ssh_port_shell() -> None:
    d = applied(EditFlags(port_forwards=["8080:80", "2222:22,static=true"], networks=["lima:shared", "vzNAT"],
                          dns=["1.1.1.1,8.8.8.8"], video=True, ssh_port=60022, shell="/bin/zsh", vm_type="qemu"))
    assert d["portForwards"] == [
        {"guestPort": 80, "hostPort": 8080}, {"guestPort": 22, "hostPort": 2222, "static": True}]
    assert d["networks"] == [{"lima": "shared"}, {"vzNAT": True}]
    assert d["dns"] == ["1.1.1.1", "8.8.8.8"] and d["hostResolver"] == {"enabled": False}
    assert d["video"] == {"display": "default"} and d["ssh"] == {"localPort": 60022}
    assert d["user"] == {"shell": "/bin/zsh"} and d["vmType"] == "qemu"
    assert applied(EditFlags(video=False))["video"] == {"display": "none"}


@pytest.mark.parametrize("bad", ["8080", "a:80", "80:80,static=maybe", "80:80,udp"])
def test_bad_port_forward(bad: str) -> None:
    with pytest.raises(UsageError, match="--port-forward"):
        to_edits(EditFlags(port_forwards=[bad]))


@pytest.mark.parametrize(("flags", "match"), [
    (EditFlags(networks=["bridged"]), "--network"), (EditFlags(params=["NOEQUALS"]), "--param"),
    (EditFlags(ssh_port=70000), "--ssh-port"), (EditFlags(containerd="docker"), "--containerd"),
])  # fmt: skip
def test_bad_values(flags: EditFlags, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        to_edits(flags)


def test_param_must_exist() -> None:
    (edit,) = to_edits(EditFlags(params=["K=v=w"]))
    assert edit.expr == '.param["K"] = "v=w"' and edit.must_exist


def test_create_only_flags() -> None:
    f = EditFlags(arch="aarch64", plain=True, containerd="user+system", cpus=1)
    d = applied(f)
    assert d == {"cpus": 1, "arch": "aarch64", "plain": True, "containerd": {"system": True, "user": True}}
    assert applied(f, existing=True) == {"cpus": 1}
    assert f.given_create_only() == ["--arch", "--containerd", "--plain"]


def test_set_comes_last_and_wins() -> None:
    assert applied(EditFlags(cpus=2, sets=[".cpus = 4"])) == {"cpus": 4}
