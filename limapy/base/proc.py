"""The one place that starts other programs: argv lists only (never a shell), logged shlex-joined.

- `run`: run to completion, output captured (qemu-img, ssh-keygen, swtpm --version, URL plugins).
- `call`: run in the foreground with the terminal (scp for `limapy copy`, an RDP client); its exit code.
- `spawn`: start detached in its own session (QEMU, swtpm, the host agent); a Popen the caller owns.
- `exec_replace`: become the program (ssh for `limapy shell`), so its exit code is limapy's.

What `run` and `call` start dies with limapy (Linux: PR_SET_PDEATHSIG): a SIGKILLed `clone --full` leaves
no `qemu-img convert` writing on. Not in a process with threads (the host agent): forking there runs no
Python code in the child (the `preexec_fn` caveat); the agent's children are short ssh calls with timeouts.

A test enforces that no other module imports `subprocess` or calls `os.exec*`.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from limapy.base.errors import ExternalToolError

# `limapy shell` and `list` import this module on their hot path: subprocess and logging (~10 ms together)
# are imported when a process is actually run, and debug lines go out only when --debug set logging up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import IO

    Completed = subprocess.CompletedProcess
    Process = subprocess.Popen
    TimeoutExpired = subprocess.TimeoutExpired
else:

    def __getattr__(name: str) -> object:
        """`proc.Completed`, `proc.Process`, `proc.TimeoutExpired`: subprocess's, imported on first use."""
        import subprocess

        found = {"Completed": subprocess.CompletedProcess, "Process": subprocess.Popen,
                 "TimeoutExpired": subprocess.TimeoutExpired}.get(name)  # fmt: skip
        if found is None:
            raise AttributeError(f"module 'limapy.base.proc' has no attribute {name!r}")
        return found


def _debug(msg: str, *args: object) -> None:
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("limapy.base.proc").debug(msg, *args)


def _args(argv: Sequence[str | Path]) -> list[str]:
    return [str(a) for a in argv]


_PR_SET_PDEATHSIG = 1


def _die_with_us() -> Callable[[], None] | None:
    """A `preexec_fn` that has the child killed when this process dies (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import threading

    if threading.active_count() > 1:
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def child() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # limapy died before the prctl: nobody would send the signal
            os._exit(1)

    return child


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    import subprocess

    args = _args(argv)
    _debug("run: %s", shlex.join(args))
    try:
        cp = subprocess.run(
            args,
            check=False,
            capture_output=capture,
            timeout=timeout,
            input=input,
            env=dict(env) if env is not None else None,
            preexec_fn=_die_with_us(),
        )
    except FileNotFoundError as e:
        raise ExternalToolError(f"{args[0]}: command not found") from e
    except subprocess.TimeoutExpired as e:
        raise ExternalToolError(f"{args[0]}: timed out after {timeout} s") from e
    if check and cp.returncode != 0:
        err = (cp.stderr or b"").decode(errors="replace").strip().splitlines()
        last = err[-1] if err else f"exit status {cp.returncode}"
        raise ExternalToolError(f"{Path(args[0]).name} failed: {last}")
    return cp


def call(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> int:
    """Run in the foreground, with this process's stdin/stdout/stderr; the program's exit code."""
    import subprocess

    args = _args(argv)
    _debug("call: %s", shlex.join(args))
    try:
        return subprocess.call(args, env=dict(env) if env is not None else None, preexec_fn=_die_with_us())
    except FileNotFoundError as e:
        raise ExternalToolError(f"{args[0]}: command not found") from e


def spawn(
    argv: Sequence[str | Path],
    *,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start detached: its own session (no terminal signals reach it), stdin on /dev/null, stdout/stderr as given
    (default /dev/null), no inherited descriptors."""
    import subprocess

    args = _args(argv)
    _debug("spawn: %s", shlex.join(args))
    try:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=dict(env) if env is not None else None,
        )
    except FileNotFoundError as e:
        raise ExternalToolError(f"{args[0]}: command not found") from e


def exec_replace(argv: Sequence[str | Path]) -> None:
    """Replace this process with `argv` (searched on PATH); returns only by raising."""
    args = _args(argv)
    _debug("exec: %s", shlex.join(args))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(args[0], args)  # noqa: S606 (argv list, no shell)
    except OSError as e:
        raise ExternalToolError(f"cannot run {args[0]}: {e.strerror}") from None


def windows_cmdline(argv: Sequence[str]) -> str:
    """argv as one Windows command line, quoted for CommandLineToArgvW (the MS C runtime's rules)."""
    import subprocess

    return subprocess.list2cmdline(list(argv))


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs `python -m MODULE ARGS` with this interpreter."""
    return [sys.executable, "-m", module, *args]
