"""A clone of a suspended instance (issue 29, item 1), host side, with the real qemu-img and a saved state made by
hand: the source's disk frozen into one read-only layer that the source and every clone overlay, the state shared
by a hard link, each clone's record naming its own disk, lima.yaml, paths and ports, so that both the source and the
clones still resume (driver.suspended.usable); `delete`, `rename` and `factory-reset` of the source keep the layer
its clones stand on; `prune` keeps the cached image under it. The guest side (the resume, its identity, its own
writes) is tests/e2e/test_suspend_clone.py."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from limapy import driver
from limapy.base.errors import LimapyError
from limapy.driver import suspended
from limapy.driver.qemu.suspendclone import retarget
from limapy.instance import chain, disk, store

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")

LINUX_YAML = b"images: [{location: /nonexistent.img, arch: x86_64}]\narch: x86_64\nssh: {localPort: 0}\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("LIMAPY_HOME", str(h))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    return h


def machine(inst: store.Instance, port: int) -> tuple[str, ...]:
    d = inst.dir
    return (
        "qemu-system-x86_64", "-drive", f"file={d}/disk,if=none,id=boot-disk,format=qcow2",
        "-drive", f"file={d}/cidata.iso,if=none,id=cdrom0,format=raw,media=cdrom,readonly=on",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22,hostfwd=tcp:127.0.0.1:{port + 1}-:3389,"
        f"guestfwd=tcp:192.168.5.4:445-cmd:{d}/smb/smbd.sh",
        "-chardev", f"socket,id=char-qmp,path={d}/qmp.sock,server=on,wait=off",
        "-name", f"limapy-{inst.name}", "-pidfile", f"{d}/qemu.pid",
    )  # fmt: skip


def suspended_instance(tmp_path: Path, name: str = "base") -> store.Instance:
    """An instance whose disk is an overlay on a cached image, suspended (a state and its record)."""
    cache = tmp_path / "cache-image.qcow2"
    if not cache.exists():
        disk.proc.run(["qemu-img", "create", "-q", "-f", "qcow2", cache, "64M"])
    inst = store.create_instance_dir(name, {"lima.yaml": LINUX_YAML})
    disk.create_overlay(cache, inst.disk, 64 << 20)
    disk.record_base(inst.base_record, cache)
    store.atomic_write(inst.cidata_iso, b"seed" * 100, 0o600)
    store.atomic_write(inst.suspend_state, b"QEVM" + os.urandom(200_000), 0o600)
    suspended.complete(inst, driver="qemu", argv=machine(inst, 40022), ssh_port=40022)
    store.atomic_write(inst.rdp_port_file, b"40023\n", 0o600)
    assert driver.status(inst) == store.SUSPENDED
    return inst


def clone(src: store.Instance, name: str, **kw: bool) -> tuple[store.Instance, list[str]]:
    from limapy.ops.clone import clone as do_clone

    said: list[str] = []
    return do_clone(src, name, say=said.append, **kw), said


def test_retarget_moves_paths_name_and_host_ports_only(tmp_path: Path) -> None:
    src, new = tmp_path / "inst", tmp_path / "w1"
    argv = (
        "-drive", f"file={src}/disk,if=none", "-drive", f"file={tmp_path}/inst2/disk", "-name", "limapy-inst",
        "-netdev", "user,hostfwd=tcp:127.0.0.1:5000-:22,hostfwd=tcp:127.0.0.1:5001-:3389",
        "-device", "virtio-net-pci,netdev=net0,mac=52:55:55:aa:bb:cc", "-comment", "limapy-inst",
    )  # fmt: skip
    ports = iter([6000, 6001])
    out, mapping = retarget(argv, src, new, "inst", "w1", lambda: next(ports))
    assert out[1] == f"file={new}/disk,if=none"
    assert out[3] == f"file={tmp_path}/inst2/disk"  # another instance whose name starts alike: untouched
    assert out[5] == "limapy-w1" and out[-1] == "limapy-inst"  # the process name only
    assert out[7] == "user,hostfwd=tcp:127.0.0.1:6000-:22,hostfwd=tcp:127.0.0.1:6001-:3389"
    assert out[9].endswith("mac=52:55:55:aa:bb:cc")  # the guest's NIC as the migration stream has it
    assert mapping == {5000: 6000, 5001: 6001}


def test_clones_share_one_read_only_layer_and_the_state(home: Path, tmp_path: Path) -> None:
    src = suspended_instance(tmp_path)
    cached = disk.backing_file(src.disk)
    w1, said = clone(src, "w1")
    assert any("freezing the disk" in line for line in said), said
    assert any("lima-w1, a new machine-id and SSH host keys" in line for line in said), said
    w2, said2 = clone(src, "w2")
    assert not any("freezing" in line for line in said2), "the second clone stands on the same layer"

    [layer] = sorted(src.dir.glob("layer-*.qcow2"))
    assert stat.S_IMODE(layer.stat().st_mode) == 0o400
    assert chain.chain(src.disk) == [layer, cached]  # the source's own overlay names it relatively
    assert disk.info(src.disk)["backing-filename"] == layer.name
    for w in (w1, w2):
        assert chain.chain(w.disk) == [layer, cached]
        assert chain.base_image(w.disk) == cached
        assert w.suspend_state.stat().st_ino == src.suspend_state.stat().st_ino  # a hard link: no copy
        assert stat.S_IMODE(w.suspend_state.stat().st_mode) == 0o400
        assert w.identity_pending.exists()
        store.check_links(w)  # the shared state is a hard link limapy allows
    assert src.suspend_state.stat().st_nlink == 3

    # each still resumes: its record names its own disk, lima.yaml and machine
    for inst in (src, w1, w2):
        rec, why = suspended.usable(inst, "qemu")
        assert rec is not None, (inst.name, why)
        assert driver.status(inst) == store.SUSPENDED
    r1, r2 = suspended.usable(w1, "qemu")[0], suspended.usable(w2, "qemu")[0]
    assert r1 is not None and r2 is not None
    text = " ".join(r1.argv)
    assert f"{src.dir}/" not in text and f"file={w1.dir}/disk," in text and f"cmd:{w1.dir}/smb/smbd.sh" in text
    assert "limapy-w1" in r1.argv and r1.ssh_port not in (40022, r2.ssh_port)
    assert f"hostfwd=tcp:127.0.0.1:{r1.ssh_port}-:22" in text
    assert int(w1.rdp_port_file.read_text()) not in (40023, int(w2.rdp_port_file.read_text()))
    assert w1.cidata_iso.read_bytes() == src.cidata_iso.read_bytes()  # the CD the saved machine had in
    assert json.loads(src.suspend_record.read_text())["layer"] == str(layer)
    assert disk.verify_base(w1.base_record, w1.disk, "w1") is False  # the cached image, through the layer


def test_a_source_that_ran_again_is_frozen_again(home: Path, tmp_path: Path) -> None:
    src = suspended_instance(tmp_path)
    clone(src, "w1")
    # it resumed, wrote, and was suspended again: a new state, a record without a layer
    suspended.discard(src)
    store.atomic_write(src.suspend_state, b"QEVM" + os.urandom(1000), 0o600)
    suspended.complete(src, driver="qemu", argv=machine(src, 40022), ssh_port=40022)
    w2, said = clone(src, "w2")
    assert any("freezing" in line for line in said)
    first, second = sorted(src.dir.glob("layer-*.qcow2"))
    assert chain.chain(w2.disk)[:2] == [second, first]
    assert suspended.usable(store.resolve("w1"), "qemu")[0] is not None  # the first clone is untouched


def _ran_and_suspended_again(src: store.Instance, pattern: int) -> None:
    """The source resumed, wrote a block (`pattern` bytes at offset 0), and was suspended again."""
    disk.proc.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} 0 64k", src.disk])
    suspended.discard(src)
    store.atomic_write(src.suspend_state, b"QEVM" + os.urandom(1000), 0o600)
    suspended.complete(src, driver="qemu", argv=machine(src, 40022), ssh_port=40022)


def _reads(image: Path, pattern: int) -> bool:
    cp = disk.proc.run(["qemu-io", "-r", "-f", "qcow2", "-c", f"read -P {pattern} 0 64k", image], check=False)
    return cp.returncode == 0 and b"Pattern verification failed" not in cp.stdout


def test_a_source_cloned_again_once_its_clones_are_gone_keeps_one_layer(home: Path, tmp_path: Path) -> None:
    """Clone, delete the clones, run the source, clone again (a base refreshed and cloned every day): what the
    source wrote is folded into its one layer instead of a layer more each time (the chain ends at MAX_DEPTH)."""
    from limapy.ops.delete import delete

    src = suspended_instance(tmp_path)
    cached = disk.backing_file(src.disk)
    clone(src, "w1")
    [layer] = sorted(src.dir.glob("layer-*.qcow2"))
    for day, pattern in enumerate((0x11, 0x22, 0x33)):
        delete(f"w{day + 1}")
        _ran_and_suspended_again(src, pattern)
        w, said = clone(src, f"w{day + 2}")
        assert any("freezing" in line for line in said)
        assert sorted(src.dir.glob("layer-*.qcow2")) == [layer], "folded into the one layer"
        assert chain.chain(w.disk) == [layer, cached] and chain.chain(src.disk) == [layer, cached]
        assert stat.S_IMODE(layer.stat().st_mode) == 0o400
        assert _reads(w.disk, pattern) and _reads(src.disk, pattern)  # the clone sees what the source wrote
        assert disk.info(src.disk).get("actual-size", 0) < (1 << 20)  # its overlay starts empty again
        assert suspended.usable(src, "qemu")[0] is not None and suspended.usable(w, "qemu")[0] is not None


def test_a_layer_a_clone_stands_on_is_never_folded_into(home: Path, tmp_path: Path) -> None:
    src = suspended_instance(tmp_path)
    w1, _ = clone(src, "w1")
    _ran_and_suspended_again(src, 0x44)
    w2, _ = clone(src, "w2")
    assert len(list(src.dir.glob("layer-*.qcow2"))) == 2
    assert _reads(w2.disk, 0x44) and not _reads(w1.disk, 0x44)  # w1's view is as it was at its clone


def test_a_disk_with_snapshots_is_not_frozen(home: Path, tmp_path: Path) -> None:
    """A new overlay would not have them: refused, with nothing made."""
    src = suspended_instance(tmp_path)
    disk.proc.run(["qemu-img", "snapshot", "-c", "before", src.disk])  # taken while it was stopped, then suspended
    suspended.discard(src)
    store.atomic_write(src.suspend_state, b"QEVM" + os.urandom(1000), 0o600)
    suspended.complete(src, driver="qemu", argv=machine(src, 40022), ssh_port=40022)
    with pytest.raises(LimapyError, match=r"its disk has 1 snapshot"):
        clone(src, "w1")
    assert store.list_instances() == ["base"] and not list(src.dir.glob("layer-*"))
    assert [s["name"] for s in disk.info(src.disk)["snapshots"]] == ["before"]
    assert suspended.usable(src, "qemu")[0] is not None


def test_the_source_is_kept_while_clones_stand_on_it(home: Path, tmp_path: Path) -> None:
    from limapy.ops.clone import rename
    from limapy.ops.delete import delete
    from limapy.ops.prune import _used_paths

    src = suspended_instance(tmp_path)
    cached = disk.backing_file(src.disk)
    assert cached is not None
    clone(src, "w1")
    clone(src, "w2")
    with pytest.raises(LimapyError, match=r"cannot delete `base`: `w1`, `w2` stand on its disk"):
        delete("base")
    assert src.dir.is_dir() and driver.status(src) == store.SUSPENDED
    assert cached.resolve() in _used_paths(store.resolve("w1"))  # prune keeps the image under the layer
    delete("w1")
    with pytest.raises(LimapyError, match=r"`w2` stands on its disk"):
        delete("base")
    suspended.discard(src)  # stopped now: a rename is refused for the clone's sake
    with pytest.raises(LimapyError, match="cannot rename `base`"):
        rename(src, "other")
    delete("w2")
    assert delete("base") and not src.dir.exists()


def test_refusals_before_anything_is_made(home: Path, tmp_path: Path) -> None:
    src = suspended_instance(tmp_path)
    for kw, why in (({"full": True}, "--full"), ({"generalize": True}, "--generalize")):
        with pytest.raises(LimapyError, match=why):
            clone(src, "w1", **kw)
    os.truncate(src.suspend_state, 10)
    with pytest.raises(LimapyError, match="cannot be resumed from"):
        clone(src, "w1")
    assert store.list_instances() == ["base"] and not list(src.dir.glob("layer-*"))


def test_a_freeze_killed_before_its_switch_is_tidied(home: Path, tmp_path: Path) -> None:
    src = suspended_instance(tmp_path)
    os.link(src.disk, src.dir / "layer-1.qcow2")  # the hard link made, the overlay not yet switched in
    with store.lock(src):  # any command on it: the second name goes, the disk is as it was
        assert not (src.dir / "layer-1.qcow2").exists() and src.disk.stat().st_nlink == 1
    assert suspended.usable(src, "qemu")[0] is not None
    os.link(src.disk, src.dir / "layer-1.qcow2")
    clone(src, "w1")
    assert [p.name for p in src.dir.glob("layer-*.qcow2")] != ["layer-1.qcow2"]
    assert len(list(src.dir.glob("layer-*.qcow2"))) == 1
    store.check_links(src)
