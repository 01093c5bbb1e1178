"""QEMU as a process: launch detached, reach QMP, watch for KVM trouble, stop gracefully then kill."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from limapy.dirs import ENV_ACCEL
from limapy.errors import LimapyError
from limapy.qemu.qmp import QMP, QMPError

log = logging.getLogger("limapy.qemu.process")

PID_NAME = "qemu.pid"
QMP_NAME = "qmp.sock"
SERIAL_SOCK_NAME = "serial.sock"
STDERR_NAME = "qemu.stderr.log"

#: Children started by this process: polled so an exited child is reaped, not left as a zombie.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn_detached(argv: list[str], stderr_path: Path) -> int:
    """Start argv in its own session, stdin/stdout on /dev/null, stderr into stderr_path."""
    log.debug("spawn: %s", shlex.join(argv))
    with open(stderr_path, "wb") as err:
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError as e:
            raise LimapyError(f"{argv[0]}: command not found") from e
    _CHILDREN[child.pid] = child
    return child.pid


def is_running(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie someone else has not reaped yet is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def qemu_pid(instance_dir: Path) -> int | None:
    """The instance's QEMU from its pid file, only when that process is it (`-name limapy-NAME`)."""
    from limapy import pids

    return pids.live(instance_dir / PID_NAME, pids.qemu_marks(instance_dir.name))


def stderr_tail(instance_dir: Path, lines: int = 3) -> str:
    try:
        text = (instance_dir / STDERR_NAME).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def launch(argv: list[str], instance_dir: Path) -> int:
    """Start QEMU detached; its stderr goes to qemu.stderr.log in the instance dir. Returns the pid."""
    for stale in (QMP_NAME, SERIAL_SOCK_NAME, PID_NAME):
        (instance_dir / stale).unlink(missing_ok=True)
    return spawn_detached(argv, instance_dir / STDERR_NAME)


def wait_qmp(sock: Path, timeout: float = 30.0, pid: int | None = None) -> QMP:
    """Connect to QMP once QEMU has created the socket; fail early with QEMU's stderr if it died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if pid is not None and not is_running(pid):
            tail = stderr_tail(sock.parent)
            raise LimapyError("QEMU exited during start-up" + (f":\n{tail}" if tail else ""))
        if sock.exists():
            try:
                return QMP.connect(sock, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            except QMPError as e:
                last = e
        time.sleep(0.1)
    raise LimapyError(f"QMP socket {sock} did not answer within {timeout:.0f} s" + (f": {last}" if last else ""))


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.1)
    return not is_running(pid)


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_gone(pid, 10.0)


def hard_stop(instance_dir: Path, pid: int, *, quit_timeout: float = 10.0) -> None:
    """Stop QEMU now, without the guest's cooperation: QMP `quit` first (QEMU then writes its disk caches,
    qcow2 metadata included, before it exits), SIGKILL when QMP does not answer or QEMU does not exit."""
    try:
        with QMP.connect(instance_dir / QMP_NAME, timeout=2.0) as qmp:
            qmp.quit()
        if _wait_gone(pid, quit_timeout):
            return
    except QMPError as e:
        log.warning("QMP unreachable (%s); killing QEMU", e)
    kill(pid)


def _cleanup(instance_dir: Path) -> None:
    from limapy.qemu.tpm import stop_swtpm

    for name in (PID_NAME, QMP_NAME, SERIAL_SOCK_NAME):
        (instance_dir / name).unlink(missing_ok=True)
    stop_swtpm(instance_dir)
    for pid in [p for p, c in _CHILDREN.items() if c.poll() is not None]:
        del _CHILDREN[pid]  # reaped: forget it


def graceful_stop(instance_dir: Path, timeout: float = 180.0, pid: int | None = None) -> bool:
    """ACPI power-down, wait up to `timeout`, then SIGKILL. True when the guest shut down by itself."""
    pid = pid or qemu_pid(instance_dir)
    if pid is None or not is_running(pid):
        _cleanup(instance_dir)
        return True
    clean = False
    try:
        with QMP.connect(instance_dir / QMP_NAME, timeout=5.0) as qmp:
            qmp.system_powerdown()
        clean = _wait_gone(pid, timeout)
    except QMPError as e:
        log.warning("QMP unreachable (%s); killing QEMU", e)
    if not clean:
        log.warning("QEMU pid %d did not power down within %.0f s; stopping it", pid, timeout)
        hard_stop(instance_dir, pid)
    _cleanup(instance_dir)
    return clean


def watch_internal_error(instance_dir: Path, qmp: QMP | None = None, pid: int | None = None) -> None:
    """One check: if the guest sits in `internal-error` (typically KVM), stop QEMU and say what to do."""
    own = qmp is None
    q = qmp or QMP.connect(instance_dir / QMP_NAME, timeout=5.0)
    try:
        status = q.query_status()
    finally:
        if own:
            q.close()
    if status != "internal-error":
        return
    pid = pid or qemu_pid(instance_dir)
    if pid is not None:
        kill(pid)
    _cleanup(instance_dir)
    raise LimapyError(
        "the guest stopped with a KVM internal error (QMP status internal-error); QEMU was stopped",
        hint=f"nested virtualisation often breaks KVM: retry with {ENV_ACCEL}=tcg",
    )
