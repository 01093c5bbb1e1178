"""The Linux stand-in guest path of the Windows e2e (tests/e2e/test_windows_standin.py), through libvirtd
(issue 16): the same templates/experimental/windows.yaml, created with `--driver libvirt`, boots the stand-in
disk (Debian under the Windows device layout: UEFI with a per-domain NVRAM, AHCI disk, e1000e, the install
and answer media as SATA CD-ROMs, an emulated TPM) as domain `limapy-windows` of qemu:///system.

Proven here: the first start imports the partitioned disk as a volume, attaches the install and answer media,
boots the disk and sends no keys (Setup "has already written the disk"), waits through "OpenSSH up" to ready
and writes win-done-installation; a screenshot comes through virDomainScreenshot; `shell` reaches the guest by
prefix with exit codes; `list --connect` shows the domain; after a stop the next definition has no CD-ROM and
the install media volumes are gone; the password is in no log or output; `delete` leaves no domain, volume
or NVRAM.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from limapy.qemu import firmware
from tests.e2e.conftest import LIBVIRT_SYSTEM, REPO_ROOT, RunLimapy
from tests.e2e.guest import put_on_standin_disk, standin_instance_args
from tests.e2e.lvrig import nothing_left, virsh

TEMPLATE = REPO_ROOT / "templates" / "experimental" / "windows.yaml"
DOMAIN = "limapy-windows"


def cdroms(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    return [
        (d.find("source").get("file") or "") if d.find("source") is not None else ""  # type: ignore[union-attr]
        for d in root.findall("devices/disk[@device='cdrom']")
    ]


@pytest.mark.timeout(2400)
@pytest.mark.usefixtures("libvirtd")
def test_windows_standin_through_libvirt(
    standin_disk: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    tpm = shutil.which("swtpm") is not None
    outputs: list[str] = []

    def limapy(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        cp = run_limapy(*args, timeout=timeout)
        outputs.extend([cp.stdout, cp.stderr])
        return cp

    cp = limapy(
        "create", "--driver", "libvirt", "--connect", LIBVIRT_SYSTEM, "--name", "windows",
        *standin_instance_args(tmp_path, tpm), str(TEMPLATE),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    inst = limapy_home / "windows"
    put_on_standin_disk(inst, standin_disk)
    try:
        cp = limapy("start", "windows", "--timeout", "15m", timeout=1200)
        assert cp.returncode == 0, cp.stderr
        err = cp.stderr
        assert (inst / "win-done-installation").exists()
        for phase in ("[OpenSSH up]", "[ready]"):
            assert phase in err, err
        assert "Windows Setup has already written the disk" in err and "pressing Enter" not in err, err
        assert "warning: guest: this guest is the Linux stand-in, not Windows" in err, err
        rdp_port = int((inst / "rdp.port").read_text())
        assert f"Remote Desktop on 127.0.0.1:{rdp_port}" in err, err

        # The domain as the first start defined it: the Windows x86_64 layout with both media attached.
        xml = virsh("dumpxml", DOMAIN)
        media = cdroms(xml)
        assert any(m.endswith("limapy-windows-install.iso") for m in media), media
        assert any(m.endswith("limapy-windows-cidata.iso") for m in media), media
        root = ET.fromstring(xml)
        assert root.find("devices/interface/model").get("type") == "e1000e"  # type: ignore[union-attr]
        assert (root.find("devices/tpm") is not None) == tpm
        # libvirt's per-domain NVRAM, copied from the template: with the code, one of OVMF's flash layouts
        loader, nvram = root.findtext("os/loader") or "", root.findtext("os/nvram") or ""
        assert loader and nvram and Path(nvram).is_file(), xml
        assert Path(loader).stat().st_size + Path(nvram).stat().st_size in firmware.X86_LAYOUTS, (loader, nvram)

        shot = tmp_path / "shot.png"
        sc = limapy("screenshot", "win", "-o", str(shot))
        assert sc.returncode == 0, sc.stderr
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and min(struct.unpack(">II", data[16:24])) >= 200

        cp = limapy("shell", "win", "echo", "hello")
        assert cp.returncode == 0 and cp.stdout.strip() == "hello", cp.stderr
        assert limapy("shell", "win", "exit", "3").returncode == 3
        cp = limapy("list", "--connect", LIBVIRT_SYSTEM, "--json")
        assert f'"domain": "{DOMAIN}"' in cp.stdout and '"here": true' in cp.stdout, cp.stdout + cp.stderr

        cp = limapy("stop", "windows", timeout=400)
        assert cp.returncode == 0, cp.stderr

        # Installed: the next start defines the domain without any CD-ROM and the install media volumes go.
        cp = limapy("start", "win", "--timeout", "10m", timeout=900)
        assert cp.returncode == 0, cp.stderr
        assert "already written" not in cp.stderr, cp.stderr
        assert cdroms(virsh("dumpxml", DOMAIN)) == []
        vols = virsh("vol-list", "limapy")
        assert "limapy-windows-install.iso" not in vols, vols
        assert limapy("shell", "win", "echo", "again").stdout.strip() == "again"
        cp = limapy("stop", "windows", timeout=400)
        assert cp.returncode == 0, cp.stderr

        password = (inst / "windows-password").read_text().strip()
        assert len(password) >= 16
        for log in ("ha.stdout.log", "ha.stderr.log", "serial.log"):
            assert password.encode() not in (inst / log).read_bytes(), log
        assert not [o for o in outputs if password in o]
    finally:
        cp = run_limapy("delete", "-f", "windows", timeout=300)
    assert cp.returncode == 0, cp.stderr
    nothing_left("windows")
