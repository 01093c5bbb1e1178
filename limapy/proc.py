"""The one place that runs subprocesses: argv lists only, logged shlex-joined."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from limapy.errors import ExternalToolError

log = logging.getLogger("limapy.proc")


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    args = [str(a) for a in argv]
    log.debug("run: %s", shlex.join(args))
    try:
        cp = subprocess.run(
            args,
            check=False,
            capture_output=capture,
            timeout=timeout,
            input=input,
            env=env,
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
