"""The key of what the CLI keeps from typer (the help texts, the completion table): what typer's output
depends on, so a cached answer is always the one typer would give now."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _width() -> int:
    """The width click's HelpFormatter wraps to: the terminal's (shutil's rules), at most 80, minus 2."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return max(min(columns, 80) - 2, 50)


def _typer_file() -> str | None:
    for p in sys.path:
        candidate = os.path.join(p or ".", "typer", "__init__.py")
        if os.path.isfile(candidate):
            return candidate
    return None


def source_key(args: list[str], commands: tuple[str, ...], *, width: bool = True) -> str | None:
    """What typer's output for `args` depends on: limapy's version, typer's file, every module of cli/ (and
    the width click wraps help to, unless `width` is False); None without typer."""
    from limapy import __version__

    typer_file = _typer_file()
    if typer_file is None:
        return None
    parts = [__version__, "\0".join(args), str(_width()) if width else "-", typer_file,
             str(os.stat(typer_file).st_mtime_ns)]  # fmt: skip
    cli_dir = Path(__file__).parent
    for entry in sorted(os.scandir(cli_dir), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            st = entry.stat()
            parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(",".join(commands))
    return "\n".join(parts)
