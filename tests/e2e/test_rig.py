"""The rig itself: leftover processes tied to a test home are killed, and guest logs are found."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import guest_logs, kill_leftovers

SLEEP = [sys.executable, "-c", "import time; time.sleep(300)"]


def test_kill_leftovers_kills_only_processes_tied_to_the_home(short_tmp: Path) -> None:
    other = Path(str(short_tmp) + "x")  # same prefix, different directory: must survive
    tied_by_argv = subprocess.Popen([*SLEEP, str(short_tmp / "qmp.sock")])
    tied_by_env = subprocess.Popen(SLEEP, env={"LIMAPY_HOME": str(short_tmp)})
    unrelated = subprocess.Popen([*SLEEP, str(other)])
    try:
        time.sleep(0.2)  # let exec finish so /proc shows the new argv and environment
        killed = kill_leftovers(short_tmp)
        assert tied_by_argv.wait(timeout=5) == -9
        assert tied_by_env.wait(timeout=5) == -9
        assert unrelated.poll() is None
        assert sorted(killed) == sorted([tied_by_argv.pid, tied_by_env.pid])
    finally:
        for p in (tied_by_argv, tied_by_env, unrelated):
            p.kill()
            p.wait()


def test_guest_logs_finds_serial_and_host_agent_logs(short_tmp: Path) -> None:
    inst = short_tmp / "vm1"
    inst.mkdir()
    (inst / "serial.log").write_text("".join(f"line {i}\r\n" for i in range(100)))
    (inst / "ha.stderr.log").write_text("agent failed\n")
    (inst / "disk").write_text("not a log")
    found = dict(guest_logs([short_tmp]))
    titles = sorted(Path(t.split(" ")[0]).name for t in found)
    assert titles == ["ha.stderr.log", "serial.log"]
    serial = next(text for title, text in found.items() if "serial.log" in title)
    assert serial.splitlines() == [f"line {i}" for i in range(40, 100)]
