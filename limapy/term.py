"""Whether limapy talks to a person: live progress and prompts only then (`--tty`, `-y`, else isatty)."""

from __future__ import annotations

import os

ENV_TTY = "LIMAPY_TTY"  # "1" / "0": set by the global `--tty` / `--tty=false` / `-y` flags


def interactive(stream: object) -> bool:
    value = os.environ.get(ENV_TTY)
    if value in ("0", "1"):
        return value == "1"
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
