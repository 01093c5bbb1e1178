"""`limapy stop` returns only once the host agent's process is gone: the agent removes its pid file while it
finishes (sidecars, sockets, logs), and a caller that checks for leftover processes right after `stop` (the
e2e suite does) must find none."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from limapy.instance import pids, store
from limapy.ops import stop as stop_ops

LINGER = 1.5
#: The stand-in agent: on SIGTERM it removes its pid file, then keeps finishing for LINGER seconds.
AGENT = f"""
import os, signal, sys, time
pidfile = sys.argv[1]
def bye(*_):
    os.unlink(pidfile)
    time.sleep({LINGER})
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
open(pidfile + ".tmp", "w").write(str(os.getpid()) + "\\n")
os.rename(pidfile + ".tmp", pidfile)
while True:
    time.sleep(1)
"""


def test_stop_waits_for_the_host_agent_to_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path))
    inst = store.Instance("w", tmp_path / "w")
    inst.dir.mkdir(mode=0o700)
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(inst.ha_pid), *pids.hostagent_args("w", inst.dir)])
    try:
        deadline = time.monotonic() + 10
        while store.ha_pid(inst) is None:
            assert agent.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        t0 = time.monotonic()
        assert stop_ops.stop(inst) is True
        assert agent.poll() is not None, "stop returned while the host agent was still running"
        assert time.monotonic() - t0 >= LINGER * 0.9
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait(10)
