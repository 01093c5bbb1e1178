"""Hardening, second round (issue 24): nothing limapy writes in place is reached through a link it did not
make. Symbolic links under `_disks` (item 5), a hard link planted as an instance file (item 15), and a host
socket that climbs out of the instance's `sock/` directory (item 12). Real files, real qemu-img."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from limapy.base.errors import InstanceError
from limapy.instance import disk, store
from tests.security.conftest import Server, instances, limapy, one_error, qcow2, template

GiB = 1 << 30


def _made(home: Path, tmp_path: Path, name: str = "a", extra: str = "") -> Path:
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")), extra)
    cp = limapy("create", "--name", name, str(t))
    assert cp.returncode == 0, cp.stderr
    return home / name


# --- 5. `_disks/NAME` and `_disks/NAME/datadisk` are never followed through a link ---------------------------


@pytest.mark.parametrize("level", ["dir", "datadisk"])
def test_disk_links_are_refused_and_the_outside_image_untouched(home: Path, tmp_path: Path, level: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = qcow2(outside / "datadisk", size="64M")
    disks = home / "_disks"
    disks.mkdir(mode=0o700)
    if level == "dir":
        (disks / "d").symlink_to(outside)
    else:
        (disks / "d").mkdir(mode=0o700)
        (disks / "d" / "datadisk").symlink_to(victim)
    for args in (("resize", "d", "--size", "1GiB"), ("delete", "-f", "d"), ("unlock", "d"),
                 ("create", "d", "--size", "1GiB")):  # fmt: skip
        err = one_error(limapy("disk", *args))
        assert "symbolic link" in err and "limapy does not follow links" in err, (args, err)
    assert disk.virtual_size(victim) == 64 << 20  # not grown through the link
    assert victim.exists() and outside.is_dir()
    assert "d" not in limapy("disk", "list").stdout  # not listed as one of limapy's disks
    with pytest.raises(InstanceError, match="symbolic link"):
        disk.claim_additional_disk("d", home / "a")  # a boot neither claims it (nor hands it to QEMU)
    assert not (outside / "in_use_by").exists()


def test_a_boot_refuses_a_linked_additional_disk(home: Path, tmp_path: Path) -> None:
    assert limapy("disk", "create", "d", "--size", "64MiB").returncode == 0
    _made(home, tmp_path, extra="additionalDisks: [d]\n")
    victim = qcow2(tmp_path / "victim.qcow2")
    (home / "_disks" / "d" / "datadisk").unlink()
    (home / "_disks" / "d" / "datadisk").symlink_to(victim)
    assert "symbolic link" in one_error(limapy("start", "--dry-run", "a"))


def test_a_hard_linked_datadisk_is_refused(home: Path, tmp_path: Path) -> None:
    victim = qcow2(tmp_path / "victim.qcow2", size="64M")
    (home / "_disks" / "d").mkdir(parents=True, mode=0o700)
    os.link(victim, home / "_disks" / "d" / "datadisk")
    assert "hard link" in one_error(limapy("disk", "resize", "d", "--size", "1GiB"))
    assert disk.virtual_size(victim) == 64 << 20


# --- 15. a hard link planted as an instance file is refused, never truncated ---------------------------------


def test_hard_linked_lock_is_not_truncated(home: Path, tmp_path: Path) -> None:
    inst = _made(home, tmp_path)
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    (inst / "lock").unlink(missing_ok=True)
    os.link(victim, inst / "lock")
    for args in (("delete", "a"), ("start", "--dry-run", "a"), ("edit", "--set", ".cpus = 2", "a")):
        err = one_error(limapy(*args))
        assert "lock has 2 names (a hard link)" in err, (args, err)
    assert victim.read_text() == "precious\n"
    assert instances(home) == ["a"]


@pytest.mark.parametrize("name", ["lock", "ha.stderr.log", "qemu.stderr.log"])
def test_files_written_in_place_refuse_hard_links(tmp_path: Path, name: str) -> None:
    """Below the check at lock time (a link made after it): the open itself refuses, before any truncation."""
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    inst = store.Instance("a", tmp_path / "a")
    inst.dir.mkdir(mode=0o700)
    os.link(victim, inst.dir / name)
    with pytest.raises(InstanceError, match="hard link"):
        os.close(store.open_private(inst.dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
    if name == "lock":
        with pytest.raises(InstanceError, match="hard link"), store.lock(inst, timeout=0):
            pass
    assert victim.read_text() == "precious\n"
    (inst.dir / name).unlink()
    os.close(store.open_private(inst.dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))  # a file of its own: fine


def test_kernel_and_initrd_stay_hard_links_into_the_cache(tmp_path: Path) -> None:
    """limapy's own hard links (read-only boot files shared with the download cache) are not refused."""
    inst = store.Instance("a", tmp_path / "a")
    inst.dir.mkdir()
    (tmp_path / "vmlinuz").write_bytes(b"k")
    os.link(tmp_path / "vmlinuz", inst.kernel)
    store.check_links(inst)
    os.link(tmp_path / "vmlinuz", inst.serial_log)
    with pytest.raises(InstanceError, match=r"serial\.log has 3 names"):
        store.check_links(inst)


# --- 12. a host socket stays inside the instance directory --------------------------------------------------


@pytest.mark.parametrize("sock", ["../disk", "../lima.yaml", "x/../../disk", "{{.Dir}}/sock/../disk"])
def test_host_socket_with_dotdot_is_refused_by_validate(home: Path, tmp_path: Path, sock: str) -> None:
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")),
                 f"portForwards:\n- guestSocket: /run/x.sock\n  hostSocket: '{sock}'\n")  # fmt: skip
    for args in (("validate", str(t)), ("create", "--name", "a", str(t))):
        err = one_error(limapy(*args))
        assert f"{t}:7:" in err and "portForwards[0].hostSocket` must not contain `..`" in err, err
    assert instances(home) == []


def test_host_socket_naming_an_instance_file_is_refused(home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")),
                 "portForwards:\n- guestSocket: /run/x.sock\n  hostSocket: '{{.Dir}}/qmp.sock'\n")  # fmt: skip
    err = one_error(limapy("create", "--name", "a", str(t)))
    assert "is `qmp.sock`, a file limapy keeps in the instance directory" in err
    assert instances(home) == []


def test_forwarder_never_replaces_a_file_that_is_no_socket(tmp_path: Path) -> None:
    from limapy.agent.forwards import _replaceable

    f = tmp_path / "disk"
    f.write_bytes(b"the guest's disk")
    assert not _replaceable(f)
    assert _replaceable(tmp_path / "nothing-there")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(tmp_path / "old.sock"))
        assert _replaceable(tmp_path / "old.sock")  # a stale socket of an earlier forward may go
    finally:
        s.close()


@pytest.mark.parametrize("sock", ["/tmp/x.sock", "{{.Home}}/x.sock", "{{.Dir}}/disk", "{{.Dir}}/sock/../disk"])
def test_network_template_sockets_stay_in_sock_dir(home: Path, tmp_path: Path, server: Server, sock: str) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    server.add("/img.qcow2", img.read_bytes())
    body = (f"images: [{{location: '{server.base}/img.qcow2', arch: x86_64}}]\narch: x86_64\n"
            f"portForwards:\n- guestSocket: /run/x.sock\n  hostSocket: '{sock}'\n")  # fmt: skip
    url = server.add("/t.yaml", body.encode(), content_type="text/plain")
    err = one_error(limapy("create", "--name", "r", url))
    assert (f"refusing the host socket `{sock}`" in err and "came from the network" in err) or "`..`" in err, err
    assert instances(home) == []
    for ok in ("docker.sock", "{{.Dir}}/sock/docker.sock"):
        body = body.replace(f"'{sock}'", f"'{ok}'")
        sock = ok
        url = server.add(f"/ok-{len(ok)}.yaml", body.encode(), content_type="text/plain")
        cp = limapy("validate", url)
        assert cp.returncode == 0, cp.stderr
