"""Pid files that are trusted only when they name the process they claim to.

A pid file outlives its process (a crash, a host reboot) and the pid is then reused by anything. So before
limapy reports a process as running, or signals it, the process's own command line must carry the marks of
the one limapy started, the instance *directory* among them (another LIMAPY_HOME may have an instance of the
same name): QEMU's `-name limapy-NAME` and `-pidfile DIR/qemu.pid`, the host agent's `hostagent NAME --dir
DIR`, swtpm's state dir, virtiofsd's socket. A pid file naming anything else is stale and is removed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def read_raw(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None when it cannot be read (gone, or not ours to read)."""
    if sys.platform.startswith("linux"):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    from limapy.base import proc

    try:
        cp = proc.run(["ps", "-o", "command=", "-p", str(pid)], check=False, timeout=5)
    except Exception:
        return None
    text = cp.stdout.decode("utf-8", "replace").strip()
    return text.split() if text else None


def matches(argv: Sequence[str], marks: Sequence[Sequence[str]]) -> bool:
    """Every mark (a run of consecutive arguments, each compared exactly) appears in argv."""
    for mark in marks:
        n = len(mark)
        if not any(list(argv[i : i + n]) == list(mark) for i in range(len(argv) - n + 1)):
            return False
    return True


def is_ours(pid: int, marks: Sequence[Sequence[str]]) -> bool:
    if not alive(pid):
        return False
    argv = cmdline(pid)
    if argv is None:
        return False
    if _zombie(pid):
        return False
    return matches(argv, marks)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] == "Z"
    except (OSError, IndexError):
        return False


def live(path: Path, marks: Sequence[Sequence[str]]) -> int | None:
    """The pid in `path` if that process is alive and carries `marks`; else None, and a stale file is removed.

    An empty file is one being written right now: not stale, not ours to remove."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError:
        return None
    if not text:
        return None
    pid = int(text) if text.isdigit() else 0
    if pid > 0 and is_ours(pid, marks):
        return pid
    if pid > 0 and alive(pid) and cmdline(pid) is None:
        return None  # cannot tell (another user's process): neither ours nor removed
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


def qemu_marks(name: str, pidfile: Path) -> list[list[str]]:
    """As limapy.qemu.cmdline writes them: the machine's name and its pid file, inside its instance dir."""
    return [["-name", f"limapy-{name}"], ["-pidfile", str(pidfile)]]


def hostagent_args(name: str, instance_dir: Path) -> list[str]:
    """The arguments that start the host agent of the instance in `instance_dir` (`limapy hostagent ...`)."""
    return ["hostagent", name, "--dir", str(instance_dir)]


def hostagent_marks(name: str, instance_dir: Path) -> list[list[str]]:
    return [["hostagent", name], ["--dir", str(instance_dir)]]


def swtpm_marks(state_dir: Path) -> list[list[str]]:
    """As limapy.qemu.tpm.swtpm_argv starts it: its own state directory."""
    return [["--tpmstate", f"dir={state_dir},mode=0600"]]


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` (not necessarily our child) has exited; True when it has within `timeout`.

    Linux: on a pidfd, which becomes readable when the process exits (no polling); elsewhere every 0.1 s."""
    import select
    import time

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0:
        try:
            ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
        finally:
            os.close(fd)
        return bool(ready) or not alive(pid) or _zombie(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid) or _zombie(pid):
            return True
        time.sleep(0.1)
    return not alive(pid) or _zombie(pid)
