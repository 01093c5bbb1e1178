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


# --- the host agent acts on a stop at once (issue 29: graceful stop within 1.2x the QMP power-down) ---------


class SlowMachine:
    """A machine whose wait for its exit takes far longer than it is asked to (and never exits)."""

    def __init__(self) -> None:
        self.waits = 0

    def wait_exit(self, timeout: float) -> bool:
        self.waits += 1
        time.sleep(30)
        return False


def test_a_stop_signal_ends_the_host_agents_idle_wait_at_once(tmp_path: Path) -> None:
    import io
    import os
    import signal
    import threading

    from limapy.agent.hostagent import Events, HostAgent

    agent = HostAgent(store.Instance("w", tmp_path / "w"), Events(io.StringIO()))
    machine = SlowMachine()
    old = signal.signal(signal.SIGTERM, agent._on_signal)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        t0 = time.monotonic()
        assert agent._idle(machine) is False  # type: ignore[arg-type]
        assert time.monotonic() - t0 < 10, "the wait ran its course instead of ending at the signal"
        assert machine.waits == 1 and agent.stop_requested.is_set() and not agent.waiting
        assert agent._idle(machine) is False and machine.waits == 1  # a stop already asked for: no wait at all
        os.kill(os.getpid(), signal.SIGTERM)  # outside the wait: only recorded, nothing raised here
        time.sleep(0.05)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old)


def test_a_failing_idle_wait_leaves_no_wake_armed(tmp_path: Path) -> None:
    import io

    from limapy.agent.hostagent import Events, HostAgent
    from limapy.base.errors import LimapyError

    class Broken:
        def wait_exit(self, timeout: float) -> bool:
            raise LimapyError("the engine went away")

    agent = HostAgent(store.Instance("w", tmp_path / "w"), Events(io.StringIO()))
    with pytest.raises(LimapyError):
        agent._idle(Broken())  # type: ignore[arg-type]
    assert not agent.waiting  # a signal during the shutdown that follows must not raise there
    agent._on_signal(15, None)  # outside the wait: recorded, not raised
    assert agent.stop_requested.is_set()


def test_guest_services_stop_closes_the_watcher_before_waiting_for_its_thread(tmp_path: Path) -> None:
    """The port watcher reads the guest with a 1 s timeout; closing its connection first ends that read now."""
    from limapy.agent.services import Services

    calls: list[str] = []

    class Watcher:
        def close(self) -> None:
            calls.append("close")

    class Thread:
        def join(self, timeout: float | None = None) -> None:
            calls.append("join")

    services = Services.__new__(Services)
    import threading

    services.__dict__.update(stop_event=threading.Event(), watcher=Watcher(), thread=Thread(), forwarder=None,
                             folders=None, guest=None, live=[], booted=threading.Event(),
                             watcher_lock=threading.Lock())  # fmt: skip
    services.stop()
    assert calls == ["close", "join"]


@pytest.mark.parametrize("mounted", [False, True])
def test_the_guest_is_asked_to_power_down_before_the_host_side_is_tidied(tmp_path: Path, mounted: bool) -> None:
    """Without folders to unmount in it, the guest is asked at once and left to shut down with its sessions as they
    are; the SSH connection and the guest services are closed once it is off (bench `boot.stop`). With folders,
    after their unmount."""
    import io

    from limapy.agent.hostagent import Events, HostAgent

    order: list[str] = []

    class Machine:
        running = True

        def alive(self) -> bool:
            return self.running

        def request_powerdown(self) -> None:
            order.append("power-down asked")

        def wait_exit(self, timeout: float) -> bool:
            order.append("guest off")
            self.running = False
            return True

        def shutdown(self, timeout: float) -> bool:
            order.append("shutdown")
            self.running = False
            return True

    class Services:
        live = ["a mount"] if mounted else []

        def stop(self, then: object) -> None:
            order.append("services stopped")
            then()  # type: ignore[operator]

    class Guest:
        def close(self) -> None:
            order.append("connection closed")

    agent = HostAgent(store.Instance("w", tmp_path / "w"), Events(io.StringIO()))
    agent.machine, agent.services, agent.guest = Machine(), Services(), Guest()  # type: ignore[assignment]
    agent._shutdown()
    if mounted:
        assert order == ["services stopped", "power-down asked", "connection closed", "shutdown"]
    else:
        assert order == ["power-down asked", "guest off", "services stopped", "connection closed", "shutdown"]
