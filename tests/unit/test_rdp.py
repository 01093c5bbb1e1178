"""`limapy rdp`: which client, what it is given, and where the password goes (stdin only, never argv); the RDP
address `list` and `info` show."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from limapy import driver
from limapy.base.errors import LimapyError
from limapy.instance import store
from limapy.ops import rdp

PASSWORD = "Pw-1234567890abcdef"


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> store.Instance:
    home = tmp_path / "home"
    monkeypatch.setenv("LIMAPY_HOME", str(home))
    d = home / "win"
    d.mkdir(parents=True)
    (d / "lima.yaml").write_text("os: Windows\narch: x86_64\nimages: [{location: /x.iso}]\nplain: true\n"
                                 "user: {name: alice}\n")
    store.atomic_write(d / "windows-password", (PASSWORD + "\n").encode(), 0o600)
    (d / "rdp.port").write_text("63389\n")
    monkeypatch.setattr(driver, "status", lambda _i: store.RUNNING)
    return store.Instance("win", d)


def fake_client(bin_dir: Path, name: str) -> Path:
    """A stand-in client that records its argv (one per line) and its stdin."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@" >"$0.argv"\n/bin/cat >"$0.stdin"\n')
    script.chmod(0o755)
    return script


def test_freerdp_gets_the_password_on_stdin_only(inst: store.Instance, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = fake_client(tmp_path / "bin", "xfreerdp")
    monkeypatch.setenv("PATH", f"{client.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":0")
    said: list[str] = []
    assert rdp.connect(inst, say=said.append) == 0
    argv = Path(f"{client}.argv").read_text().splitlines()
    assert argv[:4] == ["/v:127.0.0.1:63389", "/u:alice", "/from-stdin:force", "/cert:ignore"]
    assert Path(f"{client}.stdin").read_text() == PASSWORD + "\n"
    assert not [a for a in argv if PASSWORD in a]
    assert not [s for s in said if PASSWORD in s]


def test_no_client_writes_a_private_rdp_file(inst: store.Instance, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    said: list[str] = []
    assert rdp.connect(inst, say=said.append) == 0
    path = inst.dir / "win.rdp"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_bytes().decode()
    assert "full address:s:127.0.0.1:63389\r\n" in text and "username:s:alice\r\n" in text
    assert PASSWORD not in text and not [s for s in said if PASSWORD in s]
    assert any(str(inst.password_file) in s for s in said)  # where the password is, not what it is
    assert any("freerdp2-x11" in s for s in said)


def test_remmina_opens_the_rdp_file(inst: store.Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = fake_client(tmp_path / "bin", "remmina")
    monkeypatch.setenv("PATH", str(client.parent))
    assert rdp.connect(inst, say=lambda _m: None) == 0
    assert Path(f"{client}.argv").read_text().splitlines() == ["-c", str(inst.dir / "win.rdp")]
    assert Path(f"{client}.stdin").read_text() == ""


def test_print_and_explicit_file(inst: store.Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rdp.connect(inst, say=lambda _m: None, print_only=True) == 0
    assert capsys.readouterr().out.strip() == "127.0.0.1:63389"
    target = tmp_path / "x.rdp"
    assert rdp.connect(inst, say=lambda _m: None, file=target) == 0
    assert "127.0.0.1:63389" in target.read_text() and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_client_preference() -> None:
    def which(have: set[str]) -> Any:
        return lambda name: f"/usr/bin/{name}" if name in have else None

    os.environ.pop("WAYLAND_DISPLAY", None)
    assert rdp.find_client(which({"xfreerdp", "xfreerdp3", "remmina"})) == ("freerdp", "/usr/bin/xfreerdp3")
    assert rdp.find_client(which({"wlfreerdp", "remmina"})) == ("freerdp", "/usr/bin/wlfreerdp")
    assert rdp.find_client(which({"remmina"})) == ("remmina", "/usr/bin/remmina")
    assert rdp.find_client(which(set())) is None


def test_refusals(inst: store.Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "status", lambda _i: store.STOPPED)
    with pytest.raises(LimapyError, match="not running"):
        rdp.target(inst)
    monkeypatch.setattr(driver, "status", lambda _i: store.RUNNING)
    (inst.dir / "lima.yaml").write_text((inst.dir / "lima.yaml").read_text() + "osOpts: {Windows: {rdp: false}}\n")
    with pytest.raises(LimapyError, match="Remote Desktop is off"):
        rdp.target(inst)
    (inst.dir / "lima.yaml").write_text("images: [{location: /x.img}]\n")
    with pytest.raises(LimapyError, match="not a Windows guest"):
        rdp.target(inst)


def test_list_and_info_show_the_rdp_address(inst: store.Instance, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from limapy.cli import main

    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rdpAddress"] == "127.0.0.1:63389"
    assert main(["info", "win"]) == 0
    assert json.loads(capsys.readouterr().out)["rdpAddress"] == "127.0.0.1:63389"
    assert main(["list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "RDP" and row.split()[-1] == "127.0.0.1:63389"
    # Stopped: no address, and no RDP column.
    monkeypatch.setattr(driver, "status", lambda _i: store.STOPPED)
    assert main(["list", "--json"]) == 0
    assert "rdpAddress" not in json.loads(capsys.readouterr().out)
    assert main(["list"]) == 0
    assert "RDP" not in capsys.readouterr().out
