"""Shell completion without the typer app: what a Tab press asks most, answered as typer would answer it.

`limapy completion SHELL` prints typer's script, which calls `limapy` back with `_LIMAPY_COMPLETE=complete_SHELL`
and the command line in `COMP_WORDS`/`COMP_CWORD` (bash) or `_TYPER_COMPLETE_ARGS` (zsh, fish, powershell).
Building the typer app for that costs more than 100 ms per press. This module answers two cases itself:

- the command name (the first word, nothing before it): the visible commands starting with it, each as the
  line typer's completion class formats for the shell (help text included). typer computes those lines
  once; the cache dir keeps them, keyed by limapy's version, typer's file and every module of cli/, as the
  help cache is;
- an instance argument of a command in INSTANCE_ARGS (its first positional, or every one):
  `ops.completion.candidates(command, word)`, which typer's completers call too: the instance names (a
  directory listing; no lima.yaml or summary is read), for `start`/`stop`/`suspend` only those not Running /
  not Stopped (pid files), and `template:NAME`s where a template may be given (start, create, validate, doctor).

Anything else (an option or its value, a global flag, a subcommand of snapshot/disk/template, a second
positional, an instruction other than `complete_*`) returns None, and typer answers.
tests/unit/test_cli_complete.py holds both answers equal over a corpus, for every shell.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

TYPE_CHECKING = False  # typing costs ~4 ms on every Tab press
if TYPE_CHECKING:
    from typing import Any

COMPLETE_VAR = "_LIMAPY_COMPLETE"
CACHE_DIR = "complete"
CACHE_VERSION = 1
ALL = 0
#: Commands (hidden aliases too) whose first positional argument (ALL: every one) is completed with instance
#: names; the typer commands name `complete_instances` for exactly these (a test checks both ways).
INSTANCE_ARGS: dict[str, int] = {
    "start": 1, "stop": ALL, "suspend": ALL, "delete": ALL, "remove": ALL, "rm": ALL, "list": ALL, "ls": ALL,
    "shell": 1, "rdp": 1, "info": 1, "screenshot": 1, "restart": 1, "edit": 1, "clone": 1, "rename": 1,
    "factory-reset": 1, "protect": ALL, "unprotect": ALL, "show-ssh": 1, "tunnel": 1, "watch": ALL,
    "doctor": 1, "create": 1, "validate": ALL,  # templates (and for doctor instances too)
}  # fmt: skip
#: The shells of typer's completion classes (`pwsh` is its other name for PowerShell's).
SHELLS = {"bash": "bash", "zsh": "zsh", "fish": "fish", "powershell": "powershell", "pwsh": "powershell"}

Build = Callable[[], object]


class Request:
    __slots__ = ("args", "incomplete", "shell")

    def __init__(self, shell: str, args: list[str], incomplete: str) -> None:
        self.shell, self.args, self.incomplete = shell, args, incomplete


def split(text: str) -> list[str]:
    """click's split_arg_string: shlex words, an unclosed quote or escape taken as it is."""
    import shlex

    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out: list[str] = []
    try:
        out.extend(lex)
    except ValueError:
        out.append(lex.token)
    return out


def request(environ: Mapping[str, str]) -> Request | None:
    """The words before the one being completed and that word, read as typer's completion classes read them."""
    action, _, name = environ.get(COMPLETE_VAR, "").partition("_")
    shell = SHELLS.get(name)
    if action != "complete" or shell is None:
        return None
    if shell == "bash":
        try:
            words, cword = split(environ["COMP_WORDS"]), int(environ["COMP_CWORD"])
        except (KeyError, ValueError):
            return None
        if cword < 1:
            return None
        return Request(shell, words[1:cword], words[cword] if cword < len(words) else "")
    line = environ.get("_TYPER_COMPLETE_ARGS", "")
    words = split(line)
    if shell == "powershell":
        incomplete = environ.get("_TYPER_COMPLETE_WORD_TO_COMPLETE", "")
        return Request(shell, words[1:-1] if incomplete else words[1:], incomplete)
    args = words[1:]
    if args and not line.endswith(" "):
        return Request(shell, args[:-1], args[-1])
    return Request(shell, args, "")


def _zsh_escape(s: str) -> str:
    return s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`").replace(":", r"\\:")


def _plain_item(shell: str, value: str) -> str:
    """A completion without help text, formatted as typer's class for `shell` formats it."""
    if shell == "zsh":
        return f'"{_zsh_escape(value)}"'
    if shell == "powershell":
        return f"{value}::: "
    return value


def _emit(shell: str, lines: list[str], environ: Mapping[str, str]) -> int:
    """Print what typer's `complete()` returns for these formatted items (click echoes it with a newline)."""
    if shell == "zsh":
        text = f"_arguments '*: :(({chr(10).join(lines)}))'" if lines else "_files"
    elif shell == "fish":
        action = environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if action == "is-args":  # typer exits here, printing nothing: 0 offers these, 1 lets fish list files
            return 0 if lines else 1
        text = "\n".join(lines) if action == "get-args" else ""
    else:
        text = "\n".join(lines)
    sys.stdout.write(text + "\n")
    return 0


def answer(commands: tuple[str, ...], build: Build | None, environ: Mapping[str, str] = os.environ) -> int | None:
    """Answer the completion request in `environ` and return the exit code; None leaves it to typer."""
    req = request(environ)
    if req is None or req.incomplete.startswith("-") or req.incomplete == "=":
        return None  # options are typer's
    if any(a.startswith("-") for a in req.args):
        return None  # and so are option values, global flags and whatever follows `--`
    if not req.args:
        table = command_lines(commands, build)
        if table is None:
            return None
        lines = [shells[req.shell] for name, shells in table if name.startswith(req.incomplete)]
        return _emit(req.shell, lines, environ)
    wanted = INSTANCE_ARGS.get(req.args[0])
    if wanted is None or (wanted != ALL and len(req.args) > wanted):
        return None
    from limapy.ops.completion import candidates

    names = candidates(req.args[0], req.incomplete)
    return _emit(req.shell, [_plain_item(req.shell, n) for n in names], environ)


def command_lines(commands: tuple[str, ...], build: Build | None) -> list[tuple[str, dict[str, str]]] | None:
    """(name, {shell: formatted line}) of every visible command, in typer's order: from the cache, else from
    the typer app (and then cached); None when there is no app to ask."""
    import json
    import zlib

    from limapy.base import dirs
    from limapy.cli.sourcekey import source_key

    key = source_key(["complete", str(CACHE_VERSION)], commands, width=False)
    path = dirs.cache_dir() / CACHE_DIR / f"{zlib.crc32(key.encode()):08x}.json" if key else None
    from limapy.base import cachedir

    raw = cachedir.read_memo(path) if path is not None else None
    if raw is not None:
        try:
            hit = json.loads(raw)
            if hit["key"] == key and all(isinstance(n, str) and isinstance(s, dict) for n, s in hit["commands"]):
                return [(n, s) for n, s in hit["commands"]]
        except (ValueError, KeyError, TypeError):
            pass
    if build is None:
        return None
    table = typer_lines(build)
    if path is not None:  # a read-only cache: typer formats them on every press
        cachedir.write_memo(path, json.dumps({"key": key, "commands": table}).encode())
    return table


def typer_lines(build: Build) -> list[tuple[str, dict[str, str]]]:
    """What typer offers for an empty first word (visible commands with their short help), formatted by
    typer's own completion class for each shell."""
    import typer.main
    from typer._completion_classes import BashComplete, FishComplete, PowerShellComplete, ZshComplete

    built: Any = build()
    group = built if hasattr(built, "commands") else typer.main.get_command(built)
    ctx = group.make_context("limapy", [], resilient_parsing=True)
    formatters = {
        "bash": BashComplete(group, {}, "limapy", COMPLETE_VAR), "zsh": ZshComplete(group, {}, "limapy", COMPLETE_VAR),
        "fish": FishComplete(group, {}, "limapy", COMPLETE_VAR),
        "powershell": PowerShellComplete(group, {}, "limapy", COMPLETE_VAR),
    }  # fmt: skip
    return [(item.value, {shell: f.format_completion(item) for shell, f in formatters.items()})
            for item in group.shell_complete(ctx, "")]  # fmt: skip
