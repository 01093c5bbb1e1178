"""limactl's global flags: before the command, or after it wherever they cannot be the command's own arguments.

    limapy [--debug] [--log-level LEVEL] [--log-format text|json] [--tty[=BOOL]] [-y|--yes] COMMAND ...
    limapy COMMAND [ARGS] [--debug] [--tty=false] [-y] ...   (as cobra's persistent flags)

After the command they are taken among its options, also between its arguments, except:
- after `--`, and as the value of one of the command's options (`create --name -y` names the instance `-y`);
- where the command stops reading options at its first argument (`shell`: everything after the instance
  name is the command run in the guest, so `limapy shell web rm -y f` keeps its `-y`; `shell -y web` is the
  global flag).
`take` reads the front of the command line; `take_after` the rest, given which of the command's options
take a value and whether it reads options between arguments (the CLI's fast path states that for the
commands it parses; `take_click` reads it from the typer app's commands). `--tty=false` and `-y`/`--yes`
(Lima's alias of it) turn off live progress and prompts; `--log-level` and `--log-format` set up logging
(imported only then: it costs ~10 ms).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Sequence

from limapy.base.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LEVELS = {"trace": 10, "debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50, "panic": 50}
FORMATS = ("text", "json")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class Settings:
    __slots__ = ("debug", "log_format", "log_level", "tty")

    def __init__(self) -> None:
        self.debug = False
        self.log_level: str | None = None
        self.log_format = "text"
        self.tty: bool | None = None

    def key(self) -> tuple[object, ...]:
        return (self.debug, self.log_level, self.log_format, self.tty)


#: The settings of this run: `main` sets them from the front of the command line, the fast path and the typer
#: path add what follows the command; the error ladder reads `debug` from here.
CURRENT = Settings()
#: Every spelling of a global flag (the `=VALUE` forms aside), for the CLI's help and tests.
NAMES = ("--debug", "--log-level", "--log-format", "--tty", "-y", "--yes")


def take_one(args: Sequence[str], i: int, s: Settings) -> int:
    """How many words of `args` from `i` are a global flag (0, 1 or 2), recorded in `s`."""
    a = args[i]
    key, eq, value = a.partition("=")
    used = 1
    if key in ("--log-level", "--log-format"):
        if not eq:
            if i + 1 >= len(args):
                raise UsageError(f"{key} needs a value")
            value, used = args[i + 1], 2
        if key == "--log-level":
            if value.lower() not in LEVELS:
                raise UsageError(f"--log-level {value!r}: use one of {', '.join(LEVELS)}")
            s.log_level = value.lower()
        else:
            if value not in FORMATS:
                raise UsageError(f"--log-format {value!r}: use text or json")
            s.log_format = value
    elif key == "--tty":
        if eq and value.lower() not in _BOOLS:
            raise UsageError(f"--tty={value}: use true or false")
        s.tty = _BOOLS[value.lower()] if eq else True
    elif a in ("-y", "--yes"):
        s.tty = False
    elif a == "--debug":
        s.debug = True
    else:
        return 0  # --help, --version, a command's own option
    return used


def take(args: Sequence[str]) -> tuple[Settings, list[str]]:
    """The global flags at the front of `args`, and what follows them."""
    s = Settings()
    rest = list(args)
    while rest and rest[0].startswith("-"):
        used = take_one(rest, 0, s)
        if not used:
            break
        del rest[:used]
    return s, rest


def take_after(
    args: Sequence[str], s: Settings, *, valued: Collection[str] = (), interspersed: bool = True
) -> list[str]:
    """`args` (what follows a command's name) without the global flags among its options, recorded in `s`.

    `valued`: the command's options that take a value (the next word is that value, never a flag);
    `interspersed`: whether options may follow its arguments (False: the first argument ends them)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out.extend(args[i:])
            break
        if a.startswith("-") and a != "-":
            used = take_one(args, i, s)
            if used:
                i += used
                continue
            out.append(a)
            i += 1
            if a in valued and i < len(args):  # `--opt VALUE`, `-f VALUE` (not `--opt=V`, `-fV`)
                out.append(args[i])
                i += 1
            continue
        if not interspersed:
            out.extend(args[i:])
            break
        out.append(a)
        i += 1
    return out


class _JSONFormatter:
    """logrus's JSON shape: one object per line with level, msg, time."""

    def format(self, record: object) -> str:
        import datetime

        rec = record.__dict__
        level = str(rec["levelname"]).lower().replace("warning", "warn").replace("critical", "fatal")
        when = datetime.datetime.fromtimestamp(float(rec["created"]), datetime.UTC).isoformat()
        msg = str(rec["msg"]) % rec["args"] if rec.get("args") else str(rec["msg"])
        return json.dumps({"level": level, "msg": msg, "time": when, "logger": rec["name"]})


def apply(s: Settings) -> None:
    if s.tty is not None:
        from limapy.base.term import ENV_TTY

        os.environ[ENV_TTY] = "1" if s.tty else "0"
    level = LEVELS["debug"] if s.debug else LEVELS.get(s.log_level or "", None)
    if level is None and s.log_format == "text":
        return
    import logging

    handler = logging.StreamHandler(sys.stderr)
    if s.log_format == "json":
        handler.setFormatter(_JSONFormatter())  # type: ignore[arg-type]  # duck-typed: only .format is used
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level if level is not None else logging.WARNING, handlers=[handler], force=True)


# -- the typer app's side -----------------------------------------------------------------------------------

GLOBAL_HELP = (
    (("--debug",), None, "Debug logging and tracebacks."),
    (("--log-level",), ("trace", "debug", "info", "warn", "error"), "Log level: trace, debug, info, warn or error."),
    (("--log-format",), FORMATS, "Log format: text, or json (one object per line)."),
    (("--tty",), None, "Live progress and prompts; --tty=false turns them off (default: when stderr is a terminal)."),
    (("-y", "--yes"), None, "Alias of --tty=false."),
)


def take_click(group: Any, args: Sequence[str], s: Settings) -> list[str]:
    """`take_after` for the command `args` name in the click group of the typer app (its subcommand too), with
    the options that take a value and the interspersing read from that command."""
    out: list[str] = []
    i = 0
    cmd = group
    while hasattr(cmd, "commands"):  # a group: its options, then the word naming its command
        while i < len(args) and args[i].startswith("-") and args[i] != "--":
            used = take_one(args, i, s)
            if not used:
                out.append(args[i])
            i += max(used, 1)
        if i >= len(args) or args[i] not in cmd.commands:
            return out + list(args[i:])
        out.append(args[i])
        cmd = cmd.commands[args[i]]
        i += 1
    valued = {
        name for p in cmd.params if p.param_type_name == "option" and not p.is_flag and not p.count for name in p.opts
    }
    interspersed = (cmd.context_settings or {}).get("allow_interspersed_args", True)
    return out + take_after(args[i:], s, valued=valued, interspersed=interspersed)


def _record(ctx: Any, param: Any, value: Any) -> None:
    """Reached only where click itself parses a global flag (completion requests): `take_click` takes them
    out of every command line it runs."""
    if value in (None, False):
        return
    name = param.opts[0]
    take_one([f"{name}={value}" if name in ("--log-level", "--log-format") else name], 0, CURRENT)


def attach(group: Any) -> None:
    """Give every command under the typer app's root group (which has them already) the global flags, for
    `--help` ("Global Options") and shell completion (`--log-level <Tab>`)."""
    for sub in group.commands.values():
        _attach(sub)


def _values(choices: Sequence[str]) -> Any:
    def complete(_ctx: Any, _args: Any, incomplete: str) -> list[str]:  # typer's signature for its own options
        return [c for c in choices if c.startswith(incomplete)]

    return complete


def _attach(cmd: Any) -> None:
    from typer.core import TyperOption

    for sub in getattr(cmd, "commands", {}).values():
        _attach(sub)
    if getattr(cmd, "_limapy_globals", None):
        return  # an alias shares the command object
    added = [
        TyperOption(param_decls=list(names), is_flag=choices is None, help=text, expose_value=False,
                    callback=_record, metavar=names[0][2:].replace("log-", "").upper() if choices else None,
                    autocompletion=_values(choices) if choices else None)
        for names, choices, text in GLOBAL_HELP
    ]  # fmt: skip
    cmd.params.extend(added)
    cmd._limapy_globals = added
    own_format = cmd.format_options

    def format_options(ctx: Any, formatter: Any) -> None:
        params = cmd.params
        cmd.params = [p for p in params if p not in added]
        try:
            own_format(ctx, formatter)
        finally:
            cmd.params = params
        with formatter.section("Global Options"):
            formatter.write_dl([p.get_help_record(ctx) for p in added])

    cmd.format_options = format_options
