"""`limapy-lima [COMMAND...]`: Lima's `lima` wrapper (cmd/lima), i.e. `limapy shell --instance NAME COMMAND...`.

The instance is $LIMAPY_INSTANCE, else Lima's $LIMA_INSTANCE, else `default`; $LIMAPY_SHELL / $LIMA_SHELL and
$LIMAPY_WORKDIR / $LIMA_WORKDIR give `--shell` and `--workdir`. `-h`/`--help` and `-v`/`--version` alone are
the wrapper's own, as in Lima's script; anything else is the command, its exit code the guest's.

It is installed as `limapy-lima`, not `lima`, so it never shadows a real Lima's `lima` on PATH; README says how
to make `lima` run it when Lima is not installed (an alias or a symbolic link: the usage text names whatever
it was called as).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(f"LIMAPY_{name}") or env.get(f"LIMA_{name}") or ""


def usage(prog: str, instance: str) -> str:
    return (f"Usage: {prog} [COMMAND...]\n\n"
            f'{prog} is an alias for "limapy shell {instance}".\n'
            f'The instance name ("{instance}") can be changed by specifying $LIMAPY_INSTANCE (or $LIMA_INSTANCE).\n\n'
            "The shell and initial workdir inside the instance can be specified via $LIMAPY_SHELL\n"
            "and $LIMAPY_WORKDIR (or $LIMA_SHELL and $LIMA_WORKDIR).\n\n"
            "See `limapy shell --help` for further information.\n")  # fmt: skip


def shell_args(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The `limapy` arguments the wrapper runs for `args`."""
    instance = _env(env, "INSTANCE") or "default"
    pre: list[str] = []
    if _env(env, "WORKDIR"):
        pre += ["--workdir", _env(env, "WORKDIR")]
    if _env(env, "SHELL"):
        pre += ["--shell", _env(env, "SHELL")]
    return ["shell", *pre, "--instance", instance, *args]


def main(argv: Sequence[str] | None = None) -> int:
    from limapy import cli

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 1 and args[0] in ("-h", "--help"):
        prog = os.path.basename(sys.argv[0]) or "limapy-lima"
        sys.stdout.write(usage(prog, _env(os.environ, "INSTANCE") or "default"))
        return 0
    if len(args) == 1 and args[0] in ("-v", "--version"):
        return cli.main(["--version"])
    return cli.main(shell_args(args, os.environ))


if __name__ == "__main__":
    sys.exit(main())
