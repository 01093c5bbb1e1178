"""swtpm, the software TPM 2.0 that `tpm: true` attaches: its command line, as a sidecar of QEMU.

The QEMU driver runs it as a sidecar (limapy.driver.qemu.planner, limapy.driver.sidecars): started before
QEMU and stopped after it; `--terminate` also ends it when QEMU closes the control socket.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from limapy.base.errors import ExternalToolError


def swtpm_argv(binary: str, state_dir: Path, sock: Path, pidfile: Path, log: Path) -> list[str]:
    return [
        binary,
        "socket",
        "--tpm2",
        "--tpmstate", f"dir={state_dir},mode=0600",
        "--ctrl", f"type=unixio,path={sock}",
        "--pid", f"file={pidfile}",
        "--log", f"level=1,file={log}",
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
