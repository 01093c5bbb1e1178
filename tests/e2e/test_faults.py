"""Faults on one real guest (issue 5/6 acceptance), two boots in all:
kill -9 of QEMU -> the host agent notices and exits, status not Running; then stale pid files of a crash
plus two concurrent `start`s -> exactly one QEMU, and the guest works; then `stop -f` while the guest
writes its disk -> `qemu-img check` passes.

The tests run in file order on one module-scoped instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunLimapy, limapy_env
from tests.e2e.guest import (
    START_TIMEOUT,
    alive,
    leftovers,
    list_json,
    qemu_pids,
    status_of,
    wait_until,
)

NAME = "f"
State = dict[str, Any]


@pytest.fixture(scope="module")
def state() -> State:
    return {}


@pytest.fixture(autouse=True)
def _show_logs_on_failure(module_home: Path) -> None:
    """Every test of this module shows the shared instance's serial and host-agent logs when it fails."""


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def last_event(inst: Path) -> dict[str, Any]:
    lines = [ln for ln in (inst / "ha.stdout.log").read_text().splitlines() if ln.strip()]
    ev: dict[str, Any] = json.loads(lines[-1])
    return ev


@pytest.mark.timeout(START_TIMEOUT + 120)
def test_kill9_qemu(test_image_template: Path, module_home: Path, module_run: RunLimapy, state: State) -> None:
    cp = module_run("start", "--name", NAME, test_image_template, timeout=START_TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    inst = module_home / NAME
    rec = list_json(module_run)[NAME]
    assert rec["status"] == "Running"
    ha, qemu = rec["hostAgentPID"], rec["driverPID"]
    assert qemu_pids(inst) == [qemu]

    t0 = time.monotonic()
    os.kill(qemu, signal.SIGKILL)
    wait_until(lambda: not alive(ha), 30, "the host agent to exit after QEMU was killed")
    noticed = time.monotonic() - t0
    assert status_of(module_run, NAME) == "Stopped"
    ev = last_event(inst)
    assert ev["status"].get("exiting") is True and "QEMU exited" in ev.get("message", ""), ev
    assert not (inst / "ha.pid").exists() and not (inst / "qemu.pid").exists()
    print(f"host agent exited {noticed:.1f} s after kill -9 of QEMU")
    state["killed"] = True


@pytest.mark.timeout(START_TIMEOUT + 120)
def test_stale_pids_and_two_concurrent_starts(module_home: Path, module_run: RunLimapy, state: State) -> None:
    if not state.get("killed"):
        pytest.skip("the instance never ran")
    inst = module_home / NAME
    # What a crash of the whole host leaves: pid files naming processes that are gone.
    (inst / "ha.pid").write_text(f"{dead_pid()}\n")
    (inst / "qemu.pid").write_text(f"{dead_pid()}\n")

    env = limapy_env(module_home)
    argv = [sys.executable, "-m", "limapy", "start", NAME]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    most = 0
    deadline = time.monotonic() + START_TIMEOUT
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        most = max(most, len(qemu_pids(inst)))
        time.sleep(0.5)
    outs = []
    for p in procs:
        _out, err = p.communicate(timeout=30)
        outs.append((p.returncode, err))
    assert all(rc == 0 for rc, _ in outs), outs
    assert sum("READY" in err for _, err in outs) == 1, outs
    assert sum("already running" in err for _, err in outs) == 1, outs
    assert most <= 1
    rec = list_json(module_run)[NAME]
    assert rec["status"] == "Running"
    assert qemu_pids(inst) == [rec["driverPID"]]
    cp = module_run("shell", NAME, "uname", "-s", timeout=60)
    assert (cp.returncode, cp.stdout) == (0, "Linux\n"), cp.stderr
    state["running"] = True


@pytest.mark.timeout(300)
def test_forced_stop_while_writing_leaves_a_sound_disk(module_home: Path, module_run: RunLimapy, state: State) -> None:
    if not state.get("running"):
        pytest.skip("the instance is not running")
    inst = module_home / NAME
    writer = "dd if=/dev/urandom of=/var/tmp/big bs=1M count=1500 conv=fsync"
    cp = module_run("shell", NAME, "--", "sh", "-c", f"nohup {writer} </dev/null >/dev/null 2>&1 &", timeout=60)
    assert cp.returncode == 0, cp.stderr

    def size() -> int:
        cp = module_run("shell", NAME, "--", "sh", "-c", "stat -c %s /var/tmp/big 2>/dev/null || echo 0", timeout=60)
        return int(cp.stdout.strip() or 0)

    first = size()
    wait_until(lambda: size() > first + (4 << 20), 60, "the guest's dd to write")
    cp = module_run("stop", "-f", NAME, timeout=60)
    assert cp.returncode == 0, cp.stderr
    wait_until(lambda: qemu_pids(inst) == [], 10, "QEMU to be gone after stop -f")
    assert status_of(module_run, NAME) == "Stopped"
    check = subprocess.run(
        ["qemu-img", "check", "-f", "qcow2", str(inst / "disk")], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No errors were found" in check.stdout, check.stdout


@pytest.mark.timeout(120)
def test_delete(module_home: Path, module_run: RunLimapy) -> None:
    if not (module_home / NAME).exists():
        pytest.skip("no instance")
    cp = module_run("delete", "-f", NAME, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert leftovers(module_home) == []
