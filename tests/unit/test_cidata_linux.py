"""The NoCloud seed: user-data content (parsed as YAML), meta-data, mounts, provision layout and
template variables, hostile strings, and the ISO read back with pycdlib."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import pycdlib
import pytest
from ruamel.yaml import YAML

from limapy.base.errors import LimapyError
from limapy.base.names import mount_tag
from limapy.config.model import Spec
from limapy.guest.linux.seed import build_seed, write_seed_iso
from limapy.guest.render import expand_vars
from tests.golden import compare

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "cidata"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden limapy-test"
HOSTILE = "</FullName><Foo>&\"' $(id) `id` \\"


def cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "os": "Linux",
        "user": {"name": "alice", "comment": "Alice Example", "uid": 501, "home": "/home/alice.guest",
                 "shell": "/bin/bash", "passwordlessSudo": True},
        "timezone": "Europe/Berlin",
        "mountType": "9p",
        "mounts": [
            {"location": "/home/alice", "mountPoint": "/home/alice", "writable": False,
             "9p": {"securityModel": "none", "protocolVersion": "9p2000.L", "msize": "128KiB", "cache": "fscache"}},
            {"location": "/tmp/lima", "mountPoint": "/tmp/lima", "writable": True,
             "9p": {"securityModel": "none", "protocolVersion": "9p2000.L", "msize": "128KiB", "cache": "mmap"}},
        ],
        "param": {"GREETING": "hello"},
        "env": {"FOO": "bar"},
        "provision": [
            {"mode": "system", "script": "#!/bin/sh\necho {{.Param.GREETING}} from {{ .Name }}\n"},
            {"mode": "user", "script": "#!/bin/sh\necho {{.User}} {{.Home}} {{.UID}} {{.Hostname}}\n"},
            {"mode": "boot", "script": "#!/bin/sh\necho boot\n"},
            {"mode": "data", "path": "/etc/{{.Param.GREETING}}.conf", "content": "x=1\n", "permissions": "600"},
            {"mode": "dependency", "script": "#!/bin/sh\necho dep\n", "skipDefaultDependencyResolution": True},
        ],
    }
    base.update(over)
    return base


def seed(c: dict[str, Any] | None = None, **kw: Any) -> dict[str, bytes]:
    args: dict[str, Any] = dict(name="debian", iid="iid-1700000000", ssh_pubkeys=[KEY], mac="52:55:55:12:34:56")
    args.update(kw)
    return build_seed(Spec.from_cfg(c or cfg()), **args)


def yaml_load(data: bytes) -> Any:
    return YAML(typ="safe").load(data.decode())


def test_user_data() -> None:
    files = seed()
    ud = files["user-data"]
    assert ud.startswith(b"#cloud-config\n")
    doc = yaml_load(ud)
    assert doc["hostname"] == "lima-debian"
    assert doc["manage_etc_hosts"] == "localhost"
    assert doc["timezone"] == "Europe/Berlin"
    assert doc["growpart"] == {"mode": "auto", "devices": ["/"]}
    (user,) = doc["users"]
    assert user["name"] == "alice" and user["uid"] == 501 and user["gecos"] == "Alice Example"
    assert user["homedir"] == "/home/alice.guest" and user["shell"] == "/bin/bash"
    assert user["sudo"] == "ALL=(ALL) NOPASSWD:ALL" and user["lock_passwd"] is True
    assert user["ssh_authorized_keys"] == [KEY]
    (wf,) = doc["write_files"]
    assert wf["path"] == "/var/lib/cloud/scripts/per-boot/00-lima.boot.sh" and wf["permissions"] == "0755"
    per_boot = base64.b64decode(wf["content"]).decode()
    assert "/dev/disk/by-label/cidata" in per_boot and 'exec "$LIMA_CIDATA_MNT/boot.sh"' in per_boot
    assert doc["mounts"] == [
        [mount_tag("/home/alice", "/home/alice"), "/home/alice", "9p",
         "ro,trans=virtio,version=9p2000.L,msize=131072,cache=fscache,nofail", "0", "0"],
        [mount_tag("/tmp/lima", "/tmp/lima"), "/tmp/lima", "9p",
         "rw,trans=virtio,version=9p2000.L,msize=131072,cache=mmap,nofail", "0", "0"],
    ]
    early, bootcmd = doc["bootcmd"]
    assert "systemd-run" in early and "After=cloud-init.service" in early
    assert base64.b64encode(b"#!/bin/sh\necho boot\n").decode() in bootcmd
    assert base64.b64encode(b"PARAM_GREETING=hello\n").decode() in bootcmd


def test_golden_seed() -> None:
    files = seed()
    for name in ("user-data", "meta-data", "network-config", "lima.env", "param.env"):
        golden = GOLDEN / f"linux-{name}"
        compare(f"cidata/{golden.name}", files[name])


def test_meta_and_network() -> None:
    files = seed(iid="iid-42")
    assert yaml_load(files["meta-data"]) == {"instance-id": "iid-42", "local-hostname": "lima-debian"}
    net = yaml_load(files["network-config"])
    assert net["version"] == 2
    assert net["ethernets"]["eth0"]["match"] == {"macaddress": "52:55:55:12:34:56"}
    assert net["ethernets"]["eth0"]["dhcp4"] is True


def test_mount_tag_matches_lima() -> None:
    expected = "lima-" + hashlib.sha256(b"/home/alice:/home/alice").digest()[:8].hex()
    assert mount_tag("/home/alice", "/home/alice") == expected
    assert len(expected) == 21
    assert mount_tag("/a", "/b") != mount_tag("/a", "/c")


def test_plain_and_other_mount_types_have_no_mounts() -> None:
    assert "mounts" not in yaml_load(seed(cfg(plain=True))["user-data"])
    assert "mounts" not in yaml_load(seed(cfg(mountType="reverse-sshfs"))["user-data"])
    vf = yaml_load(seed(cfg(mountType="virtiofs"))["user-data"])["mounts"]
    assert vf[0][2:4] == ["virtiofs", "ro,nofail"]


def test_provision_layout_and_vars() -> None:
    files = seed()
    assert files["provision.system/00000000"] == b"#!/bin/sh\necho hello from debian\n"
    assert files["provision.user/00000001"] == b"#!/bin/sh\necho alice /home/alice.guest 501 lima-debian\n"
    assert "provision.boot/00000002" not in files
    assert files["provision.data/00000003"] == b"x=1\n"
    assert files["provision.dependency/00000004"] == b"#!/bin/sh\necho dep\n"
    env = dict(line.split("=", 1) for line in files["lima.env"].decode().splitlines())
    assert env["LIMA_CIDATA_DATAFILE_00000003_PATH"] == "/etc/hello.conf"
    assert env["LIMA_CIDATA_DATAFILE_00000003_PERMISSIONS"] == "600"
    assert env["LIMA_CIDATA_DATAFILE_00000003_OWNER"] == "root:root"
    assert env["LIMA_CIDATA_IID"] == "iid-1700000000"
    assert env["LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION"] == "1"
    assert files["param.env"] == b"PARAM_GREETING=hello\n"


def test_boot_script_order_and_marker_last() -> None:
    boot = seed()["boot.sh"].decode()
    positions = [boot.index(f'"$LIMA_CIDATA_MNT"/provision.{m}/*') for m in ("dependency", "data", "system", "user")]
    assert positions == sorted(positions)
    lines = [ln for ln in boot.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert "/run/lima-boot-done" in lines[-2] and "$LIMA_CIDATA_IID" in lines[-2]
    assert lines[-1] == 'exit "$CODE"'
    assert 'sudo -iu "$LIMA_CIDATA_USER"' in boot


def test_expand_vars_forms() -> None:
    fields = {"Name": "n", "Hostname": "lima-n", "User": "u", "Home": "/h", "UID": "1"}
    assert expand_vars("a {{.Name}} {{ .Param.K }} b", fields, {"K": "v"}, where="t") == "a n v b"
    assert expand_vars("a  {{- .User -}}  b", fields, {}, where="t") == "aub"
    # Lima keeps a text that does not expand cleanly as it is, whole
    docker = "docker ps --format '{{.State}}' {{.Name}}"
    assert expand_vars(docker, fields, {}, where="t") == docker
    assert expand_vars("{{.Param.MISSING}} {{.Name}}", fields, {}, where="t") == "{{.Param.MISSING}} {{.Name}}"
    assert expand_vars("{{if .Name}}x{{end}}", fields, {}, where="t") == "{{if .Name}}x{{end}}"


def test_hostile_strings_are_data() -> None:
    c = cfg(param={"EVIL": HOSTILE, "GREETING": "hello"})
    c["user"]["comment"] = HOSTILE + "\x07"
    c["provision"].append({"mode": "boot", "script": "#!/bin/sh\necho \"$(id)\" `id` 'EOF'\nEOF\n"})
    c["provision"].append({"mode": "system", "script": "#!/bin/sh\necho '{{.Param.EVIL}}'\n"})
    files = seed(c)
    doc = yaml_load(files["user-data"])
    assert doc["users"][0]["gecos"] == HOSTILE  # control character stripped, the rest intact
    assert files["provision.system/00000006"] == f"#!/bin/sh\necho '{HOSTILE}'\n".encode()
    assert files["param.env"].decode().splitlines() == ["PARAM_EVIL=" + HOSTILE, "PARAM_GREETING=hello"]
    early, bootcmd = doc["bootcmd"]
    assert "systemd-run" in early and "After=cloud-init.service" in early
    assert "$(id)" not in bootcmd and "EOF" not in bootcmd.replace("base64", "")


def test_rejects() -> None:
    with pytest.raises(LimapyError):
        seed(ssh_pubkeys=[])
    with pytest.raises(LimapyError):
        seed(cfg(param={"X": "two\nlines"}))
    with pytest.raises(LimapyError):
        seed(cfg(provision=[{"mode": "data", "path": "relative", "content": ""}]))
    with pytest.raises(LimapyError):
        seed(cfg(user={"name": "root", "uid": 0, "home": "/root", "shell": "/bin/sh"}))


def test_seed_iso_readback(tmp_path: Path) -> None:
    out = tmp_path / "cidata.iso"
    write_seed_iso(out, Spec.from_cfg(cfg()), name="debian", iid="iid-1", ssh_pubkeys=[KEY], mac="52:55:55:12:34:56")
    data = out.read_bytes()
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        assert iso.has_rock_ridge() and iso.has_joliet()
        assert iso.pvd.volume_identifier.rstrip(b" ") == b"cidata"
        for name in ("user-data", "meta-data", "network-config", "boot.sh"):
            for key in ("rr_path", "joliet_path"):
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, **{key: "/" + name})
                assert buf.getvalue()
        rec = iso.get_record(rr_path="/boot.sh")
        assert rec.rock_ridge.get_file_mode() & 0o111
    finally:
        iso.close()


def test_yq_steps_on_the_seed() -> None:
    """Lima's layout for `mode: yq` (cidata.go line 351 and 582, lima.env lines 29-33): the expression in
    provision.yq/%08d, format/owner/path/permissions in lima.env; limapy adds its yq tool under util/."""
    c = cfg()
    c["provision"] = [{"mode": "yq", "path": "/home/alice.guest/.config/docker/daemon.json", "format": "auto",
                       "expression": ".features.cdi = true", "owner": "alice", "permissions": "644"},
                      {"mode": "yq", "path": "/etc/o.conf", "format": "ini", "expression": ".S.U = 1",
                       "owner": "root:root", "permissions": "600"}]  # fmt: skip
    files = seed(c)
    assert files["provision.yq/00000000"] == b".features.cdi = true"
    env = files["lima.env"].decode().splitlines()
    assert "LIMA_CIDATA_YQ_PROVISION_00000000_FORMAT=auto" in env
    assert "LIMA_CIDATA_YQ_PROVISION_00000000_OWNER=alice" in env
    assert "LIMA_CIDATA_YQ_PROVISION_00000000_PATH=/home/alice.guest/.config/docker/daemon.json" in env
    assert "LIMA_CIDATA_YQ_PROVISION_00000001_PERMISSIONS=600" in env
    assert {"util/limapy-yq", "util/limapy/__init__.py", "util/limapy/expr/yqlite.py"} <= set(files)
    boot = files["boot.sh"].decode()
    order = [boot.index(f'"$LIMA_CIDATA_MNT"/provision.{m}/*') for m in ("data", "yq", "system")]
    assert order == sorted(order)  # Lima's boot.sh: data files, then yq edits, then system scripts
    assert "util/limapy-yq" not in "".join(seed())  # no yq step: no tool on the seed
