"""Hardening, second round (issue 24, item 7): what `show-ssh` prints is what it means. A home under
/home/o'brien works, and a path holding `'$(cmd)'` is inert: the `cmd` and `args` shapes are run through a
real `sh -c`, the `config` shape through a real `ssh -G`, and each must name the very key and socket paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import limapy, qcow2, template


@pytest.fixture
def odd_home() -> Iterator[Path]:
    """A LIMAPY_HOME whose path holds a quote and a command substitution (short: its sockets must fit)."""
    base = Path(tempfile.mkdtemp(prefix="o'b-", dir=os.environ.get("TMPDIR", "/tmp")))
    h = base / "'$(touch PWNED)'"
    h.mkdir(mode=0o700)
    yield h
    shutil.rmtree(base, ignore_errors=True)


def _ssh_g(args: list[str]) -> dict[str, str]:
    cp = subprocess.run(["ssh", "-G", *args], capture_output=True, text=True, check=True, timeout=30)
    out: dict[str, str] = {}
    for line in cp.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, value)
    return out


def test_show_ssh_shapes_survive_quotes_and_stay_inert(odd_home: Path, tmp_path: Path) -> None:
    env = {"LIMAPY_HOME": str(odd_home)}
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")))
    cp = limapy("create", "--name", "q", str(t), env=env)
    assert cp.returncode == 0, cp.stderr
    key, control = odd_home / "_config" / "user", odd_home / "q" / "ssh.sock"
    (odd_home / "q" / "ssh.config").write_text("Host lima-q\n  Port 60022\n")  # as after a boot (ssh -G wants a port)
    work = tmp_path / "cwd"
    work.mkdir()

    line = limapy("show-ssh", "q", env=env).stdout.strip()
    assert line.startswith("ssh ") and line.endswith(" lima-q")
    # The printed command, pasted into a shell: `ssh` becomes `ssh -G` (print the configuration, connect to
    # nothing); its words must reach ssh intact.
    cp = subprocess.run(["sh", "-c", "ssh -G" + line[len("ssh"):]], cwd=work, capture_output=True, text=True,
                        check=False, timeout=30)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    conf = {k: v for k, _, v in (ln.partition(" ") for ln in cp.stdout.splitlines())}
    assert conf["identityfile"] == str(key), conf["identityfile"]
    assert conf["controlpath"] == str(control)
    assert conf["hostname"] == "127.0.0.1"

    args = limapy("show-ssh", "--format", "args", "q", env=env).stdout.strip()
    cp = subprocess.run(["sh", "-c", f"ssh -G {args} lima-q"], cwd=work, capture_output=True, text=True,
                        check=False, timeout=30)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert f"identityfile {key}" in cp.stdout.splitlines()

    config = tmp_path / "ssh_config"
    config.write_text(limapy("show-ssh", "--format", "config", "q", env=env).stdout)
    conf = _ssh_g(["-F", str(config), "lima-q"])
    assert conf["identityfile"] == str(key) and conf["controlpath"] == str(control)

    assert not list(work.iterdir()) and not list(odd_home.parent.rglob("PWNED")), "a path in the output ran a command"
