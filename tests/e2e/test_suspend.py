"""Suspend and resume on one real guest (issue 14 acceptance), three cold boots in all:
start -> a file in /dev/shm and a running `sleep` -> suspend (Suspended, QEMU gone, state 0600) -> start
resumes (both still there, the clock set, the state gone, no boot left to finish: suspend waited for its end)
-> kill -9 of QEMU during a suspend (the instance is Stopped and boots cold, disk data kept) -> a corrupted state
(cold boot with a warning, disk data kept) -> stop of a suspended instance (resumed and powered down) -> delete.

The tests run in file order on one module-scoped instance: each step relies on the one before.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunLimapy, limapy_env
from tests.e2e.guest import START_TIMEOUT, alive, leftovers, list_json, qemu_pids, status_of, wait_until

NAME = "s"
#: Cold boots here run while other guests load the host's 2 cores: be generous.
BOOT = 2 * START_TIMEOUT
State = dict[str, Any]
#: In memory only: a file in /dev/shm (tmpfs) and a process; a boot loses both, a resume keeps them.
MARK = "echo in-memory >/dev/shm/mark; nohup sleep 100000 >/dev/null 2>&1 & echo $!"


@pytest.fixture(scope="module")
def state() -> State:
    return {}


@pytest.fixture(autouse=True)
def _show_logs_on_failure(module_home: Path) -> None:
    """Every test of this module shows the shared instance's serial and host-agent logs when it fails."""


def sh(run: RunLimapy, script: str) -> str:
    cp = run("shell", NAME, "--", "sh", "-c", script, timeout=180)
    assert cp.returncode == 0, f"{script!r}: exit {cp.returncode}: {cp.stderr}"
    return cp.stdout


def need(state: State, key: str) -> None:
    if not state.get(key):
        pytest.skip(f"an earlier step failed ({key})")


@pytest.mark.timeout(2 * BOOT + 300)
def test_suspend_then_resume_keeps_memory(
    test_image_template: Path, module_home: Path, module_run: RunLimapy, state: State
) -> None:
    cp = module_run("start", "--name", NAME, "--timeout", f"{BOOT}s", test_image_template, timeout=BOOT + 60)
    assert cp.returncode == 0, cp.stderr
    inst = module_home / NAME
    sleep_pid = sh(module_run, "echo kept >~/keep; sync; " + MARK).strip()
    assert sleep_pid.isdigit()
    qemu = list_json(module_run)[NAME]["driverPID"]

    cp = module_run("suspend", NAME, timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert "suspended" in cp.stderr
    assert not alive(qemu) and qemu_pids(inst) == []
    rec = list_json(module_run)[NAME]
    assert rec["status"] == "Suspended" and "hostAgentPID" not in rec and "driverPID" not in rec  # omitempty
    for f in ("suspend.state", "suspend.json"):
        assert stat.S_IMODE((inst / f).stat().st_mode) == 0o600, f
    assert "suspended already" in module_run("suspend", NAME).stderr
    time.sleep(20)  # the guest's clock falls 20 s behind unless the resume sets it

    cp = module_run("start", NAME, "--timeout", f"{BOOT}s", timeout=BOOT + 60)
    assert cp.returncode == 0, cp.stderr
    assert "[resuming]" in cp.stderr and "clock was set" in cp.stderr, cp.stderr
    assert "discarded" not in cp.stderr
    before = time.time()
    out = sh(module_run, "cat /dev/shm/mark; kill -0 " + sleep_pid + " && echo alive; cat ~/keep; date +%s; "
                         "systemctl is-system-running || true")  # fmt: skip
    lines = out.split()
    assert lines[:3] == ["in-memory", "alive", "kept"], out
    assert abs(int(lines[3]) - before) < 15, f"guest clock {lines[3]}, host {before:.0f}"
    # suspended a moment after READY, while cloud-init's later stages still ran: `suspend` waited for the boot's
    # end (GuestOS.settle), so the resumed guest has no boot left to finish ("starting" until it has)
    assert lines[4] in ("running", "degraded"), out
    assert not (inst / "suspend.state").exists() and not (inst / "suspend.json").exists()
    assert status_of(module_run, NAME) == "Running"
    state["resumed"] = True


def _suspend_in_background(module_home: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "limapy", "suspend", NAME]
    return subprocess.Popen(
        argv, env=limapy_env(module_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.timeout(2 * BOOT + 300)
def test_qemu_killed_during_suspend_boots_cold(module_home: Path, module_run: RunLimapy, state: State) -> None:
    need(state, "resumed")
    inst = module_home / NAME
    qemu = list_json(module_run)[NAME]["driverPID"]
    p = _suspend_in_background(module_home)
    wait_until(
        lambda: (inst / "suspend.state").exists() and (inst / "suspend.state").stat().st_size > (16 << 20),
        120, "the state file to grow", interval=0.05,
    )  # fmt: skip
    os.kill(qemu, signal.SIGKILL)
    _out, err = p.communicate(timeout=120)
    assert p.returncode != 0 and "QEMU ended during the suspend" in err, err
    wait_until(lambda: status_of(module_run, NAME) == "Stopped", 60, "the instance to be Stopped")
    assert not (inst / "suspend.state").exists() and not (inst / "suspend.json").exists()

    cp = module_run("start", NAME, "--timeout", f"{BOOT}s", timeout=BOOT + 60)
    assert cp.returncode == 0, cp.stderr
    assert "[resuming]" not in cp.stderr
    out = sh(module_run, "cat /dev/shm/mark 2>/dev/null || echo no-mark; cat ~/keep")
    assert out.split() == ["no-mark", "kept"], out
    state["cold"] = True


@pytest.mark.timeout(2 * BOOT + 300)
def test_corrupt_state_boots_cold_with_a_warning(module_home: Path, module_run: RunLimapy, state: State) -> None:
    need(state, "cold")
    inst = module_home / NAME
    sh(module_run, MARK)
    cp = module_run("suspend", NAME, timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert status_of(module_run, NAME) == "Suspended"
    with open(inst / "suspend.state", "r+b") as f:  # same size, other bytes: only the digest can tell
        f.seek((inst / "suspend.state").stat().st_size // 2)
        f.write(b"\xff" * 4096)

    cp = module_run("start", NAME, "--timeout", f"{BOOT}s", timeout=BOOT + 60)
    assert cp.returncode == 0, cp.stderr
    assert "saved (suspended) state was discarded" in cp.stderr and "corrupted" in cp.stderr, cp.stderr
    out = sh(module_run, "cat /dev/shm/mark 2>/dev/null || echo no-mark; cat ~/keep")
    assert out.split() == ["no-mark", "kept"], out
    assert not (inst / "suspend.state").exists()
    state["corrupt"] = True


@pytest.mark.timeout(600)
def test_stop_of_a_suspended_instance_powers_it_down(module_home: Path, module_run: RunLimapy, state: State) -> None:
    need(state, "corrupt")
    inst = module_home / NAME
    cp = module_run("suspend", NAME, timeout=300)
    assert cp.returncode == 0, cp.stderr
    cp = module_run("stop", NAME, timeout=400)
    assert cp.returncode == 0, cp.stderr
    assert "resuming it to power it down" in cp.stderr and f"stopped `{NAME}`" in cp.stderr, cp.stderr
    assert status_of(module_run, NAME) == "Stopped"
    assert not (inst / "suspend.state").exists() and qemu_pids(inst) == []
    cp = module_run("delete", NAME)
    assert cp.returncode == 0, cp.stderr
    assert leftovers(module_home) == []
