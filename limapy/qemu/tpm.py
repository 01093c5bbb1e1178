"""swtpm: the software TPM 2.0 that `tpm: true` attaches (started before QEMU, gone with it)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

from limapy.errors import ExternalToolError

STATE_DIR = "swtpm"
SOCK_NAME = "swtpm.sock"
PID_NAME = "swtpm.pid"
LOG_NAME = "swtpm.log"


def swtpm_argv(binary: str, instance_dir: Path, sock: Path | None = None) -> list[str]:
    sock = sock or instance_dir / SOCK_NAME
    return [
        binary,
        "socket",
        "--tpm2",
        "--tpmstate", f"dir={instance_dir / STATE_DIR},mode=0600",
        "--ctrl", f"type=unixio,path={sock}",
        "--pid", f"file={instance_dir / PID_NAME}",
        "--log", f"level=1,file={instance_dir / LOG_NAME}",
        "--terminate",
    ]  # fmt: skip


def find_swtpm(which: Callable[[str], str | None] = shutil.which) -> str:
    found = which("swtpm")
    if not found:
        raise ExternalToolError(
            "swtpm not found: `tpm: true` needs a software TPM",
            hint="install swtpm (apt install swtpm) or set `tpm: false`",
        )
    return found


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def start_swtpm(instance_dir: Path, sock: Path | None = None, timeout: float = 10.0) -> int:
    """Start swtpm for the instance and wait until its control socket exists; returns its pid."""
    from limapy.qemu.process import is_running, spawn_detached

    binary = find_swtpm()
    sock = sock or instance_dir / SOCK_NAME
    state = instance_dir / STATE_DIR
    state.mkdir(mode=0o700, exist_ok=True)
    sock.unlink(missing_ok=True)
    pid = spawn_detached(swtpm_argv(binary, instance_dir, sock), instance_dir / "swtpm.stderr.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_socket(sock):
            return pid
        if not is_running(pid):
            break
        time.sleep(0.05)
    stop_swtpm(instance_dir, pid)
    err = (instance_dir / "swtpm.stderr.log").read_text(errors="replace").strip().splitlines()
    detail = f": {err[-1]}" if err else ""
    raise ExternalToolError(f"swtpm did not create {sock} within {timeout:.0f} s{detail}")


def stop_swtpm(instance_dir: Path, pid: int | None = None) -> None:
    """Stop the instance's swtpm if it is still there (normally it ends with QEMU: --terminate)."""
    from limapy import pids

    pid = pid or pids.live(instance_dir / PID_NAME, pids.swtpm_marks(instance_dir))
    if pid and pids.is_ours(pid, pids.swtpm_marks(instance_dir)):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    (instance_dir / PID_NAME).unlink(missing_ok=True)
    (instance_dir / SOCK_NAME).unlink(missing_ok=True)
