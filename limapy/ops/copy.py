"""`limapy copy [-r] [-v] [--backend auto|rsync|scp] SRC... DST` with `NAME:path` operands, through the instance's
ssh.config: rsync when both ends have it (Lima's default `auto`), else scp (limapy.copytool)."""

from __future__ import annotations

from collections.abc import Sequence

from limapy import driver
from limapy.base import proc
from limapy.base.errors import LimapyError
from limapy.instance import store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from limapy import copytool


class Request:
    """One `limapy copy` invocation, parsed (the CLI's fast path and the typer command build the same)."""

    __slots__ = ("backend", "operands", "recursive", "verbose")

    def __init__(self, operands: Sequence[str], recursive: bool = False, verbose: bool = False,
                 backend: str = "auto") -> None:  # fmt: skip
        self.operands, self.recursive, self.verbose, self.backend = tuple(operands), recursive, verbose, backend

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and (self.operands, self.recursive, self.verbose, self.backend) == (
            other.operands, other.recursive, other.verbose, other.backend)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Request({self.operands!r}, recursive={self.recursive}, verbose={self.verbose}, "
                f"backend={self.backend!r})")


_FLAGS = {"-r": "recursive", "--recursive": "recursive", "-v": "verbose", "--verbose": "verbose"}


def parse(args: Sequence[str]) -> Request | None:
    """Flags anywhere, `--` ends them; None for anything else (`--help`, an unknown flag, too few operands)."""
    flags: dict[str, bool] = {}
    operands: list[str] = []
    backend = "auto"
    done = False
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if done or not a.startswith("-") or a == "-":
            operands.append(a)
        elif a == "--":
            done = True
        elif a in _FLAGS:
            flags[_FLAGS[a]] = True
        elif a == "--backend" or a.startswith("--backend="):
            if "=" in a:
                backend = a.split("=", 1)[1]
            elif i < len(args):
                backend, i = args[i], i + 1
            else:
                return None
        elif len(a) > 2 and a[1] != "-" and all(f"-{c}" in _FLAGS for c in a[1:]):  # -rv
            flags.update({_FLAGS[f"-{c}"]: True for c in a[1:]})
        else:
            return None
    return Request(operands, backend=backend, **flags) if operands else None


def run(req: Request) -> int:
    return copy(req.operands, recursive=req.recursive, verbose=req.verbose, backend=req.backend)


def copy(operands: Sequence[str], *, recursive: bool = False, verbose: bool = False, backend: str = "auto") -> int:
    """scp's or rsync's exit code; every instance named must be running."""
    from limapy import copytool
    from limapy.ssh import scp_argv

    ops = copytool.operands(operands)
    for op in ops:
        if op.inst is not None and driver.status(op.inst) != store.RUNNING:
            raise LimapyError(f"instance `{op.inst.name}` is not running", hint=f"`limapy start {op.inst.name}`")
    if len(operands) < 2:
        return proc.call(scp_argv(operands, recursive=recursive, verbose=verbose))  # scp_argv says why
    rsync = _guest_paths(ops)
    guest_side = zip(operands, ops, strict=True)
    operands = [raw if op.inst is None else f"{raw.partition(':')[0]}:{op.path}" for raw, op in guest_side]
    if not rsync:  # a guest OS without rsync (Windows): scp, without asking the guest
        if backend == "rsync":
            raise LimapyError("rsync not available on guest(s)", hint="use --backend scp")
        backend = "scp" if backend == "auto" else backend
    if copytool.choose(backend, ops) == "rsync":
        return proc.call(copytool.rsync_argv(ops, recursive=recursive, verbose=verbose))
    return proc.call(scp_argv(operands, recursive=recursive, verbose=verbose))


def _guest_paths(ops: list[copytool.Operand]) -> bool:
    """Each guest path as its guest OS gives it to scp and rsync (limapy.guest.GuestOS.copy_path), in place.
    False when one of the guests' OS has no rsync."""
    from limapy import guest
    from limapy.instance import summary

    rsync = True
    for op in ops:
        if op.inst is not None:
            os_ = guest.for_spec(summary.load(op.inst).view)
            op.path = os_.copy_path(op.path)
            rsync = rsync and os_.rsync
    return rsync
