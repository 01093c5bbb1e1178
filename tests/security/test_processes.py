"""Hardening, second round (issue 24): processes. `stop -f` / `delete -f` signal only the processes of *this*
instance dir, not the same-named instance of another LIMAPY_HOME (item 11); what limapy runs dies with it,
and what a killed create or clone left behind is reported and removed (item 18). Real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from limapy.instance import pids
from tests.procs import sleeper
from tests.security.conftest import REPO, instances, limapy, qcow2, template

# --- 11. the trusted marks name the instance dir ------------------------------------------------------------


@pytest.mark.parametrize("command", [("stop", "-f"), ("delete", "-f")])
def test_force_spares_the_same_name_in_another_home(home: Path, tmp_path: Path, command: tuple[str, str]) -> None:
    """Home 2 runs its own `a` (QEMU and host agent with home 2's marks); home 1's `a` has stale pid files that
    name those processes. `stop -f a` / `delete -f a` in home 1 must leave them running."""
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")))
    assert limapy("create", "--name", "a", str(t)).returncode == 0
    home2 = tmp_path / "home2"
    home2.mkdir(mode=0o700)
    other = home2 / "a"
    assert limapy("create", "--name", "a", str(t), env={"LIMAPY_HOME": str(home2)}).returncode == 0
    qemu = sleeper("-name", "limapy-a", "-pidfile", str(other / "qemu.pid"))  # as QEMU's argv names them
    agent = sleeper("hostagent", "a", "--dir", str(other))
    try:
        (other / "qemu.pid").write_text(f"{qemu.pid}\n")
        (other / "ha.pid").write_text(f"{agent.pid}\n")
        (home / "a" / "qemu.pid").write_text(f"{qemu.pid}\n")  # stale, naming home 2's processes
        (home / "a" / "ha.pid").write_text(f"{agent.pid}\n")
        assert limapy("list", "--format", "{{.Status}}", "a").stdout == "Stopped\n"
        cp = limapy(*command, "a")
        assert cp.returncode == 0, cp.stderr
        time.sleep(0.5)
        assert [qemu.poll(), agent.poll()] == [None, None], "another home's instance was killed"
        st = limapy("list", "--format", "{{.Status}}", "a", env={"LIMAPY_HOME": str(home2)}).stdout
        assert st == "Running\n"  # home 2 still knows its own
    finally:
        for p in (qemu, agent):
            p.kill()
            p.wait()
    assert instances(home) == ([] if command[0] == "delete" else ["a"])


# --- 18. children die with limapy; leftovers of a killed create or clone are found -------------------------

RUNNER = """
import sys
from limapy.base import proc
proc.run(["sleep", "300"])
"""


def _children_named(parent: int, name: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[1] == str(parent) and stat.split("(", 1)[1].startswith(name + ")"):
                out.append(int(d.name))
    return out


def test_what_proc_runs_dies_with_limapy() -> None:
    runner = subprocess.Popen([sys.executable, "-c", RUNNER], env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 20
        while not (kids := _children_named(runner.pid, "sleep")):
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        assert pids.wait_gone(kids[0], 5.0), "the child of a killed limapy runs on"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


FAKE_QEMU_IMG = """#!/bin/sh
# a qemu-img whose `convert` is slow (a large disk): the real one for everything else
if [ "$1" = convert ]; then exec sleep 300; fi
exec {real} "$@"
"""


def test_killed_full_clone_leaves_no_copier_and_its_copy_is_reported(home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")))
    assert limapy("create", "--name", "a", str(t)).returncode == 0
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = subprocess.run(["sh", "-c", "command -v qemu-img"], capture_output=True, text=True, check=True)
    (bindir / "qemu-img").write_text(FAKE_QEMU_IMG.format(real=real.stdout.strip()))
    (bindir / "qemu-img").chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{bindir}:{os.environ['PATH']}")
    clone = subprocess.Popen([sys.executable, "-m", "limapy", "clone", "--full", "a", "b"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (copier := _children_named(clone.pid, "sleep")):
            assert clone.poll() is None and time.monotonic() < deadline, "clone never started copying"
            time.sleep(0.05)
        assert list(home.glob(".b.tmp-*")), "the clone is made in a hidden temp dir"
        cp = limapy("list", "a")
        assert "left by an interrupted" not in cp.stderr  # a clone under way is no leftover
        clone.send_signal(signal.SIGKILL)
        clone.wait()
        assert pids.wait_gone(copier[0], 5.0), "the copy goes on after limapy was killed"
    finally:
        if clone.poll() is None:
            clone.kill()
            clone.wait()
    left = list(home.glob(".b.tmp-*"))
    assert len(left) == 1
    cp = limapy("list")
    assert f"warning: {left[0]} was left by an interrupted create, clone or delete" in cp.stderr
    assert "`limapy prune` removes it" in cp.stderr
    cp = limapy("prune")
    assert cp.returncode == 0, cp.stderr
    assert f"removed {left[0]}" in cp.stderr
    assert not left[0].exists() and instances(home) == ["a"]
    assert "left by" not in limapy("list").stderr


def test_a_delete_under_way_is_no_leftover(home: Path, tmp_path: Path) -> None:
    """`.NAME.deleting` is held by its delete while it is removed; one nobody holds is a leftover."""
    import fcntl

    from limapy.instance import leftovers

    trash = home / ".x.deleting"
    trash.mkdir()
    fd = os.open(trash, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert leftovers.find() == [] and leftovers.remove(trash) == 0 and trash.is_dir()
    finally:
        os.close(fd)
    assert leftovers.find() == [trash]
    leftovers.remove(trash)
    assert not trash.exists()
