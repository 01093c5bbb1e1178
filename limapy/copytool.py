"""How `copy` and `shell --sync` move files: scp or rsync through an instance's ssh.config (Lima's pkg/copytool).

- `scp -F <inst>/ssh.config [-r] -q|-v -- SRC... DST` with guest operands as `lima-NAME:PATH` (ssh.scp_argv);
- `rsync -a -q|-v --progress [-r] [--delete] -s -e "ssh -F <inst>/ssh.config" -- SRC... DST`: Lima's flags
  (pkg/copytool/rsync.go line 89); `-s` (--protect-args) keeps a guest path with spaces whole on rsync before
  3.2.4 too, where Lima quotes it instead. A recursive copy moves a directory's contents, as scp would
  (rsync.go line 138: the trailing `/` rules);
- `--backend auto` (Lima's default): rsync when the host has it, the guest has it and the operands are not
  both in guests; scp otherwise (copytool.go line 58).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence

from limapy.base import proc
from limapy.base.errors import LimapyError, UsageError
from limapy.instance import store

BACKENDS = ("auto", "rsync", "scp")


class Operand:
    __slots__ = ("inst", "path")

    def __init__(self, path: str, inst: store.Instance | None) -> None:
        self.path, self.inst = path, inst


def operands(args: Sequence[str]) -> list[Operand]:
    """`NAME:PATH` is in a guest (NAME an instance name or unique prefix); anything else is a host path."""
    out = []
    for op in args:
        name, sep, path = op.partition(":")
        if sep and name and "/" not in name and store.NAME_RE.fullmatch(name):
            out.append(Operand(path, store.resolve(name)))
        else:
            out.append(Operand(op, None))
    return out


def guest_has_rsync(inst: store.Instance) -> bool:
    from limapy.ssh import config_argv

    cp = proc.run([*config_argv(inst), "command -v rsync >/dev/null 2>&1"], check=False, timeout=30)
    return cp.returncode == 0


def choose(backend: str, ops: Sequence[Operand]) -> str:
    """`rsync` or `scp`, as Lima's copytool.New chooses; the reason in one line when it cannot."""
    if backend not in BACKENDS:
        raise UsageError(f"invalid backend `{backend}`, must be one of: scp, rsync, auto")
    guests = {op.inst.name: op.inst for op in ops if op.inst is not None}
    if backend == "scp":
        return "scp"
    if backend == "auto" and sum(op.inst is not None for op in ops) > 1:
        return "scp"  # rsync cannot copy between two remote ends
    if shutil.which("rsync") is None:
        if backend == "rsync":
            raise LimapyError("rsync not found on host", hint="install rsync, or use --backend scp")
        return "scp"
    if all(guest_has_rsync(i) for i in guests.values()):
        return "rsync"
    if backend == "rsync":
        raise LimapyError("rsync not available on guest(s)", hint="install rsync in the guest, or use --backend scp")
    return "scp"


def rsync_argv(ops: Sequence[Operand], *, recursive: bool = False, verbose: bool = False,
               extra: Sequence[str] = ()) -> list[str]:  # fmt: skip
    from limapy.ssh import host_alias, ssh_command

    insts = {op.inst.name: op.inst for op in ops if op.inst is not None}
    if len(insts) != 1:
        raise UsageError("rsync copies between the host and one instance", hint="use --backend scp")
    inst = next(iter(insts.values()))
    paths = [op.path for op in ops]
    if recursive:  # rsync.go line 138: a directory's contents, as scp -r copies them
        for i, op in enumerate(ops):
            if paths[i].endswith("/"):
                if op.inst is not None:
                    paths = [p.rstrip("/") if j != i else p for j, p in enumerate(paths)]
                else:
                    paths[i] = paths[i].rstrip("/")
            else:
                paths[i] += "/"
    flags = ["-a", *(["-v", "--progress"] if verbose else ["-q"]), *(["-r"] if recursive else []), *extra, "-s"]
    remote_shell = shlex.join([*ssh_command(), "-F", str(inst.ssh_config)])
    args = [f"{host_alias(inst)}:{p}" if op.inst is not None else p for op, p in zip(ops, paths, strict=True)]
    return ["rsync", *flags, "-e", remote_shell, "--", *args]
