"""Man pages made from the CLI itself (the typer app's commands, their help, options, examples and aliases):
`limapy(1)` and one `limapy-COMMAND(1)` per visible command (`limapy-snapshot-create(1)` for subcommands).

The wheel build runs this (hack/hatch_build.py: the pages land in share/man/man1, where pipx and pip put them
on the MANPATH); `hack/gen-man.py DIR` writes them by hand. Nothing here runs when limapy does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from limapy import __version__

SECTION = "1"


def _roff(text: str) -> str:
    """Text for a roff line: backslashes and dashes escaped, a leading dot or quote made literal."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out.startswith((".", "'")) else out


def _paragraphs(text: str) -> list[tuple[bool, list[str]]]:
    """(verbatim, lines) per paragraph of a click help text (a `\\b` line keeps its paragraph as written)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        verbatim = bool(lines) and lines[0].strip() == "\b"
        out.append((verbatim, lines[1:] if verbatim else [" ".join(ln.strip() for ln in lines)]))
    return out


def _text(text: str) -> list[str]:
    lines: list[str] = []
    for verbatim, para in _paragraphs(text):
        if verbatim:
            lines += [".PP", ".nf", *(_roff(ln) for ln in para), ".fi"]
        else:
            lines += [".PP", _roff(para[0])]
    return lines


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(name path, command) of every visible command under `group`, in the order --help lists them."""
    for name, cmd in group.commands.items():
        if getattr(cmd, "hidden", False):
            continue
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):
            yield from commands(cmd, (*path, name))


def _context(group: Any, path: tuple[str, ...]) -> Any:
    ctx = group.make_context("limapy", [], resilient_parsing=True)
    cmd = group
    for name in path:
        cmd = cmd.commands[name]
        ctx = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
    return ctx


def _options(ctx: Any, params: list[Any]) -> list[str]:
    lines = []
    for p in params:
        record = p.get_help_record(ctx)
        if record is None:
            continue
        term, help_ = record
        lines += [".TP", f"\\fB{_roff(term)}\\fR", _roff(help_ or "")]
    return lines


def page(group: Any, path: tuple[str, ...]) -> str:
    """The man page of `limapy PATH...` (the root page for an empty path)."""
    ctx = _context(group, path)
    cmd = ctx.command
    title = "-".join(["limapy", *path])
    summary = (cmd.help or "").strip().split("\n\n")[0].replace("\n", " ")
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines = [
        f'.TH "{title.upper()}" "{SECTION}" "" "limapy {__version__}" "limapy manual"',
        ".SH NAME", f"{_roff(title)} \\- {_roff(summary.rstrip('.'))}",
        ".SH SYNOPSIS", f"\\fB{_roff(' '.join(['limapy', *path]))}\\fR {_roff(usage)}",
    ]  # fmt: skip
    if cmd.help:
        lines += [".SH DESCRIPTION", *_text(cmd.help)]
    params = cmd.get_params(ctx)
    own_globals = getattr(cmd, "_limapy_globals", [])
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name == "option" and p not in own_globals]
    if arguments:
        lines += [".SH ARGUMENTS", *_options(ctx, arguments)]
    if options:
        lines += [".SH OPTIONS", *_options(ctx, options)]
    if own_globals:
        lines += [".SH GLOBAL OPTIONS", *_options(ctx, own_globals)]
    if hasattr(cmd, "commands"):
        lines.append(".SH COMMANDS")
        for name, sub in cmd.commands.items():
            if not getattr(sub, "hidden", False):
                lines += [".TP", f"\\fB{_roff(name)}\\fR", _roff(sub.get_short_help_str(limit=200))]
    if cmd.epilog:  # its other names and examples
        lines += [".SH EXAMPLES" if "Examples:" in cmd.epilog else ".SH NOTES", *_text(cmd.epilog)]
    see = ["limapy(1)"] if path else [f"limapy-{'-'.join(p)}(1)" for p, _ in commands(group) if len(p) == 1]
    lines += [".SH SEE ALSO", _roff(", ".join(see))]
    return "\n".join(lines) + "\n"


def write_pages(group: Any, directory: Path) -> list[Path]:
    """Write every page into `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path in [(), *(p for p, _ in commands(group))]:
        name = "-".join(["limapy", *path]) + f".{SECTION}"
        target = directory / name
        target.write_text(page(group, path))
        written.append(target)
    return written
