"""The per-instance supervisor: owns the machine from launch to exit, and tells the world how the boot goes.

`limapy start` runs it detached (`python -m limapy hostagent NAME`), stdout -> ha.stdout.log (JSON-lines
events, Lima's shape plus `phase`), stderr -> ha.stderr.log (logging). It writes ha.pid, has the instance's
driver (limapy.driver) plan, materialize and launch the boot, waits for SSH and the guest's boot-done marker
(the plan's readiness rule), then waits for the machine to exit or for SIGTERM/SIGINT, on which it powers the
guest down gracefully. It always leaves a final `exiting` event that says why.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from limapy.base.dirs import ENV_DEBUG
from limapy.base.errors import LimapyError
from limapy.driver.plan import READY_NONE, BootPlan
from limapy.instance import store

if TYPE_CHECKING:
    from concurrent.futures import Future

    from limapy.base.records import Event, Status
    from limapy.config.model import Spec
    from limapy.driver import Driver, Machine
    from limapy.guest import GuestOS
    from limapy.guest.identity import CloneIdentity

log = logging.getLogger("limapy.agent.hostagent")

PROBE_INTERVAL = 2.0  # while SSH is not up yet
READY_POLL = 0.5  # once it is
STOP_TIMEOUT = 180.0


class Events:
    """JSON-lines events on stdout (ha.stdout.log): {"time", "status": {...}, "phase", "message"}."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.port: int | None = None
        self.phase = ""
        self.lock = threading.Lock()  # the port forwarder emits from its own thread

    def emit(self, phase: str | None = None, message: str | None = None, **status: Unpack[Status]) -> None:
        with self.lock:
            self._emit(phase, message, **status)

    def _emit(self, phase: str | None, message: str | None, **status: Unpack[Status]) -> None:
        if phase:
            self.phase = phase
        st: Status = {k: v for k, v in status.items() if v not in (None, False, [], "")}  # type: ignore[assignment]
        if self.port and "sshLocalPort" not in st:
            st["sshLocalPort"] = self.port
        ev: Event = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "status": st,
            "phase": self.phase,
        }
        if message:
            ev["message"] = message
        self.stream.write(json.dumps(ev) + "\n")
        self.stream.flush()


class Stop(Exception):
    pass


class _Wake(BaseException):
    """Raised by the signal handler into the idle wait for the machine's exit (`HostAgent._idle`), so a stop
    request is acted on at once, not at the wait's next timeout. A BaseException: nothing on the way (the
    engine's wait) may take it for an error of its own."""


class HostAgent:
    def __init__(self, inst: store.Instance, events: Events | None = None) -> None:
        self.inst = inst
        self.events = events or Events()
        self.stop_requested = threading.Event()
        self.machine: Machine | None = None
        self.guest_warnings: list[str] = []
        self.guest_errors: list[str] = []  # this boot's setup failed (provisioning): ready, but degraded
        self.identity: Future[CloneIdentity | None] | None = None  # a resumed clone's own (GuestOS.clone_identity)
        self.delete_on_stop: list[Path] = []
        self.guest: Any = None  # limapy.remote.Guest, kept open while the instance runs
        # an install's progress (the guest OS's limapy.guest.InstallPhases, serial.log's _Tail)
        self.phases: Any = None
        self.os: GuestOS | None = None  # the guest OS (limapy.guest): its probe, its services
        self.serial_start = 0
        self.plan_appends = False
        self.services: Any = None  # limapy.agent.services.Services (mounts, forwards)
        self.waiting = False  # in `_idle`: a stop signal raises _Wake there

    # -- signals ------------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping the guest", signum)
        self.stop_requested.set()
        if self.waiting:  # the main loop sleeps in the engine's wait: wake it (once)
            self.waiting = False
            raise _Wake

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    # -- main -----------------------------------------------------------------------------------------------
    def run(self) -> int:
        inst = self.inst
        pid = store.ha_pid(inst)
        if pid is not None and pid != os.getpid():
            raise LimapyError(f"instance `{inst.name}` already has a host agent (pid {pid})")
        store.atomic_write(inst.ha_pid, f"{os.getpid()}\n".encode(), 0o600)
        reason = "stopped"
        errors: list[str] = []
        try:
            reason = self._run()
        except Stop:
            reason = "stopped before the guest was ready"
        except LimapyError as e:
            errors = [e.message + (f" (hint: {e.hint})" if e.hint else "")]
            reason = "error"
        except Exception as e:  # a bug; still leave a readable event and no orphaned QEMU
            log.exception("host agent failed")
            errors = [f"internal error: {type(e).__name__}: {e}"]
            reason = "error"
        finally:
            self._shutdown()
            self.events.emit("exiting", reason, exiting=True, errors=errors)
            inst.ha_pid.unlink(missing_ok=True)
        return 0 if not errors else 1

    def _run(self) -> str:
        from limapy import driver, guest
        from limapy.instance import summary

        inst = self.inst
        self.events.emit("preparing", "reading the configuration")
        spec = summary.refresh(inst).spec
        self.os = guest.for_spec(spec)
        drv = driver.for_instance(inst)
        spec = drv.adapt(spec)
        plan = drv.plan(inst, spec)
        drv.materialize(inst, spec, plan)
        self.events.port = plan.ssh_port
        if inst.identity_pending.exists():  # a clone's own identity, made while it resumes (_own_identity)
            from concurrent.futures import ThreadPoolExecutor

            maker = ThreadPoolExecutor(1, thread_name_prefix="identity")
            self.identity = maker.submit(self.os.clone_identity, spec, inst.name)
            maker.shutdown(wait=False)
        for n in plan.notices:
            self.events.emit(message=n)
        # Where this boot's serial output starts (an engine that appends keeps earlier boots' before it).
        self.serial_start = _size(inst.serial_log)
        what = f"QEMU ({plan.accel})" if plan.driver == "qemu" else f"the {plan.driver} machine"
        if plan.resume:
            self.events.emit("resuming", f"resuming {what} from the saved state")
        else:
            self.events.emit("firmware", f"starting {what}")
        plan = self._launch(drv, spec, plan)
        self.plan_appends = plan.serial_appends
        assert self.machine is not None
        self._engine_notices(self.machine)
        if plan.answer_boot_prompt:
            self._answer_boot_prompt(self.machine)
        self.events.emit("booting", "guest booting", running=False)
        if plan.readiness != READY_NONE and not self._wait_ready(spec, plan, self.machine):
            return "QEMU exited before the guest was ready"
        if plan.readiness != READY_NONE:
            assert self.services is not None  # made once SSH answered (_wait_ready)
            self.services.start()
            self.os.booted(inst)
        for line in self.guest_warnings:
            self.events.emit(message=f"warning: guest: {line}")
        if plan.rdp_port:
            self.events.emit(message=f"Remote Desktop on 127.0.0.1:{plan.rdp_port} (`limapy rdp {inst.name}`)")
        for line in self.guest_errors:
            self.events.emit(message=f"error: guest: {line}")
        self.events.emit("ready", "ready", running=True, degraded=bool(self.guest_errors), errors=self.guest_errors)
        while not self.stop_requested.is_set():
            if self._idle(self.machine):
                if inst.suspend_state.exists():
                    return "suspended"
                return "QEMU exited (the guest shut down)"
        return "stopped"

    def _idle(self, machine: Machine) -> bool:
        """Up to a second of waiting for the machine to exit (True when it has); a stop signal ends the wait at
        once (`_on_signal` raises _Wake into it: `stop` waits for this process, not for a timeout). Every way
        out clears `waiting` within the outer `try` (the handler clears it too), so _Wake is raised nowhere else,
        whether the wait returns, fails or is interrupted."""
        try:
            try:
                self.waiting = True
                if self.stop_requested.is_set():  # a signal that came before `waiting` was set
                    return False
                return machine.wait_exit(1.0)
            finally:
                self.waiting = False
        except _Wake:
            return False

    def _launch(self, drv: Driver, spec: Spec, plan: BootPlan) -> BootPlan:
        """Launch the plan; when resuming from a saved state fails, discard the state and boot cold."""
        from limapy.driver.suspended import ResumeFailed, discard, warning

        try:
            self.machine = drv.launch(self.inst, plan)
            return plan
        except ResumeFailed as e:
            self.events.emit("firmware", warning(f"resuming failed ({e.message})"))
        discard(self.inst)
        plan = drv.plan(self.inst, spec)
        drv.materialize(self.inst, spec, plan)
        self.events.port = plan.ssh_port
        self.machine = drv.launch(self.inst, plan)
        return plan

    def _answer_boot_prompt(self, machine: Machine) -> None:
        """First boot of an install: press Enter for the install media's "Press any key to boot from CD or DVD"
        as the guest OS's prompt decides (limapy.guest.windows.bootprompt), until its installer has evidently
        started (never later)."""
        assert self.os is not None
        inst = self.inst
        prompt = self.os.boot_prompt(time.monotonic(), machine.disk_allocated())
        serial = _Tail(inst.serial_log, self.serial_start if self.plan_appends else 0)
        self.events.emit("firmware", "waiting for the install media's boot prompt")
        while True:
            if self.stop_requested.is_set():
                raise Stop()
            if not machine.alive():
                return  # the readiness loop reports why
            machine.check()
            action = prompt.feed(serial.read(), machine.disk_allocated(), time.monotonic())
            if action.press:
                machine.send_key("ret")
            if action.reset:
                serial.skip()  # the next attempt's output only
                machine.reset()
            if action.message:
                log.info("boot prompt: %s", action.message)
                self.events.emit("firmware", action.message)
            if action.done:
                return
            self.stop_requested.wait(prompt.poll)

    def _phases(self, serial: str = "", lines: list[str] | None = None) -> None:
        """Show an install's progress lines (from the serial console, or read with a probe) as the guest OS's
        phase (`[windows] ...`); a failure ends the wait with the step and the error."""
        reader = self.phases[0]
        for item in reader.feed(serial) if serial else reader.lines(lines or []):
            if isinstance(item, LimapyError):
                raise item
            self.events.emit(reader.name, item)

    def _check_machine(self, machine: Machine) -> None:
        if self.stop_requested.is_set():
            raise Stop()
        if not machine.alive():
            tail = machine.failure()
            raise LimapyError("QEMU exited before the guest was ready" + (f": {tail}" if tail else ""))
        machine.check()
        self._engine_notices(machine)

    def _engine_notices(self, machine: Machine) -> None:
        """What the engine learnt while launching or running the machine (e.g. a fallback), as warnings."""
        notices: list[str] = getattr(machine, "notices", [])
        while notices:
            self.events.emit(message=f"warning: {notices.pop(0)}")

    def _wait_ready(self, spec: Spec, plan: BootPlan, machine: Machine) -> bool:
        """Probe over one kept-open SSH connection (limapy.remote, fabric) until the guest OS's probe says the
        boot is done."""
        from limapy import remote

        assert self.os is not None
        os_ = self.os
        inst = self.inst
        ssh_up = False
        last_disk = 0
        key, _ = store.ensure_user_key()
        # A resumed guest's sshd is up but slow for a while (TCG translates its code anew): a short timeout
        # would only cut its first answer off and retry later.
        wait = 30.0 if plan.resume else 5.0
        from limapy.ssh import proxy_command

        self.guest = guest = remote.Guest(
            plan.ssh_port, plan.user, key, connect_timeout=wait, gateway=proxy_command(inst)
        )
        # the connection stays open for the guest services (mounts, forwards); closed in _shutdown
        if plan.install:
            reader = os_.install_phases(inst)
            if reader is not None:
                self.phases = (reader, _Tail(inst.serial_log, self.serial_start if plan.serial_appends else 0))
        while True:
            self._check_machine(machine)
            if self.phases is not None:
                self._phases(serial=self.phases[1].read())
            if plan.answer_boot_prompt and not ssh_up:
                size = machine.disk_allocated()
                if size > last_disk + (256 << 20):
                    self.events.emit(os_.install_progress(size), f"disk {size >> 20} MiB written")
                    last_disk = size
            # a clone whose identity step sets the clock (as root, with the rest) is not asked to set it twice
            clock_first = plan.resume and not self._identity_sets_clock()
            script = os_.probe(iid=plan.iid, resume=clock_first, ssh_up=ssh_up, now=time.time())
            try:
                r = guest.run(script, timeout=30)
            except remote.RemoteError as e:  # not up yet (slirp accepts before the guest listens)
                log.debug("probe: %s", e.message)
                self.stop_requested.wait(PROBE_INTERVAL)
                continue
            if not ssh_up:
                ssh_up = True
                self.events.emit(os_.ssh_phase, "SSH is up")
                from limapy.agent.services import Services

                if clock_first:
                    self._set_clock(guest, r)
                if self.identity is not None:  # first: the guest's CPU for it, not for the forwards' handshake
                    self._own_identity(guest, self.identity)
                self.services = Services(inst, spec, guest, ssh_port=plan.ssh_port, emit=self.events.emit)
                self.services.prepare()  # the forwards' SSH master, while the boot scripts run
                self.events.emit("provisioning", "waiting for the boot scripts")
            if self.phases is not None:
                self._phases(lines=r.stdout.splitlines())
            if os_.probe_ready(r, iid=plan.iid, resume=plan.resume):
                if os_.copies_to_host:
                    self._copy_to_host(guest, spec)
                self.guest_warnings = os_.ready_warnings(guest)
                self.guest_errors = os_.ready_errors(r)
                return True
            # a probe on an open connection costs milliseconds: look often once SSH is up
            self.stop_requested.wait(READY_POLL)

    def _set_clock(self, guest: Any, first: Any) -> None:
        """A resumed guest's clock stands where it was suspended: set it to the host's (the guest OS's way:
        limapy.guest.linux.clock did it with the first probe). `first` is that probe's result."""
        assert self.os is not None
        if self.os.after_resume(guest, first, time.time()):
            self.events.emit(message="the resumed guest's clock was set to the host's")
        else:
            self.events.emit(message="warning: could not set the resumed guest's clock to the host's")

    def _identity_sets_clock(self) -> bool:
        try:  # made while QEMU loaded the state: long done by the first probe
            given = self.identity.result() if self.identity is not None else None
        except Exception:  # _own_identity reports it
            return False
        return given is not None and given.sets_clock

    def _own_identity(self, guest: Any, making: Future[CloneIdentity | None]) -> None:
        """A clone resumed from its source's saved state is its source until this has run (once): its own
        hostname, machine-id, SSH host keys, as its guest OS allows (GuestOS.clone_identity)."""
        from limapy import remote

        try:
            given = making.result()
        except Exception as e:  # the host could not make its keys: the clone runs on as its source, said loudly
            log.exception("making the clone's identity")
            self.events.emit(message=f"warning: the clone could not be given its own identity: {e}")
            return
        if given is not None:
            command = f"{given.command} {time.time():.3f}" if given.sets_clock else given.command
            try:
                r = guest.run_input(command, given.stdin, timeout=300)
                failed = "" if r.exit_code == 0 else (r.stderr.strip().splitlines() or [f"exit {r.exit_code}"])[-1]
            except remote.RemoteError as e:
                failed = e.message
            if failed:
                self.events.emit(message=f"warning: the clone could not be given its own identity: {failed[:300]}")
                return  # tried again at its next start
            self.events.emit(message=f"the clone has its own identity: {given.what}")
            if given.sets_clock:
                self.events.emit(message="the resumed guest's clock was set to the host's")
        self.inst.identity_pending.unlink(missing_ok=True)

    def _copy_to_host(self, guest: Any, spec: Spec) -> None:
        """Lima's copyToHost: guest files copied to the host once the guest is ready (over SFTP)."""
        from limapy import remote

        for c in spec.copy_to_host:
            dst = Path(c.host)
            try:
                guest.get(c.guest, dst)
            except FileNotFoundError:
                if not c.skip_if_missing:
                    self.events.emit(message=f"warning: copyToHost: {c.guest} does not exist in the guest")
                continue
            except (remote.RemoteError, OSError) as e:
                self.events.emit(message=f"warning: copyToHost: {getattr(e, 'message', e)}")
                continue
            self.events.emit(message=f"copied {c.guest} from the guest to {dst}")
            if c.delete_on_stop:
                self.delete_on_stop.append(dst)

    def _shutdown(self) -> None:
        from limapy import ssh

        inst = self.inst
        machine = self.machine

        asked: list[bool] = []

        def power_down() -> None:  # asked as soon as nothing needs the guest; the tidying overlaps its shutdown
            if not asked and machine is not None and machine.alive():
                asked.append(True)
                self.events.emit("stopping", "powering the guest down")
                machine.request_powerdown()

        # Nothing to undo in the guest (no folders mounted over SSH or SMB): it is asked at once and left to shut
        # down with its sessions as they are (it ends them itself), and the host's side is tidied once it is off;
        # closing them meanwhile gave the guest their teardown to do while it shut down.
        first = self.services is None or not self.services.live
        if first and machine is not None and machine.alive():
            power_down()
            machine.wait_exit(STOP_TIMEOUT)
        if self.services is not None:
            self.services.stop(then=power_down)
        else:
            power_down()
        if self.guest is not None:
            self.guest.close()
        if machine is not None:
            if machine.alive():
                if not machine.shutdown(0.0 if first else STOP_TIMEOUT):  # `first`: it had its time
                    self.events.emit(message="the guest did not power down in time; QEMU was killed")
            else:
                machine.shutdown(0.0)  # sidecars and runtime files
        try:
            ssh.control_master_exit(inst)
        except LimapyError:
            pass
        inst.ssh_sock.unlink(missing_ok=True)
        for path in self.delete_on_stop:
            path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _Tail:
    """New text of a growing file (the serial log) from `offset` on, decoded leniently."""

    def __init__(self, path: Any, offset: int = 0) -> None:
        self.path = path
        self.offset = offset

    def read(self) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(1 << 20)
        except OSError:
            return ""
        self.offset += len(data)
        return data.decode("utf-8", "replace")

    def skip(self) -> None:
        try:
            self.offset = os.stat(self.path).st_size
        except OSError:
            pass


def main(name: str, instance_dir: str | None = None) -> int:
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get(ENV_DEBUG) not in (None, "", "0") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    inst = store.resolve(name, exact=True)
    if instance_dir is not None and Path(instance_dir) != inst.dir:
        raise LimapyError(f"the host agent of {instance_dir} was started with LIMAPY_HOME naming {inst.dir}")
    agent = HostAgent(inst)
    agent.install_signal_handlers()
    return agent.run()
