"""The commands people run all day, without building the typer app (typer and click cost ~60 ms to import).

- `--version`, `validate FILE...`, `shell ...`, `stop ...` and the usual `list` forms are parsed here and call the
  same implementation the typer commands call. Anything these parsers do not know (another flag, `--`
  where it is unusual) is left to typer, which defines the interface; tests/unit/test_cli_fastpath.py holds
  both paths to the same result over a corpus of command lines.
- Shell completion requests (`_LIMAPY_COMPLETE`): command and instance names (limapy.cli.complete).
- Help (`limapy`, `--help`, `-h`, `CMD --help`) is rendered by typer once and kept in the cache dir, keyed by
  limapy's version, typer's, the terminal width click wraps to, and the size and mtime of every module
  under limapy/cli/ (where every help text lives): a changed help string is a new key, so the text shown is
  always what typer would print.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

HELP_FLAGS = ("-h", "--help")
COMPLETE_VAR = "_LIMAPY_COMPLETE"  # click's shell-completion request
HELP_CACHE = "help"


def is_help(args: list[str], commands: tuple[str, ...]) -> bool:
    return (
        not args
        or (len(args) == 1 and args[0] in HELP_FLAGS)
        or (len(args) == 2 and args[0] in commands and args[1] in HELP_FLAGS)
    )


def cached_help(args: list[str], commands: tuple[str, ...], render: Callable[[list[str]], int]) -> int:
    """Print the help `render` (the typer app) prints for `args`, from the cache when it holds it."""
    import json
    import zlib

    from limapy.base import dirs
    from limapy.cli.sourcekey import source_key

    key = source_key(args, commands)
    path = dirs.cache_dir() / HELP_CACHE / f"{zlib.crc32(key.encode()):08x}.json" if key else None
    from limapy.base import cachedir

    raw = cachedir.read_memo(path) if path is not None else None
    if raw is not None:
        try:
            hit = json.loads(raw)
            out, err, rc = hit["out"], hit["err"], hit["rc"]
            if hit["key"] == key and isinstance(out, str) and isinstance(err, str) and isinstance(rc, int):
                sys.stdout.write(out)
                sys.stderr.write(err)
                return rc
        except (ValueError, KeyError, TypeError):
            pass
    import contextlib
    import io

    out_buf, err_buf = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
        rc = render(args)
    sys.stdout.write(out_buf.getvalue())
    sys.stderr.write(err_buf.getvalue())
    if path is not None and rc == 0:
        record = {"key": key, "out": out_buf.getvalue(), "err": err_buf.getvalue(), "rc": rc}
        cachedir.write_memo(path, json.dumps(record).encode())
    return rc


def shell(args: list[str]) -> int | None:
    from limapy.ops import shell as ops

    req = ops.parse(args)  # None for `--help` (an unknown flag to it) and whatever else typer should judge
    if req is None:
        return None
    return ops.run(req)  # becomes ssh (or, with --sync, returns its exit code)


def stop(args: list[str]) -> int | None:
    from limapy.ops import stop as ops

    req = ops.parse(args)
    if req is None:
        return None
    from limapy.cli._report import report

    return ops.run(req, report)


def list_(args: list[str]) -> int | None:
    from limapy.ops import list as ops

    req = ops.parse(args)
    if req is None:
        return None
    from limapy.cli._util import say

    return ops.run(req, say=say)


def validate(args: list[str]) -> int | None:
    files = [a for a in args if a != "--fill"]
    if files and all(a == "-" or not a.startswith("-") for a in files):
        from limapy.ops.validate import validate_files

        return validate_files(files, fill=len(files) != len(args))
    return None


def copy(args: list[str]) -> int | None:
    from limapy.ops import copy as ops

    req = ops.parse(args)
    return ops.run(req) if req is not None else None


def yq(args: list[str]) -> int | None:
    from limapy.expr import yqcli

    return yqcli.main(args)


FAST: dict[str, Callable[[list[str]], int | None]] = {
    "shell": shell, "list": list_, "validate": validate, "copy": copy, "yq": yq, "stop": stop,
}
#: For the global flags after the command (globalflags.take_after): the options of each that take a value,
#: and whether options may follow its arguments (`shell`: not after the instance name, which starts the
#: command run in the guest). The typer commands say the same (tests/unit/test_cli_fastpath.py).
#: Commands whose arguments are another program's command line, global flags included: `limapy yq` is yq's,
#: as `limactl yq` is (Lima's yq.MaybeRunYQ runs before cobra reads any flag).
VERBATIM = ("yq",)
GRAMMAR: dict[str, tuple[tuple[str, ...], bool]] = {
    "shell": (("--workdir", "--shell", "--instance", "--sync"), False),
    "list": (("-f", "--format", "--yq", "-l", "--filter", "--connect"), True),
    "validate": ((), True),
    "copy": (("--backend",), True),
    "stop": ((), True),
}


def dispatch(
    args: list[str], commands: tuple[str, ...], render: Callable[[list[str]], int],
    build: Callable[[], object] | None = None,
) -> int | None:
    """The fast answer to `args`, or None for typer to give (`build` makes the typer app, for what the fast
    answers keep from it)."""
    if COMPLETE_VAR in os.environ:  # a shell asks for completions (the words are in COMP_WORDS, not `args`)
        from limapy.cli import complete

        return complete.answer(commands, build)
    if args[:1] == ["help"]:  # cobra's `help CMD`: `CMD --help`, from the help cache
        args = [*args[1:], "--help"]
    if args == ["--version"]:
        from limapy import __version__

        print(__version__)
        return 0
    if is_help(args, commands):
        return cached_help(args, commands, render)
    fast = FAST.get(args[0])
    if fast is None:
        return None
    if args[0] in VERBATIM:
        return fast(args[1:])
    from limapy.cli import globalflags

    before = globalflags.CURRENT.key()
    valued, interspersed = GRAMMAR[args[0]]
    rest = globalflags.take_after(args[1:], globalflags.CURRENT, valued=valued, interspersed=interspersed)
    if globalflags.CURRENT.key() != before:
        globalflags.apply(globalflags.CURRENT)
    return fast(rest)
