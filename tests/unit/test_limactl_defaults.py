"""limactl's defaults: `stop`, `shell` and `start` without a name act on the instance `default`; `create` without
a template creates `default` from template:default (so `list`'s hint "Run `limapy create`" works); `stop` of a
stopped instance is an error, as limactl's "expected status `Running`"."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from limapy import cli, driver
from limapy.instance import store
from limapy.ops import shell as shell_ops
from limapy.ops import start as start_ops
from limapy.ops import stop as stop_ops


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_INSTANCE", raising=False)
    return tmp_path / "home"


def _instance(home: Path, name: str) -> None:
    (home / name).mkdir(parents=True)
    (home / name / "lima.yaml").write_text("images: [{location: /x}]\n")


def run(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = cli.main(args)
    return rc, err.getvalue()


def test_stop_without_a_name_stops_default(_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _instance(_home, "default")
    stopped: list[str] = []
    monkeypatch.setattr(stop_ops, "stop", lambda inst, **kw: stopped.append(inst.name) or True)
    assert run(["stop"]) == (0, "stopped `default`\n")
    assert stopped == ["default"]


def test_stop_of_a_stopped_instance_is_an_error(_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b"):
        _instance(_home, name)
    monkeypatch.setattr(stop_ops, "stop", lambda inst, **kw: inst.name == "b")
    monkeypatch.setattr(driver, "status", lambda inst: store.STOPPED)
    rc, err = run(["stop", "a", "b"])  # the others are still stopped, as limactl does
    assert rc == 1
    assert err.splitlines() == [
        "stopped `b`", "limapy: instance `a` is not running: expected status `Running`, got `Stopped`",
        "limapy: hint: `limapy stop -f a` cleans up what a crashed instance left behind",
    ]  # fmt: skip
    rc, err = run(["stop", "-f", "a"])
    assert rc == 0 and err == "`a` was not running; nothing of it is left running now\n"


def test_start_without_a_name_starts_default() -> None:
    assert start_ops.default_target("default", None) == ("template:default", "default")  # created when missing
    assert start_ops.default_target("default", "x") == ("default", "x")


def test_shell_without_a_name_is_default() -> None:
    req = shell_ops.parse([])
    assert req is not None and shell_ops.instance_name(req, {}) == "default"


def test_create_without_a_template_is_template_default(monkeypatch: pytest.MonkeyPatch, _home: Path) -> None:
    from limapy.ops import create as create_ops

    seen: list[Any] = []

    def fake(locator: str, **kw: Any) -> store.Instance:
        seen.append((locator, kw["name"]))
        return store.Instance("default", _home / "default")

    monkeypatch.setattr(create_ops, "create", fake)
    rc, err = run(["create"])
    assert rc == 0, err
    assert seen == [("template:default", None)]  # the instance takes the template's name: `default`
    assert "Run `limapy start default` to start the instance." in err
