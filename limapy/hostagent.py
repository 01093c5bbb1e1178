"""The per-instance supervisor: owns QEMU from launch to exit, and tells the world how the boot goes.

`limapy start` runs it detached (`python -m limapy hostagent NAME`), stdout -> ha.stdout.log (JSON-lines
events, Lima's shape plus `phase`), stderr -> ha.stderr.log (logging). It writes ha.pid, launches swtpm
and QEMU, waits for SSH and the guest's boot-done marker, then waits for QEMU to exit or for SIGTERM/SIGINT,
on which it powers the guest down gracefully. It always leaves a final `exiting` event that says why.
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
from typing import Any

from limapy import store
from limapy.errors import LimapyError
from limapy.qemu.cmdline import WIN_INSTALL

log = logging.getLogger("limapy.hostagent")

PROBE_INTERVAL = 2.0  # while SSH is not up yet
READY_POLL = 0.5  # once it is
WINDOWS_PROBE = (
    "PowerShell.exe -NoProfile -NonInteractive -Command \"if (Test-Path -Path "
    "'C:\\ProgramData\\Lima\\lima-boot-done.txt' -PathType Leaf) { exit 0 } else { exit 1 }\""
)
WINDOWS_WARNINGS = (
    "PowerShell.exe -NoProfile -NonInteractive -Command \"Get-Content -LiteralPath "
    "'C:\\ProgramData\\Lima\\limapy-warnings.txt' -ErrorAction SilentlyContinue\""
)
STOP_TIMEOUT = 180.0


class Events:
    """JSON-lines events on stdout (ha.stdout.log): {"time", "status": {...}, "phase", "message"}."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.port: int | None = None
        self.phase = ""

    def emit(self, phase: str | None = None, message: str | None = None, **status: Any) -> None:
        if phase:
            self.phase = phase
        st = {k: v for k, v in status.items() if v not in (None, False, [], "")}
        if self.port and "sshLocalPort" not in st:
            st["sshLocalPort"] = self.port
        ev: dict[str, Any] = {
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


class HostAgent:
    def __init__(self, inst: store.Instance, events: Events | None = None) -> None:
        self.inst = inst
        self.events = events or Events()
        self.stop_requested = threading.Event()
        self.qemu_pid: int | None = None
        self.swtpm_pid: int | None = None
        self.guest_warnings: list[str] = []
        self.delete_on_stop: list[Any] = []

    # -- signals ------------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping the guest", signum)
        self.stop_requested.set()

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
        from limapy import boot
        from limapy.qemu import process

        inst = self.inst
        self.events.emit("preparing", "reading the configuration")
        cfg = boot.instance_config(inst)
        plan = boot.prepare(inst, cfg)
        self.events.port = plan.ssh_port
        for n in plan.notices:
            self.events.emit(message=n)
        self.events.emit("firmware", f"starting QEMU ({plan.accel})")
        if plan.tpm:
            from limapy.qemu.tpm import start_swtpm

            self.swtpm_pid = start_swtpm(inst.dir)
        self.qemu_pid = process.launch(plan.argv, inst.dir)
        qmp = process.wait_qmp(inst.qmp_sock, pid=self.qemu_pid)
        try:
            if plan.windows_boot == WIN_INSTALL:
                # Synchronously, on this connection: QEMU's QMP socket takes one client at a time.
                self._answer_boot_prompt(qmp)
        finally:
            qmp.close()
        self.events.emit("booting", "guest booting", running=False)
        if not self._wait_ready(cfg, plan):
            return "QEMU exited before the guest was ready"
        if plan.windows and not inst.win_done_installation.exists():
            store.atomic_write(inst.win_done_installation, b"", 0o600)
        for line in self.guest_warnings:
            self.events.emit(message=f"warning: guest: {line}")
        if plan.rdp_port:
            self.events.emit(message=f"Remote Desktop on 127.0.0.1:{plan.rdp_port} (`limapy rdp {inst.name}`)")
        self.events.emit("ready", "ready", running=True)
        while not self.stop_requested.is_set():
            if not process.is_running(self.qemu_pid):
                return "QEMU exited (the guest shut down)"
            self.stop_requested.wait(1.0)
        return "stopped"

    def _answer_boot_prompt(self, qmp: Any) -> None:
        """First boot of a Windows install: press Enter for the install media's "Press any key to boot from
        CD or DVD" as limapy.bootprompt decides, until Setup has evidently started (never later)."""
        from limapy.bootprompt import POLL, BootPrompt
        from limapy.qemu import process

        inst = self.inst
        assert self.qemu_pid is not None
        prompt = BootPrompt(time.monotonic(), disk_base=_allocated(inst.disk))
        serial = _Tail(inst.serial_log)
        self.events.emit("firmware", "waiting for the install media's boot prompt")
        while True:
            if self.stop_requested.is_set():
                raise Stop()
            if not process.is_running(self.qemu_pid):
                return  # the readiness loop reports why
            process.watch_internal_error(inst.dir, qmp=qmp, pid=self.qemu_pid)
            action = prompt.feed(serial.read(), _allocated(inst.disk), time.monotonic())
            if action.press:
                qmp.send_key("ret")
            if action.reset:
                serial.skip()  # the next attempt's output only
                qmp.execute("system_reset")
            if action.message:
                log.info("boot prompt: %s", action.message)
                self.events.emit("firmware", action.message)
            if action.done:
                return
            self.stop_requested.wait(POLL)

    def _check_qemu(self) -> None:
        from limapy.qemu import process

        assert self.qemu_pid is not None
        if self.stop_requested.is_set():
            raise Stop()
        if not process.is_running(self.qemu_pid):
            tail = process.stderr_tail(self.inst.dir)
            raise LimapyError("QEMU exited before the guest was ready" + (f": {tail}" if tail else ""))
        process.watch_internal_error(self.inst.dir, pid=self.qemu_pid)

    def _wait_ready(self, cfg: dict[str, Any], plan: Any) -> bool:
        """Probe over one kept-open SSH connection (limapy.remote, fabric) until the guest says it is done."""
        from limapy import remote

        inst = self.inst
        ssh_up = False
        last_disk = 0
        script = WINDOWS_PROBE if plan.windows else "cat /run/lima-boot-done 2>/dev/null || true"
        key, _ = store.ensure_user_key()
        user = str((cfg.get("user") or {}).get("name") or "lima")
        with remote.Guest(plan.ssh_port, user, key, connect_timeout=5.0) as guest:
            while True:
                self._check_qemu()
                if plan.windows and plan.install and not ssh_up and plan.windows_boot == WIN_INSTALL:
                    size = _allocated(inst.disk)
                    if size > last_disk + (256 << 20):
                        phase = "Windows Setup" if size < (8 << 30) else "first logon"
                        self.events.emit(phase, f"disk {size >> 20} MiB written")
                        last_disk = size
                try:
                    r = guest.run(script, timeout=30)
                except remote.RemoteError as e:  # not up yet (slirp accepts before the guest listens)
                    log.debug("probe: %s", e.message)
                    self.stop_requested.wait(PROBE_INTERVAL)
                    continue
                if not ssh_up:
                    ssh_up = True
                    self.events.emit("ssh" if not plan.windows else "OpenSSH up", "SSH is up")
                    self.events.emit("provisioning", "waiting for the boot scripts")
                if plan.windows:
                    if r.exit_code == 0:
                        self.guest_warnings = _windows_warnings(guest)
                        return True
                elif r.stdout.strip() == plan.iid:
                    self._copy_to_host(guest, cfg)
                    return True
                # a probe on an open connection costs milliseconds: look often once SSH is up
                self.stop_requested.wait(READY_POLL)

    def _copy_to_host(self, guest: Any, cfg: dict[str, Any]) -> None:
        """Lima's copyToHost: guest files copied to the host once the guest is ready (over SFTP)."""
        from pathlib import Path

        from limapy import remote

        for c in cfg.get("copyToHost") or []:
            src, dst = str(c.get("guest") or ""), Path(str(c.get("host") or ""))
            try:
                guest.get(src, dst)
            except FileNotFoundError:
                if not c.get("skipIfMissing"):
                    self.events.emit(message=f"warning: copyToHost: {src} does not exist in the guest")
                continue
            except (remote.RemoteError, OSError) as e:
                self.events.emit(message=f"warning: copyToHost: {getattr(e, 'message', e)}")
                continue
            self.events.emit(message=f"copied {src} from the guest to {dst}")
            if c.get("deleteOnStop"):
                self.delete_on_stop.append(dst)

    def _shutdown(self) -> None:
        from limapy import ssh
        from limapy.qemu import process

        inst = self.inst
        if self.qemu_pid is not None and process.is_running(self.qemu_pid):
            self.events.emit("stopping", "powering the guest down")
            clean = process.graceful_stop(inst.dir, timeout=STOP_TIMEOUT, pid=self.qemu_pid)
            if not clean:
                self.events.emit(message="the guest did not power down in time; QEMU was killed")
        else:
            process.graceful_stop(inst.dir, timeout=1.0)  # cleans pid/sock files and swtpm
        try:
            ssh.control_master_exit(inst)
        except LimapyError:
            pass
        inst.ssh_sock.unlink(missing_ok=True)
        for path in self.delete_on_stop:
            path.unlink(missing_ok=True)


class _Tail:
    """New text of a growing file (the serial log), decoded leniently."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self.offset = 0

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


def _allocated(path: Any) -> int:
    try:
        return int(os.stat(path).st_blocks) * 512
    except OSError:
        return 0


def _windows_warnings(guest: Any) -> list[str]:
    """Lines the first-logon script left in limapy-warnings.txt (e.g. a user.shell that is not installed)."""
    from limapy import remote

    try:
        r = guest.run(WINDOWS_WARNINGS, timeout=30)
    except remote.RemoteError:
        return []
    if r.exit_code != 0:
        return []
    return [line.strip() for line in r.stdout.splitlines() if line.strip()][:20]


def main(name: str) -> int:
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("LIMAPY_DEBUG") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    inst = store.resolve(name, exact=True)
    agent = HostAgent(inst)
    agent.install_signal_handlers()
    return agent.run()
