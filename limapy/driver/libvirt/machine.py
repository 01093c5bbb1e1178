"""A running libvirt domain, as the host agent sees a machine (limapy.driver.Machine).

The domain starts paused; its serial console is opened as a libvirt stream (which works the same on a remote
host) and copied into the instance's serial.log by a thread, so the Windows boot-prompt logic and `start
--progress` read the console as they do for QEMU; then it runs. `libvirt.active` in the instance dir names
the host agent while its domain runs: `list` and `shell` tell Running from it without asking libvirtd.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from limapy.base.errors import LimapyError
from limapy.driver.libvirt import conn as lvconn
from limapy.driver.libvirt.domain import HOSTNET, KEY_ENTER
from limapy.instance import store

log = logging.getLogger("limapy.driver.libvirt")

ACTIVE = "libvirt.active"
#: A KVM failure this soon after the start (a boot) is retried under TCG; later, the running guest is lost.
KVM_FALLBACK_WINDOW = 600.0


def active_file(inst: store.Instance) -> Any:
    return inst.dir / ACTIVE


class Console(threading.Thread):
    """The domain's serial console, appended to serial.log until the stream ends. On a connection of its own:
    a blocking read on a libvirt stream holds its connection, and the host agent's calls must not wait."""

    def __init__(self, uri: str, name: str, inst: store.Instance) -> None:
        super().__init__(name="libvirt console", daemon=True)
        lv = lvconn.binding()
        self.conn = lvconn.connect(uri)
        dom = self.conn.lookupByName(name)
        self.stream = self.conn.newStream(0)
        dom.openConsole(None, self.stream, lv.VIR_DOMAIN_CONSOLE_FORCE)
        fd = store.open_private(inst.serial_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self.out = open(fd, "ab", buffering=0)  # closed by the thread when the stream ends

    def run(self) -> None:
        try:
            while True:
                data = self.stream.recv(1 << 16)
                if not isinstance(data, bytes) or not data:
                    break
                self.out.write(data)
        except Exception as e:  # the domain went away: the console ends with it
            log.debug("console ended: %s", e)
        finally:
            self.out.close()
            try:
                self.conn.close()
            except Exception as e:  # closed under us
                log.debug("console connection: %s", e)

    def close(self) -> None:
        try:
            self.stream.abort()
        except Exception as e:  # already finished
            log.debug("console stream: %s", e)
        self.join(2)


class LibvirtMachine:
    def __init__(self, inst: store.Instance, conn: Any, dom: Any, disk_vol: Any, uri: str = "") -> None:
        self.inst = inst
        self.uri = uri
        self.conn = conn
        self.dom = dom
        self.disk_vol = disk_vol
        self.pid = os.getpid()  # the engine's process is on the libvirt host: the host agent stands for it
        self.console: Console | None = None
        #: What the user should hear about this launch (the host agent shows them as warnings).
        self.notices: list[str] = []
        self.started = time.monotonic()
        self.powerdown_requested = False
        #: Called (once) when the guest stops on a KVM internal error after it started; None: an error.
        self.on_kvm_failure: Callable[[LibvirtMachine], None] | None = None

    def start(self, *, resume: bool, forwards: list[str]) -> None:
        lv = lvconn.binding()
        try:
            self.dom.createWithFlags(lv.VIR_DOMAIN_START_PAUSED)
        except lv.libvirtError as e:
            if resume:
                from limapy.driver.suspended import ResumeFailed

                raise ResumeFailed(lvconn.error_text(e)) from None
            raise LimapyError(f"libvirt could not start {self.dom.name()}: {lvconn.error_text(e)}") from None
        self.started = time.monotonic()
        store.atomic_write(self.inst.dir / ACTIVE, f"{os.getpid()}\n".encode(), 0o600)
        try:
            self._add_forwards(forwards)
        except BaseException:
            self.shutdown(0.0)
            raise
        try:
            self.console = Console(self.uri, self.dom.name(), self.inst)
            self.console.start()
        except lv.libvirtError as e:
            log.warning("no serial console: %s", lvconn.error_text(e))
        self.dom.resume()

    def _add_forwards(self, rules: list[str]) -> None:
        """`hostfwd_add` on the paused domain's SLIRP netdev (HMP; QEMU answers "" when a rule took)."""
        import libvirt_qemu  # type: ignore[import-untyped]  # part of the binding

        lv = lvconn.binding()
        for rule in rules:
            try:
                out = libvirt_qemu.qemuMonitorCommand(
                    self.dom, f"hostfwd_add {HOSTNET} {rule}", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
                )
            except lv.libvirtError as e:
                raise LimapyError(f"cannot forward {rule} to the guest: {lvconn.error_text(e)}") from None
            if str(out).strip():
                raise LimapyError(
                    f"cannot forward {rule} to the guest: {str(out).strip()}",
                    hint="is that port on the libvirt host taken? set `ssh.localPort: 0` to pick another",
                )

    def alive(self) -> bool:
        lv = lvconn.binding()
        try:
            return bool(self.dom.isActive())
        except lv.libvirtError:
            return False

    def check(self) -> None:
        lv = lvconn.binding()
        try:
            state, reason = self.dom.state(0)
        except lv.libvirtError:
            return
        if state == lv.VIR_DOMAIN_PAUSED and reason in (lv.VIR_DOMAIN_PAUSED_IOERROR, lv.VIR_DOMAIN_PAUSED_CRASHED):
            raise LimapyError(f"libvirt paused {self.dom.name()} after an error (state reason {reason})")
        if state == lv.VIR_DOMAIN_PAUSED and self._internal_error():
            # QEMU stopped the guest on a KVM internal error (libvirt says "paused (unknown)"): a host whose
            # KVM is offered but does not work (nested virtualisation). Once, the same domain under TCG.
            if self.on_kvm_failure is None or time.monotonic() - self.started > KVM_FALLBACK_WINDOW:
                raise LimapyError(f"{self.dom.name()} stopped on a KVM internal error (see {self.failure_path()})")
            again, self.on_kvm_failure = self.on_kvm_failure, None
            again(self)
        if state == lv.VIR_DOMAIN_CRASHED:
            raise LimapyError(f"{self.dom.name()} crashed")

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        self._ended()
        return True

    def _internal_error(self) -> bool:
        import libvirt_qemu  # part of the binding (typed as the first import)

        try:
            out = libvirt_qemu.qemuMonitorCommand(self.dom, '{"execute": "query-status"}', 0)
        except lvconn.binding().libvirtError:
            return False
        return '"internal-error"' in str(out)

    def failure_path(self) -> str:
        return f"/var/log/libvirt/qemu/{self.dom.name()}.log"

    def failure(self) -> str:
        path = self.failure_path()
        try:
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            return "\n".join(lines[-5:])
        except OSError:
            return ""

    def send_key(self, key: str) -> None:
        if key != "ret":
            raise LimapyError(f"the libvirt driver sends Enter only, not {key!r}")
        self.dom.sendKey(lvconn.binding().VIR_KEYCODE_SET_LINUX, 0, [KEY_ENTER], 1, 0)

    def reset(self) -> None:
        self.dom.reset(0)

    def disk_allocated(self) -> int:
        try:
            return lvconn.allocation(self.disk_vol)
        except Exception:  # the volume is being written: the next poll asks again
            return 0

    def request_powerdown(self) -> None:
        lv = lvconn.binding()
        try:
            self.dom.shutdownFlags(lv.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            self.powerdown_requested = True
        except lv.libvirtError as e:
            log.info("ACPI shutdown request refused: %s", lvconn.error_text(e))

    def shutdown(self, timeout: float) -> bool:
        lv = lvconn.binding()
        clean = True
        if self.alive():
            clean = False
            try:
                if not self.powerdown_requested:
                    self.dom.shutdownFlags(lv.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
                clean = self.wait_exit(timeout) if timeout > 0 else False
            except lv.libvirtError as e:
                log.warning("ACPI shutdown refused: %s", lvconn.error_text(e))
            if not clean:
                try:
                    self.dom.destroy()
                except lv.libvirtError as e:
                    log.warning("destroy: %s", lvconn.error_text(e))
        self._ended()
        return clean

    def _ended(self) -> None:
        if self.console is not None:
            self.console.close()
            self.console = None
        (self.inst.dir / ACTIVE).unlink(missing_ok=True)
