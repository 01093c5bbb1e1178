"""Hardening, data loss: bases that never change underneath an instance, no writes through planted links, no
signal to a process a stale pid file names. Real files, real qemu-img, real processes, a local HTTP server."""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path

import pytest

from limapy.base.errors import LimapyError
from limapy.instance import disk, store
from tests.procs import sleeper
from tests.security.conftest import Server, instances, limapy, one_error, qcow2, template


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backing(inst: Path) -> Path:
    b = disk.backing_file(inst / "disk")
    assert b is not None
    return b


# --- 1. a later create never replaces an older instance's base ---------------------------------------------


def test_changed_url_gets_a_new_base_beside_the_old(home: Path, tmp_path: Path, server: Server) -> None:
    v1 = qcow2(tmp_path / "v1.qcow2", fill=0x41).read_bytes()
    v2 = qcow2(tmp_path / "v2.qcow2", size="96M", fill=0x42).read_bytes()
    url = server.add("/latest.qcow2", v1, mtime=1_700_000_000)
    t = template(tmp_path, url, 'disk: "1GiB"\n')
    assert limapy("create", "--name", "a", str(t)).returncode == 0
    base_a = backing(home / "a")
    server.add("/latest.qcow2", v2, mtime=1_700_086_400)  # upstream publishes a new "latest"
    cp = limapy("create", "--name", "b", str(t))
    assert cp.returncode == 0, cp.stderr
    base_b = backing(home / "b")
    assert base_a != base_b
    assert sha(base_a) == hashlib.sha256(v1).hexdigest()  # a's base is what a was made on
    assert sha(base_b) == hashlib.sha256(v2).hexdigest()
    assert server.gets("/latest.qcow2") == 2


def test_start_refuses_a_base_whose_bytes_changed(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2", fill=0x41)
    assert limapy("create", "--name", "a", str(template(tmp_path, str(img)))).returncode == 0
    inst = store.Instance("a", home / "a")
    assert disk.verify_base(inst.base_record, inst.disk, "a") is False  # unchanged: fine (and cheap)
    qcow2(tmp_path / "other.qcow2", fill=0x43).replace(img)  # the file is replaced under the instance
    with pytest.raises(LimapyError, match="changed since the instance was created") as e:
        disk.verify_base(inst.base_record, inst.disk, "a")
    assert e.value.hint and "re-create" in e.value.hint
    cp = limapy("start", "--dry-run", "a")
    assert "changed since the instance was created" in one_error(cp)


# --- 2. writes never follow planted symlinks ---------------------------------------------------------------


def test_planted_lock_link_is_refused_and_its_target_untouched(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    assert limapy("create", "--name", "a", str(template(tmp_path, str(img)))).returncode == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = home / "a" / "lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    for args in (("start", "--dry-run", "a"), ("delete", "a"), ("start", "a")):
        cp = limapy(*args)
        err = one_error(cp)
        assert "lock is a symbolic link" in err, (args, cp.stderr)
    assert victim.read_text() == "precious\n"
    assert (home / "a").is_dir()


def test_planted_disk_link_is_refused_and_the_outside_image_not_resized(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    assert limapy("create", "--name", "a", str(template(tmp_path, str(img)))).returncode == 0
    outside = qcow2(tmp_path / "outside.qcow2", size="1G")
    (home / "a" / "disk").unlink()
    (home / "a" / "disk").symlink_to(outside)
    cp = limapy("start", "--dry-run", "a")
    assert "disk is a symbolic link" in one_error(cp)
    assert disk.virtual_size(outside) == 1 << 30


# --- 3. stop -f / delete -f signal only this instance's processes -------------------------------------------


@pytest.mark.parametrize("command", [("stop", "-f"), ("delete", "-f")])
def test_stale_pid_files_name_no_victim(home: Path, tmp_path: Path, command: tuple[str, str]) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    assert limapy("create", "--name", "a", str(template(tmp_path, str(img)))).returncode == 0
    decoys = [sleeper("decoy"), sleeper("decoy")]
    try:
        (home / "a" / "qemu.pid").write_text(f"{decoys[0].pid}\n")
        (home / "a" / "ha.pid").write_text(f"{decoys[1].pid}\n")
        cp = limapy(*command, "a")
        assert cp.returncode == 0, cp.stderr
        time.sleep(0.5)
        assert [d.poll() for d in decoys] == [None, None]  # alive: never signalled
        assert not (home / "a" / "qemu.pid").exists()  # the stale files are gone
    finally:
        for d in decoys:
            d.kill()
            d.wait()
    assert instances(home) == ([] if command[0] == "delete" else ["a"])


def test_swtpm_pid_file_names_no_victim(tmp_path: Path) -> None:
    from limapy.driver.qemu import leftover_sidecars
    from limapy.driver.sidecars import stop_leftovers

    decoy = sleeper("decoy")
    try:
        inst = store.Instance("a", tmp_path)
        inst.swtpm_pid.write_text(f"{decoy.pid}\n")
        stop_leftovers(leftover_sidecars(inst))
        time.sleep(0.3)
        assert decoy.poll() is None
    finally:
        decoy.send_signal(signal.SIGKILL)
        decoy.wait()


def test_dry_run_of_a_running_name_does_not_kill(home: Path, tmp_path: Path) -> None:
    """`list` with a stale pid reused by an unrelated process shows Stopped, not Running."""
    img = qcow2(tmp_path / "img.qcow2")
    assert limapy("create", "--name", "a", str(template(tmp_path, str(img)))).returncode == 0
    decoy = sleeper("x")
    try:
        for f in ("ha.pid", "qemu.pid"):
            (home / "a" / f).write_text(f"{decoy.pid}\n")
        cp = limapy("list", "--json")
        assert '"status":"Stopped"' in cp.stdout, cp.stdout
    finally:
        decoy.kill()
        decoy.wait()
