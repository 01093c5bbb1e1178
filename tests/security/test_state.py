"""Hardening, second round (issue 24): the state an instance owns is the one it gets back. Snapshots are
found by their tag and never by QEMU's ID (item 10); a suspended instance keeps its saved memory valid and
its additional disks to itself (item 13); a renamed instance still holds its disks (item 14). Real qemu-img
on real qcow2 files; a suspended instance is its `suspend.json` record (what `list` and `start` read)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from limapy.instance import disk
from tests.procs import sleeper
from tests.security.conftest import limapy, one_error, qcow2, template


def _made(home: Path, tmp_path: Path, name: str = "a", extra: str = "") -> Path:
    img = tmp_path / "img.qcow2"
    if not img.exists():
        qcow2(img)
    cp = limapy("create", "--name", name, str(template(tmp_path, str(img), extra)))
    assert cp.returncode == 0, cp.stderr
    return home / name


def _write(inst: Path, byte: int) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {byte} 0 64k", str(inst / "disk")], check=True,
                   capture_output=True)  # fmt: skip


def _holds(inst: Path, byte: int) -> bool:
    cp = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"read -P {byte} 0 64k", str(inst / "disk")],
                        capture_output=True, text=True, check=False)  # fmt: skip
    return cp.returncode == 0 and "Pattern verification failed" not in cp.stdout


def _tags(inst: Path) -> list[str]:
    return [s["name"] for s in json.loads(subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(inst / "disk")], capture_output=True, check=True,
    ).stdout).get("snapshots", [])]  # fmt: skip


# --- 10. a snapshot is found by its tag, never by QEMU's ID -------------------------------------------------


def test_all_digit_tags_are_refused_at_create(home: Path, tmp_path: Path) -> None:
    inst = _made(home, tmp_path)
    assert limapy("snapshot", "create", "a", "--tag", "clean").returncode == 0
    err = one_error(limapy("snapshot", "create", "a", "--tag", "1"))
    assert "all digits" in err and "ID" in err
    assert _tags(inst) == ["clean"]


def test_tag_1_restores_the_snapshot_named_1_not_id_1(home: Path, tmp_path: Path) -> None:
    """An image that already has a snapshot *named* `1` (made by qemu-img, Lima or an older limapy) besides
    snapshot ID 1 (`clean`): apply and delete act on the one named 1."""
    inst = _made(home, tmp_path)
    _write(inst, 0x11)
    assert limapy("snapshot", "create", "a", "--tag", "clean").returncode == 0  # ID 1
    _write(inst, 0x22)
    subprocess.run(["qemu-img", "snapshot", "-c", "1", str(inst / "disk")], check=True)  # ID 2, named "1"
    _write(inst, 0x33)
    cp = limapy("snapshot", "apply", "a", "--tag", "1")
    assert cp.returncode == 0, cp.stderr
    assert _holds(inst, 0x22), "tag 1 restored another snapshot (QEMU's ID 1 is `clean`)"
    cp = limapy("snapshot", "delete", "a", "--tag", "1")
    assert cp.returncode == 0, cp.stderr
    assert _tags(inst) == ["clean"]
    listing = limapy("snapshot", "list", "a").stdout.splitlines()
    assert listing[1].split()[:2] == ["1", "clean"]  # QEMU's own ID in the ID column


def test_each_qemu_lookup_is_handed_what_only_the_target_answers_to() -> None:
    from limapy.driver import Snapshot
    from limapy.driver.qemu.snapshots import address

    a, b, c = Snapshot("clean", 0, 0, 0, id="1"), Snapshot("1", 0, 0, 0, id="2"), Snapshot("x", 0, 0, 0, id="3")
    snaps = [a, b, c]
    assert address(snaps, b, "id") == "2"  # qemu-img -a: by ID first
    assert address(snaps, b, "name") == "1"  # qemu-img -d, delvm: by name only
    assert address(snaps, b, "name, then id") is None  # loadvm 1 would go to ID 1 (`clean`): refused
    assert address(snaps, c, "name, then id") == "x"  # a tag limapy accepts at create is never an ID
    dup = [Snapshot("x", 0, 0, 0, id="1"), Snapshot("x", 0, 0, 0, id="2")]  # made by hand: names not unique
    assert address(dup, dup[1], "name") is None and address(dup, dup[1], "id") == "2"


def _paused_qemu(inst: Path) -> subprocess.Popen[bytes]:
    """The instance's machine as limapy would run it, for snapshots: QEMU with its disk, its monitor and the
    marks limapy checks, paused before the first instruction (no guest boots: `loadvm` needs no OS)."""
    argv = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "64", "-S", "-nodefaults", "-display", "none",
            "-drive", f"file={inst / 'disk'},if=virtio,format=qcow2",
            "-qmp", f"unix:{inst / 'qmp.sock'},server=on,wait=off",
            "-name", f"limapy-{inst.name}", "-pidfile", str(inst / "qemu.pid")]  # fmt: skip
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not ((inst / "qmp.sock").exists() and (inst / "qemu.pid").exists()):
        assert p.poll() is None and time.monotonic() < deadline, "QEMU did not start"
        time.sleep(0.05)
    return p


def _stop(qemu: subprocess.Popen[bytes]) -> None:
    qemu.terminate()
    qemu.wait(30)


def test_loadvm_of_a_name_that_is_another_id_is_refused(home: Path, tmp_path: Path) -> None:
    """A running machine: HMP `loadvm 1` would restore ID 1 (`clean`); limapy refuses instead. `delvm`
    finds names only, so the snapshot named 1 is the one deleted."""
    from limapy.qemu.qmp import QMP

    inst = _made(home, tmp_path)
    _write(inst, 0x11)
    qemu = _paused_qemu(inst)
    try:
        cp = limapy("snapshot", "create", "a", "--tag", "clean")  # savevm: ID 1
        assert cp.returncode == 0, cp.stderr
    finally:
        _stop(qemu)
    _write(inst, 0x22)
    qemu = _paused_qemu(inst)
    try:
        with QMP.connect(inst / "qmp.sock", timeout=60) as qmp:
            assert qmp.hmp("savevm 1").strip() == ""  # ID 2, named "1" (as Lima or QEMU by hand would make it)
    finally:
        _stop(qemu)
    _write(inst, 0x33)
    qemu = _paused_qemu(inst)
    try:
        err = one_error(limapy("snapshot", "apply", "a", "--tag", "1"))
        assert "cannot be named to QEMU without naming another snapshot" in err
        cp = limapy("snapshot", "delete", "a", "--tag", "1")
        assert cp.returncode == 0, cp.stderr
        cp = limapy("snapshot", "apply", "a", "--tag", "clean")  # an ordinary tag: loadvm as always
        assert cp.returncode == 0, cp.stderr
    finally:
        _stop(qemu)
    assert _tags(inst) == ["clean"]
    assert _holds(inst, 0x11)


# --- 13. a suspended instance keeps its saved memory valid and its disks to itself ---------------------------


def _suspend(inst: Path) -> None:
    """What `limapy suspend` leaves: the state and the record written last (driver.status reads the record)."""
    (inst / "suspend.state").write_bytes(b"memory")
    (inst / "suspend.json").write_text('{"format": 1}\n')


@pytest.mark.parametrize("action", ["create", "apply", "delete"])
def test_snapshot_commands_on_a_suspended_instance_are_refused(home: Path, tmp_path: Path, action: str) -> None:
    inst = _made(home, tmp_path)
    assert limapy("snapshot", "create", "a", "--tag", "clean").returncode == 0
    _suspend(inst)
    before = (inst / "disk").stat()
    err = one_error(limapy("snapshot", action, "a", "--tag", "clean" if action != "create" else "new"))
    assert "it is suspended" in err and "saved memory" in err
    after = (inst / "disk").stat()
    assert (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)  # the disk is untouched
    assert limapy("list", "--format", "{{.Status}}", "a").stdout == "Suspended\n"


def test_a_suspended_instance_keeps_its_additional_disk(home: Path, tmp_path: Path) -> None:
    assert limapy("disk", "create", "d", "--size", "64MiB").returncode == 0
    a = _made(home, tmp_path, "a", "additionalDisks: [d]\n")
    b = _made(home, tmp_path, "b", "additionalDisks: [d]\n")
    disk.claim_additional_disk("d", a)  # what a's boot did before it was suspended
    _suspend(a)
    for args in (("resize", "d", "--size", "1GiB"), ("unlock", "d"), ("delete", "-f", "d")):
        err = one_error(limapy("disk", *args))
        assert "in use by the suspended instance `a`" in err, (args, err)
    assert disk.virtual_size(home / "_disks" / "d" / "datadisk") == 64 << 20
    with pytest.raises(Exception, match="in use by the suspended instance `a`"):
        disk.claim_additional_disk("d", b)  # b's boot may not take it over
    assert disk.disk_owner("d") == a
    assert json.loads(limapy("disk", "list", "--json").stdout)["instance"] == "a"
    (a / "suspend.json").unlink()  # the state discarded (`stop -f`): a plain stopped instance again
    disk.claim_additional_disk("d", b)
    assert disk.disk_owner("d") == b


# --- 14. a renamed instance still holds its disks -----------------------------------------------------------


def test_disk_delete_sees_the_renamed_instance(home: Path, tmp_path: Path) -> None:
    assert limapy("disk", "create", "d", "--size", "64MiB").returncode == 0
    a = _made(home, tmp_path, "a", "additionalDisks: [d]\n")
    disk.claim_additional_disk("d", a)  # a booted once
    assert limapy("rename", "a", "b").returncode == 0
    assert disk.disk_owner("d") == home / "b"
    err = one_error(limapy("disk", "delete", "d"))
    assert "attached to the stopped instance `b`" in err
    assert (home / "_disks" / "d" / "datadisk").is_file()
    agent = sleeper("hostagent", "b", "--dir", str(home / "b"))  # b runs: the disk is its own
    try:
        (home / "b" / "ha.pid").write_text(f"{agent.pid}\n")
        assert "in use by the running instance `b`" in one_error(limapy("disk", "delete", "-f", "d"))
    finally:
        agent.kill()
        agent.wait()


def test_disk_delete_sees_an_instance_that_lists_the_disk(home: Path, tmp_path: Path) -> None:
    """No `in_use_by` link at all (never booted, or unlocked): the instances' additionalDisks still count."""
    assert limapy("disk", "create", "d", "--size", "64MiB").returncode == 0
    _made(home, tmp_path, "a", "additionalDisks: [d]\n")
    assert "attached to the stopped instance `a`" in one_error(limapy("disk", "delete", "d"))
    assert limapy("disk", "delete", "-f", "d").returncode == 0
    assert not (home / "_disks" / "d").exists()
