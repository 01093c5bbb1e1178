"""`limapy copy [-r] SRC... DST` with `NAME:path` operands: scp through the instance's ssh.config."""

from __future__ import annotations

from collections.abc import Sequence

from limapy import driver, proc, store
from limapy.errors import LimapyError


class Request:
    """One `limapy copy` invocation, parsed (the CLI's fast path and the typer command build the same)."""

    __slots__ = ("operands", "recursive", "verbose")

    def __init__(self, operands: Sequence[str], recursive: bool = False, verbose: bool = False) -> None:
        self.operands, self.recursive, self.verbose = tuple(operands), recursive, verbose

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and (self.operands, self.recursive, self.verbose) == (
            other.operands, other.recursive, other.verbose)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Request({self.operands!r}, recursive={self.recursive}, verbose={self.verbose})"


_FLAGS = {"-r": "recursive", "--recursive": "recursive", "-v": "verbose", "--verbose": "verbose"}


def parse(args: Sequence[str]) -> Request | None:
    """Flags anywhere, `--` ends them; None for anything else (`--help`, an unknown flag, too few operands)."""
    flags: dict[str, bool] = {}
    operands: list[str] = []
    done = False
    for a in args:
        if done or not a.startswith("-") or a == "-":
            operands.append(a)
        elif a == "--":
            done = True
        elif a in _FLAGS:
            flags[_FLAGS[a]] = True
        elif len(a) > 2 and a[1] != "-" and all(f"-{c}" in _FLAGS for c in a[1:]):  # -rv
            flags.update({_FLAGS[f"-{c}"]: True for c in a[1:]})
        else:
            return None
    return Request(operands, **flags) if operands else None


def run(req: Request) -> int:
    return copy(req.operands, recursive=req.recursive, verbose=req.verbose)


def copy(operands: Sequence[str], *, recursive: bool = False, verbose: bool = False) -> int:
    """scp's exit code; every instance named must be running."""
    from limapy.ssh import scp_argv

    for op in operands:
        if ":" in op and not op.startswith(("/", ".")):
            inst = store.resolve(op.split(":", 1)[0])
            if driver.status(inst) != store.RUNNING:
                raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
    return proc.call(scp_argv(operands, recursive=recursive, verbose=verbose))
