"""Pure helpers of the lifecycle: target detection, durations, event following, list table, events, the
ready wait's default."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from limapy.agent.hostagent import Events
from limapy.base.errors import UsageError
from limapy.base.units import parse_duration
from limapy.ops.list import table
from limapy.ops.start import Follower, looks_like_template


@pytest.mark.parametrize(
    ("target", "template"),
    [("t", False), ("windows", False), ("web.1", False), ("template:debian", True), ("./x.yaml", True),
     ("x.yml", True), ("-", True), ("https://e.x/a.yaml", True), ("dir/file", True)],
)
def test_looks_like_template(target: str, template: bool) -> None:
    assert looks_like_template(target) is template


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "m10", "10m5"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_follower_reads_only_complete_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "ha.stdout.log"
    log.write_text('{"phase": "a"}\n{"phase": "b"')
    f = Follower(log)
    assert [e["phase"] for e in f.poll()] == ["a"]
    with open(log, "a") as fh:
        fh.write('}\nnot json\n{"phase": "c"}\n')
    assert [e["phase"] for e in f.poll()] == ["b", "c"]
    assert f.poll() == []


def test_events_have_lima_shape_and_carry_the_port() -> None:
    out = io.StringIO()
    ev = Events(out)
    ev.port = 60022
    ev.emit("booting", "guest booting", running=False)
    ev.emit("exiting", "error", exiting=True, errors=["boom"])
    first, last = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["status"] == {"sshLocalPort": 60022} and first["phase"] == "booting"
    assert last["status"] == {"sshLocalPort": 60022, "exiting": True, "errors": ["boom"]}
    assert "time" in first and first["message"] == "guest booting"


def test_list_table_has_lima_columns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    rows = [{"name": "t", "status": "Running", "sshLocalPort": 60022, "vmType": "qemu", "arch": "x86_64",
             "cpus": 2, "memory": 4 << 30, "disk": 100 << 30, "dir": str(tmp_path / ".limapy" / "t")}]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "SSH", "VMTYPE", "ARCH", "CPUS", "MEMORY", "DISK", "DIR"]
    assert lines[1].split() == ["t", "Running", "127.0.0.1:60022", "qemu", "x86_64", "2", "4GiB", "100GiB",
                                "~/.limapy/t"]


@pytest.mark.parametrize(("accel", "windows_first_boot"), [("kvm", 90 * 60), ("tcg", 6 * 3600)])
def test_default_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accel: str,
                         windows_first_boot: float) -> None:
    """Windows Setup's first boot waits 90 min under KVM, 6 h under TCG; anything else, or once the install
    is done, 10 min."""
    from limapy.instance import store
    from limapy.ops.start import default_timeout

    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_QEMU_ACCEL", accel)
    win = store.create_instance_dir("win", {"lima.yaml": b"os: Windows\narch: x86_64\nimages: [{location: /x.iso}]\n"})
    linux = store.create_instance_dir("lin", {"lima.yaml": b"arch: x86_64\nimages: [{location: /x.img}]\n"})
    assert default_timeout(win) == windows_first_boot
    assert default_timeout(linux) == 600
    win.win_done_installation.touch()
    assert default_timeout(win) == 600
