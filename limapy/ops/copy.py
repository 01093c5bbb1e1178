"""`limapy copy [-r] SRC... DST` with `NAME:path` operands: scp through the instance's ssh.config."""

from __future__ import annotations

from collections.abc import Sequence

from limapy import driver, proc, store
from limapy.errors import LimapyError


def copy(operands: Sequence[str], *, recursive: bool = False, verbose: bool = False) -> int:
    """scp's exit code; every instance named must be running."""
    from limapy.ssh import scp_argv

    for op in operands:
        if ":" in op and not op.startswith(("/", ".")):
            inst = store.resolve(op.split(":", 1)[0])
            if driver.status(inst) != store.RUNNING:
                raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
    return proc.call(scp_argv(operands, recursive=recursive, verbose=verbose))
