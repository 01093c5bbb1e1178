"""limactl's global flags after the command (cobra's persistent flags): `start --tty=false NAME`, `create -y ...`,
`list --debug`, taken among the command's options but never from its arguments (`shell web rm -y f` keeps its
`-y`), the same on the fast path and through typer; `--help` shows them; NO_COLOR and TERM=dumb."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from limapy import cli
from limapy.base import term
from limapy.cli import fast, globalflags
from limapy.ops import copy as copy_ops
from limapy.ops import list as list_ops
from limapy.ops import shell as shell_ops
from limapy.ops import stop as stop_ops

REPO = Path(__file__).resolve().parents[2]


def _group() -> Any:
    return cli.build_group()


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(globalflags, "CURRENT", globalflags.Settings())
    monkeypatch.setattr(globalflags, "apply", lambda s: None)  # no logging set-up, no LIMAPY_TTY in this process


@pytest.mark.parametrize(
    ("args", "rest", "key"),
    [
        (["start", "--tty=false", "web"], ["start", "web"], (False, None, "text", False)),
        (["start", "web", "--tty=false"], ["start", "web"], (False, None, "text", False)),
        (["create", "-y", "--name", "x", "template:debian"], ["create", "--name", "x", "template:debian"],
         (False, None, "text", False)),
        (["create", "--name", "-y", "template:debian"], ["create", "--name", "-y", "template:debian"],
         (False, None, "text", None)),  # an option's value is never a flag
        (["list", "--debug"], ["list"], (True, None, "text", None)),
        (["stop", "--log-level", "info", "web", "--log-format=json"], ["stop", "web"], (False, "info", "json", None)),
        (["shell", "web", "rm", "-y", "f"], ["shell", "web", "rm", "-y", "f"], (False, None, "text", None)),
        (["shell", "-y", "--workdir", "/w", "web", "ls", "--debug"],
         ["shell", "--workdir", "/w", "web", "ls", "--debug"], (False, None, "text", False)),
        (["snapshot", "create", "web", "--tag", "t", "-y"], ["snapshot", "create", "web", "--tag", "t"],
         (False, None, "text", False)),
        (["delete", "--", "-y"], ["delete", "--", "-y"], (False, None, "text", None)),
        (["edit", "web", "--set", ".cpus = 2", "--tty"], ["edit", "web", "--set", ".cpus = 2"],
         (False, None, "text", True)),
    ],
)  # fmt: skip
def test_global_flags_after_the_command(args: list[str], rest: list[str], key: tuple[object, ...]) -> None:
    s = globalflags.Settings()
    assert globalflags.take_click(_group(), args, s) == rest
    assert s.key() == key


def test_the_fast_grammar_is_the_typer_commands() -> None:
    """The fast path's view of each command (options taking a value, interspersing) is the typer command's."""
    group = _group()
    for name, (valued, interspersed) in fast.GRAMMAR.items():
        cmd = group.commands[name]
        own = {o for p in cmd.params if p.param_type_name == "option" and not p.is_flag for o in p.opts}
        assert set(valued) == own - {"--log-level", "--log-format"}, name
        assert (cmd.context_settings or {}).get("allow_interspersed_args", True) == interspersed, name


CORPUS = [
    ("shell", ["-y", "web", "uname"]), ("shell", ["--debug", "--workdir", "/tmp", "web", "pwd", "-y"]),
    ("shell", ["web", "rm", "-y", "f"]), ("shell", ["--instance", "web", "--tty=false", "ls", "--debug"]),
    ("list", ["--debug"]), ("list", ["-y", "a", "--json"]), ("list", ["--format", "-y", "a"]),
    ("list", ["a", "--log-level", "warn", "b"]), ("list", ["--", "-y"]),
    ("copy", ["-y", "a", "w:/tmp/"]), ("copy", ["a", "--debug", "w:/tmp/", "-r"]),
    ("stop", ["-y", "web"]), ("stop", ["web", "--debug", "-f", "db"]), ("stop", ["--", "-y"]),
]  # fmt: skip


def _typer_request(monkeypatch: pytest.MonkeyPatch, command: str, args: list[str]) -> Any:
    seen: list[Any] = []
    if command == "shell":
        monkeypatch.setattr(shell_ops, "run", lambda req: seen.append(req))
    elif command == "copy":
        monkeypatch.setattr(copy_ops, "run", lambda req: seen.append(req) or 0)
    elif command == "stop":
        monkeypatch.setattr(stop_ops, "run", lambda req, report: seen.append(req) or 0)
    else:
        monkeypatch.setattr(list_ops, "run", lambda req, say: seen.append(req) or 0)
    cli._typer([command, *args])
    assert len(seen) == 1, f"typer did not run `{command} {args}`"
    return seen[0]


@pytest.mark.parametrize(("command", "args"), CORPUS, ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_fast_path_takes_what_typer_takes(monkeypatch: pytest.MonkeyPatch, command: str, args: list[str]) -> None:
    parse = {"shell": shell_ops.parse, "list": list_ops.parse, "copy": copy_ops.parse,
             "stop": stop_ops.parse}[command]
    s = globalflags.Settings()
    valued, interspersed = fast.GRAMMAR[command]
    fast_req = parse(globalflags.take_after(args, s, valued=valued, interspersed=interspersed))
    assert fast_req is not None
    typer_req = _typer_request(monkeypatch, command, args)
    assert fast_req == typer_req
    assert s.key() == globalflags.CURRENT.key()


def test_fast_dispatch_applies_what_follows_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[tuple[object, ...]] = []
    monkeypatch.setattr(globalflags, "apply", lambda s: applied.append(s.key()))
    monkeypatch.setattr(list_ops, "run", lambda req, say: 0)
    monkeypatch.setattr(cli, "_typer", lambda args: pytest.fail("typer was built"))
    assert fast.dispatch(["list", "--tty=false", "--json"], cli.COMMANDS, cli._typer) == 0
    assert applied == [(False, None, "text", False)]


def test_help_shows_the_global_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    for args in (["start", "--help"], ["shell", "--help"], ["snapshot", "list", "--help"]):
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            assert cli._typer(args) == 0
        text = out.getvalue()
        section = text[text.index("Global Options:"):]
        for flag in ("--debug", "--log-level", "--log-format", "--tty", "-y, --yes"):
            assert flag in section, (args, flag)
        assert "--debug" not in text[: text.index("Global Options:")], args  # not among the command's own


def test_a_bad_global_flag_after_the_command_is_one_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--log-level", "loud"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("limapy: --log-level 'loud'") and len(err.strip().splitlines()) == 1


def test_list_debug_after_the_command_sets_up_debug_logging(tmp_path: Path) -> None:
    """In a real process: `list --debug` logs at debug level (a line from the list itself), `list` does not."""
    env = {**os.environ, "LIMAPY_HOME": str(tmp_path / "home"), "LIMAPY_CACHE_DIR": str(tmp_path / "cache")}
    code = "import logging, sys\nfrom limapy.cli import main\nrc = main(sys.argv[1:])\n" \
           "print(logging.getLogger().level, file=sys.stderr)\nsys.exit(rc)\n"  # fmt: skip
    for args, level in ((["list", "--debug"], "10"), (["list"], "30"), (["list", "--log-level=error"], "40")):
        cp = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
        assert cp.returncode == 0, cp.stderr
        assert cp.stderr.splitlines()[-1] == level, (args, cp.stderr)


@pytest.mark.parametrize(
    ("env", "isatty", "interactive", "live", "color"),
    [({}, True, True, True, True), ({"TERM": "dumb"}, True, True, False, False),
     ({"NO_COLOR": "1"}, True, True, True, False), ({"NO_COLOR": ""}, True, True, True, True),
     ({}, False, False, False, False), ({"LIMAPY_TTY": "0"}, True, False, False, False)],
)  # fmt: skip
def test_no_color_and_term_dumb(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], isatty: bool, interactive: bool, live: bool, color: bool
) -> None:
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return isatty

    for var in ("TERM", "NO_COLOR", "LIMAPY_TTY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert (term.interactive(Stream()), term.live(Stream()), term.color(Stream())) == (interactive, live, color)
    out = Stream()
    with term.Live(out) as display:
        display.status("booting")
        display.line("[booting] guest booting")
    assert ("\x1b" in out.getvalue()) == live  # TERM=dumb: plain lines only
    assert "[booting] guest booting\n" in out.getvalue()
