"""limactl's global flags, taken from the front of the command line before anything else reads it.

    limapy [--debug] [--log-level LEVEL] [--log-format text|json] [--tty[=BOOL]] [-y|--yes] COMMAND ...

They must come before the command (after it, the command's own arguments begin: `limapy shell web rm -y x`
must keep its `-y`). `--tty=false` and `-y`/`--yes` (Lima's alias of it) turn off live progress and
prompts; `--log-level` and `--log-format` set up logging (imported only then: it costs ~10 ms).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from limapy.errors import UsageError

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


def take(args: Sequence[str]) -> tuple[Settings, list[str]]:
    """The global flags at the front of `args`, and what follows them."""
    s = Settings()
    rest = list(args)
    while rest and rest[0].startswith("-"):
        a = rest[0]
        key, eq, value = a.partition("=")
        if key in ("--log-level", "--log-format"):
            if not eq:
                if len(rest) < 2:
                    raise UsageError(f"{key} needs a value")
                value = rest.pop(1)
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
            break  # --help, --version, ...: the CLI's own
        rest.pop(0)
    return s, rest


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
        from limapy.term import ENV_TTY

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
