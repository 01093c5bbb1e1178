"""The supervisor of a machine's sidecar processes (swtpm, virtiofsd): started before the machine,
stopped after it in reverse order, and also after a crash (`stop_leftovers`, from the pid files)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import time
from pathlib import Path

from limapy.base import proc
from limapy.base.errors import ExternalToolError
from limapy.driver.plan import Sidecar
from limapy.instance import pids, store

log = logging.getLogger("limapy.driver.sidecars")


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


class Supervisor:
    def __init__(self) -> None:
        self.running: list[tuple[Sidecar, proc.Process[bytes]]] = []

    def start(self, sc: Sidecar, timeout: float = 10.0) -> int:
        """Start `sc` and wait until its socket serves; its pid. One error line (its stderr's last) on failure."""
        if sc.state_dir is not None:
            sc.state_dir.mkdir(mode=0o700, exist_ok=True)
        sc.ready.unlink(missing_ok=True)
        fd = store.open_private(sc.stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with open(fd, "wb") as err:
            child = proc.spawn(sc.argv, stderr=err)
        self.running.append((sc, child))
        if not sc.writes_pidfile:
            store.atomic_write(sc.pidfile, f"{child.pid}\n".encode(), 0o600)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _is_socket(sc.ready):
                return child.pid
            if child.poll() is not None:
                break
            time.sleep(0.05)
        self.stop_all()
        try:
            lines = sc.stderr.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        detail = f": {lines[-1]}" if lines else ""
        raise ExternalToolError(f"{sc.name} did not create {sc.ready} within {timeout:.0f} s{detail}")

    def stop_all(self, grace: float = 5.0) -> None:
        """Stop every sidecar this supervisor started, last first; their pid files and sockets go too."""
        while self.running:
            sc, child = self.running.pop()
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(grace)
                except proc.TimeoutExpired:
                    child.kill()
                    child.wait(5)
            _clean(sc)


def _clean(sc: Sidecar) -> None:
    sc.pidfile.unlink(missing_ok=True)
    sc.ready.unlink(missing_ok=True)


def stop_leftovers(sidecars: tuple[Sidecar, ...] | list[Sidecar]) -> None:
    """After a crash (no supervisor left): stop each sidecar its pid file names, only if it is that sidecar."""
    for sc in sidecars:
        pid = pids.live(sc.pidfile, sc.marks)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            log.info("stopped %s (pid %d) left by an earlier run", sc.name, pid)
        _clean(sc)
