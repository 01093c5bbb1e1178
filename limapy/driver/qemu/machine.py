"""A running QEMU as one object: its process, its sidecars, the host agent's own QMP monitor, its logs.

Learned from python qemu.machine: the object that launched QEMU owns it until it is gone; shutdown is soft
(ACPI power-down), then hard (QMP `quit`, so QEMU still writes its disk caches), then SIGKILL; sidecars stop
after QEMU, also when the launch fails half-way. QEMU's events (STOP, SHUTDOWN, RESET) arrive on the kept-open
monitor `ha.qmp.sock`, so nothing polls QEMU's status; `qmp.sock` stays free for `screenshot` and `stop -f`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from limapy.base import proc
from limapy.base.dirs import ENV_ACCEL
from limapy.base.errors import LimapyError
from limapy.driver import suspended
from limapy.driver.plan import BootPlan
from limapy.driver.sidecars import Supervisor
from limapy.instance import pids, store
from limapy.qemu.qmp import QMP, QMPError

log = logging.getLogger("limapy.driver.qemu.machine")

QMP_TIMEOUT = 30.0
QUIT_TIMEOUT = 10.0


def stderr_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def hard_stop(inst: store.Instance, pid: int, *, quit_timeout: float = QUIT_TIMEOUT) -> None:
    """Stop a QEMU now, without the guest's cooperation: QMP `quit` on qmp.sock first (QEMU then writes its
    disk caches, qcow2 metadata included), SIGKILL when QMP does not answer or QEMU does not exit."""
    try:
        with QMP.connect(inst.qmp_sock, timeout=2.0) as qmp:
            qmp.quit()
        if pids.wait_gone(pid, quit_timeout):
            return
    except QMPError as e:
        log.warning("QMP unreachable (%s); killing QEMU", e)
    _kill(pid)


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    pids.wait_gone(pid, 10.0)


def remove_runtime_files(inst: store.Instance) -> None:
    for path in (inst.qemu_pid, inst.qmp_sock, inst.ha_qmp_sock, inst.serial_sock):
        path.unlink(missing_ok=True)


class QemuMachine:
    """Launched by `launch`; the host agent calls its methods from one thread."""

    def __init__(self, inst: store.Instance, child: proc.Process[bytes], sidecars: Supervisor) -> None:
        self.inst = inst
        self.child = child
        self.pid = child.pid
        self.sidecars = sidecars
        self.qmp: QMP | None = None
        self.powerdown_requested = False

    # -- start ---------------------------------------------------------------------------------------------
    def connect(self, timeout: float = QMP_TIMEOUT) -> None:
        """Wait for QEMU's monitor; fail early, with QEMU's stderr, if it exits instead."""
        sock = self.inst.ha_qmp_sock
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.alive():
                tail = self.failure()
                raise LimapyError("QEMU exited during start-up" + (f":\n{tail}" if tail else ""))
            if sock.exists():
                try:
                    self.qmp = QMP.connect(sock, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                    return
                except QMPError as e:
                    last = e
            time.sleep(0.05)
        raise LimapyError(f"QMP socket {sock} did not answer within {timeout:.0f} s" + (f": {last}" if last else ""))

    # -- state ---------------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.child.poll() is None

    def failure(self) -> str:
        return stderr_tail(self.inst.qemu_stderr_log)

    def disk_allocated(self) -> int:
        try:
            return int(os.stat(self.inst.disk).st_blocks) * 512
        except OSError:
            return 0

    def events(self) -> list[str]:
        """The names of the QMP events that arrived since the last look."""
        if self.qmp is None:
            return []
        try:
            names = [str(ev.get("event")) for ev in self.qmp.events()]
        except QMPError:
            return []
        for name in names:
            log.info("QEMU event %s", name)
        return names

    def check(self) -> None:
        """A STOP event means QEMU paused the guest: when its status says internal-error (typically KVM under
        nested virtualisation), stop QEMU and say what to do."""
        if "STOP" not in self.events() or self.qmp is None:
            return
        try:
            status = self.qmp.query_status()
        except QMPError:
            return
        if status != "internal-error":
            return
        self._force()
        raise LimapyError(
            "the guest stopped with a KVM internal error (QMP status internal-error); QEMU was stopped",
            hint=f"nested virtualisation often breaks KVM: retry with {ENV_ACCEL}=tcg",
        )

    def wait_exit(self, timeout: float) -> bool:
        """Up to `timeout` s for QEMU to exit, on a pidfd (woken by the exit itself); reaps it."""
        if self.child.poll() is not None:
            return True
        pids.wait_gone(self.pid, timeout)
        return self.child.poll() is not None

    # -- input ---------------------------------------------------------------------------------------------
    def _monitor(self) -> QMP:
        if self.qmp is None:
            raise LimapyError("QEMU's monitor is not connected")
        return self.qmp

    def send_key(self, key: str) -> None:
        self._monitor().send_key(key)

    def reset(self) -> None:
        self._monitor().execute("system_reset")

    # -- stop ----------------------------------------------------------------------------------------------
    def _force(self) -> None:
        if self.alive():
            try:
                self._monitor().quit()
            except LimapyError as e:
                log.warning("QMP quit failed (%s); killing QEMU", e.message)
            if not self.wait_exit(QUIT_TIMEOUT):
                self.child.kill()
                self.wait_exit(10.0)
        self._cleanup()

    def request_powerdown(self) -> None:
        try:
            self._monitor().system_powerdown()
            self.powerdown_requested = True
        except LimapyError as e:
            log.info("power-down request: %s", e.message)

    def shutdown(self, timeout: float) -> bool:
        """ACPI power-down (unless requested already) and wait up to `timeout`; then `quit`, then SIGKILL. True
        when the guest shut down by itself. Sidecars stop after QEMU in every case."""
        clean = not self.alive()
        if not clean:
            try:
                if not self.powerdown_requested:
                    self._monitor().system_powerdown()
                clean = self.wait_exit(timeout)
            except LimapyError as e:
                log.warning("QMP unreachable (%s); stopping QEMU", e.message)
            if not clean:
                log.warning("QEMU pid %d did not power down within %.0f s; stopping it", self.pid, timeout)
        self._force()
        return clean

    def _cleanup(self) -> None:
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        self.sidecars.stop_all()
        remove_runtime_files(self.inst)


def launch(inst: store.Instance, plan: BootPlan) -> QemuMachine:
    """Sidecars first, then QEMU (stderr to qemu.stderr.log), then its monitor; all stopped again on failure."""
    remove_runtime_files(inst)
    sup = Supervisor()
    try:
        for sc in plan.sidecars:
            sup.start(sc)
        fd = store.open_private(inst.qemu_stderr_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with open(fd, "wb") as err:
            child = proc.spawn(plan.argv, stderr=err)
    except BaseException:
        sup.stop_all()
        raise
    machine = QemuMachine(inst, child, sup)
    try:
        machine.connect()
        if plan.resume:
            from limapy.driver.qemu.suspend import resume

            resume(inst, machine._monitor(), machine.alive)
            suspended.discard(inst)  # the guest runs on: the state is history now
    except BaseException:
        machine._force()
        raise
    return machine
