"""Help as limactl's: every command's --help has examples (each a command line that parses) and lists its aliases;
`limapy help CMD` prints `limapy CMD --help`; the man pages made from the CLI cover every command and are
valid roff."""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from limapy import cli
from limapy.cli import examples, globalflags, manpage

GROUP: Any = cli.build_group()
COMMANDS = [" ".join(path) for path, _ in manpage.commands(GROUP)]


def help_of(args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        assert cli.main(args) == 0
    return out.getvalue()


def example_lines(text: str) -> list[str]:
    lines = text.split("Examples:\n", 1)[1].splitlines()
    return [ln.strip() for ln in lines if ln.startswith("    ")]


def parses(line: str) -> None:
    """The `limapy ...` part of an example parses as the CLI would parse it (options exist, values fit)."""
    words = [w.rstrip(")") for w in shlex.split(line.split("#")[0], comments=False)]
    words = words[next(i for i, w in enumerate(words) if w in ("limapy", "<(limapy")) + 1 :]
    for stop in ("|", ">", ">>", ";"):
        if stop in words:
            words = words[: words.index(stop)]
    args = globalflags.take_click(GROUP, words, globalflags.Settings())
    ctx = GROUP.make_context("limapy", list(args), resilient_parsing=False)
    cmd: Any = GROUP
    while hasattr(cmd, "commands"):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, list(rest), parent=ctx, resilient_parsing=False)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_examples_that_parse(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = help_of([*command.split(), "--help"], monkeypatch, tmp_path)
    assert "Examples:" in text, command
    lines = example_lines(text)
    assert lines, command
    for line in lines:
        assert "limapy " in line, (command, line)
        parses(line)


def test_aliases_are_listed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    want = {"list": "ls", "delete": "remove, rm", "copy": "cp", "template": "tmpl", "snapshot create": "save",
            "snapshot apply": "load", "snapshot delete": "del", "snapshot list": "ls", "disk list": "ls",
            "disk delete": "rm"}  # fmt: skip
    for command, names in want.items():
        assert f"Aliases: {names}\n" in help_of([*command.split(), "--help"], monkeypatch, tmp_path), command
    found = {}
    for path, _cmd in manpage.commands(GROUP):
        parent = GROUP
        for name in path[:-1]:
            parent = parent.commands[name]
        if examples.aliases(parent).get(path[-1]):
            found[" ".join(path)] = ", ".join(examples.aliases(parent)[path[-1]])
    assert found == want  # every hidden alias is some command's, and said so


@pytest.mark.parametrize("args", [["start"], ["snapshot", "create"], []])
def test_help_command_is_the_commands_help(args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert help_of(["help", *args], monkeypatch, tmp_path) == help_of([*args, "--help"], monkeypatch, tmp_path)
    out = io.StringIO()  # and typer's own `help` command (what --help lists) prints the same
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        cli._typer(["help", *args])
    assert out.getvalue() == help_of([*args, "--help"], monkeypatch, tmp_path)


def test_man_pages_cover_every_command(tmp_path: Path) -> None:
    pages = {p.name: p.read_text() for p in manpage.write_pages(GROUP, tmp_path)}
    assert set(pages) == {"limapy.1", *(f"limapy-{c.replace(' ', '-')}.1" for c in COMMANDS)}
    start = pages["limapy-start.1"]
    assert start.startswith('.TH "LIMAPY-START" "1"') and "\\-\\-dry\\-run" in start and ".SH EXAMPLES" in start
    assert ".SH GLOBAL OPTIONS" in start and "limapy start template:debian" in start
    assert "limapy\\-doctor(1)" in pages["limapy.1"]
    if shutil.which("groff") is None:
        pytest.skip("groff not installed: the pages were not rendered")
    for name in pages:
        cp = subprocess.run(["groff", "-man", "-T", "utf8", "-ww", "-z", str(tmp_path / name)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
        assert cp.returncode == 0 and cp.stderr == "", (name, cp.stderr)
