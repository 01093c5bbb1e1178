"""hack/gen-autounattend-iso.py, the answer ISO on its own: it works on a fresh machine with no SSH key anywhere
(it makes a key pair next to the ISO, 0600 like the password), and arm64 carries NetKVM from the virtio-win ISO
under $WinPEDriver$ (its network needs it; without --virtio-win the tool refuses)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pycdlib

from tests.winiso import build_virtio_win_iso, virtio_win_file

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "hack" / "gen-autounattend-iso.py"


def read(iso_path: Path, name: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path=name)
        return buf.getvalue()
    finally:
        iso.close()


def test_fresh_machine_gets_a_key_pair(tmp_path: Path) -> None:
    home = tmp_path / "home"  # no ~/.ssh, no ~/.limapy
    home.mkdir()
    out = tmp_path / "answer.iso"
    env = dict(os.environ, HOME=str(home), LIMAPY_HOME=str(home / ".limapy"))
    cp = subprocess.run([sys.executable, str(TOOL), "--arch", "arm64", "-o", str(out)], env=env,
                        capture_output=True, text=True, check=False)
    assert cp.returncode == 1 and "arm64 needs NetKVM" in cp.stderr and "--virtio-win" in cp.stderr
    virtio = build_virtio_win_iso(tmp_path / "virtio-win.iso")
    cp = subprocess.run([sys.executable, str(TOOL), "--arch", "arm64", "-o", str(out), "--virtio-win", str(virtio)],
                        env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    key, pub = tmp_path / "answer.iso.key", tmp_path / "answer.iso.key.pub"
    assert key.stat().st_mode & 0o777 == 0o600 and (tmp_path / "answer.iso.password").stat().st_mode & 0o777 == 0o600
    assert f"ssh -i {key}" in cp.stdout
    assert read(out, "/ssh_authorized_keys").decode().strip() == pub.read_text().strip()
    xml = read(out, "/autounattend.xml").decode()
    assert 'processorArchitecture="arm64"' in xml and "limapy-winpe-drivers.cmd" in xml
    assert read(out, "/$WinPEDriver$/NetKVM/netkvm.inf") == virtio_win_file("NetKVM", "w11", "ARM64", "netkvm.inf")
    password = (tmp_path / "answer.iso.password").read_text().strip()
    assert password not in cp.stdout + cp.stderr
    # Given a key, none is made.
    cp = subprocess.run([sys.executable, str(TOOL), "--arch", "amd64", "-o", str(tmp_path / "b.iso"),
                         "--ssh-key", str(pub)], env=env, capture_output=True, text=True, check=False)
    assert cp.returncode == 0, cp.stderr
    assert not (tmp_path / "b.iso.key").exists()
    assert "limapy-winpe-drivers" not in read(tmp_path / "b.iso", "/autounattend.xml").decode()  # amd64: inbox
