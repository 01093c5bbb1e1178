"""Item 15 of issue 17: every error is one `limapy:` line and at most one `limapy: hint:` line, the CLI
framework's usage errors included, and an error a flag caused names the flag."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.security.conftest import instances, limapy, one_error, qcow2, template


@pytest.mark.parametrize(
    ("argv", "needle", "command"),
    [
        (["create", "--memory", "abc", "t.yaml"], "limapy: invalid value for '--memory': 'abc' is not a valid float",
         "create"),
        (["create", "--bogus"], "limapy: no such option: --bogus", "create"),
        (["delete"], "limapy: missing argument 'names'", "delete"),  # `stop` alone stops `default`, as limactl
        (["nosuchcmd"], "limapy: no such command 'nosuchcmd'", ""),
        (["create", "--vm-type"], "limapy: option '--vm-type' requires an argument", "create"),
        (["list", "--bogus"], "limapy: no such option: --bogus", "list"),  # the fast path hands it to typer
        (["disk", "create"], "limapy: missing argument 'name'", "disk create"),
    ],
    ids=["bad-value", "unknown-option", "missing-argument", "unknown-command", "missing-value", "list", "nested"],
)
def test_usage_errors_are_one_line_and_a_hint(home: Path, argv: list[str], needle: str, command: str) -> None:
    cp = limapy(*argv)
    assert cp.returncode == 2, cp.stderr
    assert one_error(cp).startswith(needle), cp.stderr
    assert cp.stderr.splitlines()[-1] == f"limapy: hint: see `{' '.join(['limapy', command]).strip()} --help`"
    assert "Usage:" not in cp.stderr and "Error:" not in cp.stderr and cp.stdout == ""


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        (["--cpus", "10000"], "limapy: --cpus 10000: field `cpus` is 10000: QEMU's x86_64 machine takes at most 288"),
        (["--memory", "0"], "limapy: --memory 0: field `memory` is 0B"),
        (["--memory", "1e30"], "limapy: --memory 1e+30: field `memory` is "),  # host-dependent: at create
        (["--disk", "0"], "limapy: --disk 0: field `disk` is 0B"),
        (["--memory", "inf"], "limapy: --memory inf: not a size in GiB"),
        (["--set", ".additionalDisks = [nosuch]"], "limapy: --set '.additionalDisks = [nosuch]': additional disk"),
        (["--set", '.user.name = "root"'], "limapy: --set '.user.name = \"root\"': field `user.name` must not be"),
    ],
    ids=["cpus", "mem0", "mem1e30", "disk0", "mem-inf", "nosuch-disk", "root"],
)
def test_flag_errors_are_blamed_on_the_flag(home: Path, tmp_path: Path, args: list[str], prefix: str) -> None:
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")))
    err = one_error(limapy("create", "--name", "a", *args, str(t)))
    assert err.startswith(prefix), err
    assert str(t) not in err
    assert instances(home) == []


def _cp(stderr: str, rc: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["limapy"], rc, "", stderr)


def test_one_error_wants_the_prefix_on_every_line() -> None:
    assert one_error(_cp("limapy: bad\nlimapy: hint: see x\n")) == "limapy: bad"
    for stderr in ("Usage: limapy create [OPTIONS]\nTry 'limapy create -h'\n\nError: No such option: --x\n",
                   "limapy: bad\nhint: see x\n", "limapy: one\nlimapy: two\n", "t.yaml:1:1: field `x` is bad\n",
                   "limapy: bad\nlimapy: hint: a\nlimapy: hint: b\n"):
        with pytest.raises(AssertionError):
            one_error(_cp(stderr))
