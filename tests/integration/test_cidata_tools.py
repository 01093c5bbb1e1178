"""First-boot media checked by real tools: isoinfo (Joliet / Rock Ridge listings and labels) and
`cloud-init schema` on the generated user-data. Each test skips when its tool is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from limapy.config.model import Spec
from limapy.guest.linux.seed import write_seed_iso
from limapy.guest.windows.answer import write_answer_iso

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden limapy-test"


def _cfg() -> dict[str, Any]:
    return {
        "user": {"name": "alice", "comment": "</FullName><Foo>&\"'", "uid": 501, "home": "/home/alice.guest",
                 "shell": "/bin/bash", "passwordlessSudo": True},
        "timezone": "UTC",
        "mountType": "9p",
        "mounts": [{"location": "/tmp/lima", "mountPoint": "/tmp/lima", "writable": True,
                    "9p": {"msize": "128KiB", "cache": "mmap", "protocolVersion": "9p2000.L"}}],
        "param": {"X": "y"},
        "provision": [{"mode": "boot", "script": "#!/bin/sh\necho {{.Param.X}}\n"},
                      {"mode": "system", "script": "#!/bin/sh\necho system\n"}],
    }


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed")
    return path


def _isoinfo(iso: Path, *flags: str) -> str:
    return subprocess.run([_need("isoinfo"), *flags, "-i", str(iso)], check=True, capture_output=True,
                          text=True).stdout


def test_seed_iso_names_with_isoinfo(tmp_path: Path) -> None:
    iso = tmp_path / "cidata.iso"
    write_seed_iso(iso, Spec.from_cfg(_cfg()), name="debian", iid="iid-1", ssh_pubkeys=[KEY],
                   mac="52:55:55:12:34:56")
    for flag in ("-J", "-R"):
        listing = _isoinfo(iso, flag, "-l")
        names = {line.split()[-1] for line in listing.splitlines() if line.startswith("-")}
        assert {"user-data", "meta-data", "network-config", "boot.sh", "lima.env", "param.env"} <= names
    assert "Volume id: cidata" in _isoinfo(iso, "-d")


def test_answer_iso_names_with_isoinfo(tmp_path: Path) -> None:
    iso = tmp_path / "answer.iso"
    cfg = _cfg()
    cfg["provision"] = [p for p in cfg["provision"] if p["mode"] != "boot"]
    spec = Spec.from_cfg({**cfg, "os": "Windows", "arch": "x86_64"})
    write_answer_iso(iso, spec, name="win", arch="x86_64", password="Test-Passw0rd.Fixed", ssh_pubkeys=[KEY],
                     image_index=None, image_name=None, is_server=False,
                     winpe_drivers={"$WinPEDriver$/NetKVM/netkvm.inf": b"; inf\r\n"})  # fmt: skip
    listing = _isoinfo(iso, "-J", "-l")
    names = {line.split()[-1] for line in listing.splitlines() if line.startswith("-")}
    assert {"autounattend.xml", "ssh_authorized_keys", "first_logon.ps1", "limapy-winpe-drivers.cmd"} <= names
    # Setup looks for `$WinPEDriver$` by that name: Joliet keeps it (ISO 9660 cannot hold a `$`).
    assert "/$WinPEDriver$/NetKVM/netkvm.inf" in _isoinfo(iso, "-J", "-f").split()
    assert "Volume id: autounattend" in _isoinfo(iso, "-d")
    assert "NO Rock Ridge present" in _isoinfo(iso, "-d")


def test_cloud_init_schema_accepts_user_data(tmp_path: Path) -> None:
    tool = _need("cloud-init")
    iso = tmp_path / "cidata.iso"
    write_seed_iso(iso, Spec.from_cfg(_cfg()), name="debian", iid="iid-1", ssh_pubkeys=[KEY],
                   mac="52:55:55:12:34:56")
    ud = tmp_path / "user-data"
    ud.write_text(_isoinfo(iso, "-R", "-x", "/user-data"))  # read it back from the image itself
    cp = subprocess.run([tool, "schema", "--config-file", str(ud)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "Valid cloud-config" in cp.stdout
    assert "DEPRECATED" not in cp.stdout + cp.stderr
