"""The CLI's fast path (limapy.cli.fast) gives what the typer commands give, and help is typer's, exactly.

`shell` and `list` are parsed by hand on the fast path (typer costs ~60 ms to import); these tests run each
command line both ways, with the implementation replaced by a recorder, and require the same `Request`.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from limapy import cli
from limapy.cli import fast
from limapy.ops import copy as copy_ops
from limapy.ops import list as list_ops
from limapy.ops import shell as shell_ops
from limapy.ops import stop as stop_ops

SHELL_LINES = [
    ["web"], ["web", "uname", "-a"], ["web", "--", "ls", "-la"], ["--", "web", "ls"],
    ["--workdir", "/tmp", "web", "pwd"], ["--workdir=/tmp", "web"], ["--shell", "/bin/sh", "web", "echo", "$X"],
    ["--preserve-env", "--start", "--reconnect", "web", "env"], ["--instance", "web", "uname"],
    ["--instance=web", "--", "ls"], ["--instance", "web"], [], ["web", "--workdir", "/x"], ["web", "-h"],
    ["web", "--help"], ["web", "A=1", "B=2", "env"], ["--sync", "/w/a/b/c", "web", "make"], ["--sync=/x/y/z/w", "web"],
]
LIST_LINES = [
    [], ["a"], ["b", "a"], ["--json"], ["-q"], ["--quiet", "a"], ["-f", "json"], ["--format", "yaml"],
    ["--format={{.Name}}"], ["--format", "{{.Name}} {{.Status}}", "a"], ["--list-fields"], ["--all-fields"],
    ["--yq", ".name"], ["--yq", ".name", "--yq", "."], ["-l", '.status == "Running"'],
    ["--filter", ".cpus > 1", "--filter", ".arch == \"x86_64\""], ["a", "--json", "b"], ["--", "-q"],
]


COPY_LINES = [["a", "w:/tmp/"], ["-r", "d", "w:/d"], ["w:/x", ".", "-v"], ["-rv", "a", "b", "w:"],
              ["--recursive", "--verbose", "a", "w:"], ["--", "-odd", "w:"], ["a", "--", "-r", "w:"],
              ["--backend", "rsync", "-r", "d", "w:/d"], ["--backend=scp", "a", "w:"]]

STOP_LINES = [[], ["web"], ["web", "db"], ["-f"], ["-f", "web"], ["web", "--force"], ["web", "-f", "db"],
              ["--", "-odd"], ["-f", "--", "-f"], ["-"]]


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


@pytest.mark.parametrize("args", SHELL_LINES, ids=lambda a: " ".join(a) or "(none)")
def test_shell_fast_path_parses_as_typer_does(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    fast_req = shell_ops.parse(args)
    assert fast_req is not None
    assert fast_req == _typer_request(monkeypatch, "shell", args)


@pytest.mark.parametrize("args", LIST_LINES, ids=lambda a: " ".join(a) or "(none)")
def test_list_fast_path_parses_as_typer_does(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    fast_req = list_ops.parse(args)
    assert fast_req is not None
    assert fast_req == _typer_request(monkeypatch, "list", args)


@pytest.mark.parametrize("args", STOP_LINES, ids=lambda a: " ".join(a) or "(none)")
def test_stop_fast_path_parses_as_typer_does(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    fast_req = stop_ops.parse(args)
    assert fast_req is not None
    assert fast_req == _typer_request(monkeypatch, "stop", args)


@pytest.mark.parametrize("args", COPY_LINES, ids=" ".join)
def test_copy_fast_path_parses_as_typer_does(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    fast_req = copy_ops.parse(args)
    assert fast_req is not None
    assert fast_req == _typer_request(monkeypatch, "copy", args)


@pytest.mark.parametrize(
    ("command", "args"),
    [("copy", ["--help"]), ("copy", ["-x", "a", "w:"]), ("copy", []),
     ("shell", ["--help"]), ("shell", ["-h", "web"]), ("shell", ["--bogus", "web"]), ("shell", ["--workdir"]),
     ("list", ["--help"]), ("list", ["--bogus"]), ("list", ["--format"]), ("list", ["-f"]),
     ("stop", ["--help"]), ("stop", ["-h", "web"]), ("stop", ["--bogus"]), ("stop", ["-ff", "web"]),
     ("stop", ["--force=yes", "web"])],
)
def test_fast_path_leaves_help_and_unknown_flags_to_typer(command: str, args: list[str]) -> None:
    parse = {"shell": shell_ops.parse, "list": list_ops.parse, "copy": copy_ops.parse,
             "stop": stop_ops.parse}[command]
    assert parse(args) is None


def test_shell_flags_before_the_name_are_flags_after_it_the_command() -> None:
    req = shell_ops.parse(["--workdir", "/w", "web", "--workdir", "/x", "ls"])
    assert req is not None and req.name == "web" and req.workdir == "/w"
    assert req.command == ("--workdir", "/x", "ls")


def test_shell_without_a_name_uses_limapy_instance() -> None:
    req = shell_ops.parse([])
    assert req is not None and req.name is None
    assert shell_ops.instance_name(req, {"LIMAPY_INSTANCE": "dev"}) == "dev"
    assert shell_ops.instance_name(req, {}) == "default"


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch, width: str = "80") -> tuple[int, str, str]:
    monkeypatch.setenv("COLUMNS", width)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = cli._dispatch(args)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["list", "--help"], ["shell", "-h"], ["start", "--help"]])
def test_cached_help_is_exactly_typers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "80")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        want_rc = cli._typer(list(args))
    want = (want_rc, out.getvalue(), err.getvalue())
    assert want[1] or want[2], "typer printed no help"
    first = _run(list(args), monkeypatch)  # renders and stores
    assert list((tmp_path / "cache" / "help").iterdir()), "nothing was cached"
    second = _run(list(args), monkeypatch)  # from the cache
    assert first == want and second == want


def test_help_cache_follows_the_width_and_the_cli_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    _run(["--help"], monkeypatch, "80")
    narrow = _run(["--help"], monkeypatch, "50")
    assert narrow[1] != _run(["--help"], monkeypatch, "80")[1]  # click wraps to the width: another key
    # a changed help text (any module of limapy/cli/) is a new key: poison the cached entries, touch a module
    for p in (tmp_path / "cache" / "help").iterdir():
        rec = json.loads(p.read_text())
        rec["out"] = "stale\n"
        p.write_text(json.dumps(rec))
    assert _run(["--help"], monkeypatch)[1] == "stale\n"  # the cache is what is shown ...
    mod = Path(fast.__file__).parent / "cmd_info.py"
    st = mod.stat()
    try:
        os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        assert _run(["--help"], monkeypatch)[1].startswith("Usage: limapy")  # ... until a source changes
    finally:
        os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_version_and_validate_need_no_typer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_typer", lambda args: pytest.fail(f"typer was built for {args}"))
    assert _run(["--version"], monkeypatch)[0] == 0
    f = tmp_path / "t.yaml"
    f.write_text("images:\n- location: /x.img\n")
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    rc, out, _ = _run(["validate", str(f)], monkeypatch)
    assert rc == 0 and out == f"{f}: OK\n"


@pytest.mark.parametrize(
    ("args", "rest", "tty", "level", "fmt"),
    [(["list"], ["list"], None, None, "text"), (["-y", "start", "x"], ["start", "x"], False, None, "text"),
     (["--tty", "list"], ["list"], True, None, "text"), (["--tty=false", "list"], ["list"], False, None, "text"),
     (["--log-level", "debug", "--log-format=json", "ls"], ["ls"], None, "debug", "json"),
     (["--yes", "shell", "w", "rm", "-y", "f"], ["shell", "w", "rm", "-y", "f"], False, None, "text"),
     (["--help"], ["--help"], None, None, "text")],
)
def test_global_flags_come_off_the_front_only(
    args: list[str], rest: list[str], tty: bool | None, level: str | None, fmt: str
) -> None:
    from limapy.cli import globalflags

    s, left = globalflags.take(args)
    assert (left, s.tty, s.log_level, s.log_format) == (rest, tty, level, fmt)


@pytest.mark.parametrize("args", [["--log-level", "loud", "list"], ["--log-format", "xml"], ["--tty=maybe"],
                                  ["--log-level"]])
def test_bad_global_flags_are_one_line_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("limapy: ") and len(err.strip().splitlines()) == 1


def test_tty_false_turns_live_progress_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.base import term
    from limapy.cli import globalflags

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv(term.ENV_TTY, raising=False)
    assert term.interactive(Tty())
    s, _ = globalflags.take(["-y", "list"])
    monkeypatch.setattr(os, "environ", dict(os.environ))
    globalflags.apply(s)
    assert not term.interactive(Tty())
