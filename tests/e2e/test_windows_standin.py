"""The host side of a Windows first boot, end to end, with a Linux stand-in guest.

An `os: Windows` instance is created from templates/experimental/windows.yaml with a stand-in install ISO
(tests/winiso.py); its empty disk is then replaced by an overlay on the disk hack/build-windows-standin.sh
builds: Debian booting through UEFI under the Windows device layout (AHCI disk, e1000e, install and answer
media as AHCI CD-ROMs, swtpm TPM), whose boot service plays Windows' first logon (user + SSH key from the
`autounattend` CD) and whose `PowerShell.exe` shim answers the host agent's readiness probe.

Proven here: the first `limapy start` (its disk partitioned, as Setup leaves it after its first phase) attaches
the install and answer media but boots the disk and sends no boot keys, waits through "OpenSSH up" until the
probe succeeds, shows the first logon's warnings and the RDP address and its phases read from COM1
(`[windows] installing OpenSSH`), and writes win-done-installation; a first logon that fails ends `limapy start`
with the failing step within a minute of the failure, not at the 90-minute timeout;
`limapy screenshot win` works during that boot; `limapy shell win` reaches the guest by prefix (exit codes
pass through the cmd.exe shim); a listener started in the guest is forwarded (shown by `list --json` and `info`,
none for RDP's 3389) and released when it stops, and `limapy copy` works both ways with drive-letter paths
(tests/e2e/windows_services.py); after `limapy stop` the next start attaches no install media (argv and QMP
query-block); a suspend and resume in between keeps memory, the TPM's PCRs and the vars store; the Windows
password appears in no log and no CLI output.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e import windows_services
from tests.e2e.conftest import REPO_ROOT, RunLimapy
from tests.e2e.guest import put_on_standin_disk, standin_instance_args

TEMPLATE = REPO_ROOT / "templates" / "experimental" / "windows.yaml"


def qemu_cmdline(inst: Path) -> list[str]:
    pid = int((inst / "qemu.pid").read_text().strip())
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]


def block_devices(inst: Path) -> set[str]:
    from limapy.qemu.qmp import QMP

    with QMP.connect(inst / "qmp.sock", timeout=10) as qmp:
        return {str(b.get("device")) for b in qmp.query_block() if b.get("inserted")}


def test_windows_first_boot_with_standin_guest(
    standin_disk: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    tpm = shutil.which("swtpm") is not None
    outputs: list[str] = []

    def limapy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        cp = run_limapy(*args, timeout=timeout)
        outputs.extend([cp.stdout, cp.stderr])
        return cp

    folders, ro, rw = windows_services.folder_args(tmp_path)
    cp = limapy("create", "--name", "windows", *standin_instance_args(tmp_path, tpm, *folders[1::2]), str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    inst = limapy_home / "windows"
    put_on_standin_disk(inst, standin_disk)

    # First start: install media attached; a screenshot while it boots.
    env = dict(os.environ, LIMAPY_HOME=str(limapy_home), PYTHONPATH=str(REPO_ROOT))
    start = subprocess.Popen(
        [sys.executable, "-m", "limapy", "start", "windows", "--timeout", "12m"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (inst / "qemu.pid").exists() or not (inst / "qmp.sock").exists():
            assert start.poll() is None, start.communicate()
            assert time.monotonic() < deadline, "QEMU did not start within 120 s"
            time.sleep(0.5)
        argv = qemu_cmdline(inst)
        assert any("id=cd0" in a for a in argv) and any("id=cd2" in a for a in argv), argv
        assert "ide-hd,drive=boot-disk,bus=ide.0,bootindex=0" in argv, argv
        assert {"boot-disk", "cd0", "cd2"} <= block_devices(inst)
        time.sleep(3)
        shot = tmp_path / "shot.png"
        sc = limapy("screenshot", "win", "-o", str(shot))
        assert sc.returncode == 0, sc.stderr
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        assert min(struct.unpack(">II", data[16:24])) >= 200
        out, err = start.communicate(timeout=780)
    finally:
        if start.poll() is None:
            start.kill()
    outputs.extend([out, err])
    print(err)  # what `limapy start` showed (-rP), as docs/windows.md quotes it
    assert start.returncode == 0, err
    assert (inst / "win-done-installation").exists()
    for phase in ("[firmware]", "[OpenSSH up]", "[ready]"):
        assert phase in err, err
    # The first logon's phases, from COM1 (the stand-in writes them to ttyS0 as first_logon.ps1 does to COM1).
    assert "[windows] installing OpenSSH" in err and "[windows] sshd started" in err, err
    assert err.index("[windows] installing OpenSSH") < err.index("[ready]"), err
    # The disk is partitioned (as after Setup's first phase): it boots first, no boot keys are sent.
    assert "Windows Setup has already written the disk" in err and "pressing Enter" not in err, err
    # What the first logon left in limapy-warnings.txt is shown; so is the Remote Desktop address.
    assert "warning: guest: this guest is the Linux stand-in, not Windows" in err, err
    rdp_port = int((inst / "rdp.port").read_text())
    assert f"Remote Desktop on 127.0.0.1:{rdp_port}" in err, err

    # The guest by prefix; exit codes pass through the (stand-in) cmd.exe.
    cp = limapy("shell", "win", "echo", "hello")
    assert cp.returncode == 0 and cp.stdout.strip() == "hello", cp.stderr
    assert limapy("shell", "win", "exit", "3").returncode == 3

    # Issue 26: automatic port forwards from the listener query (opened, shown, released) and copies both ways.
    windows_services.check_forwards(inst, limapy)
    windows_services.check_copies(inst, limapy, tmp_path)
    windows_services.check_folders(inst, limapy, tmp_path, ro, rw, err)

    # Suspend and resume (issue 14): memory, the TPM's volatile state (PCR 0, extended by the firmware at
    # boot; a fresh swtpm would not have it) and the vars store come back.
    # One word per argument, no cmd.exe special characters: `shell` to a Windows instance escapes the command
    # line for cmd.exe (carets), which the stand-in's bash would read literally.
    pcr = ["cat", "/sys/class/tpm/tpm0/pcr-sha256/0"] if tpm else ["echo", "no-tpm"]
    cp = limapy("shell", "win", "touch", "/dev/shm/mark")
    assert cp.returncode == 0, cp.stderr
    cp = limapy("shell", "win", *pcr)
    assert cp.returncode == 0, cp.stderr
    pcr0 = cp.stdout.strip()
    assert pcr0 and pcr0 != "0" * 64, pcr0
    vars_before = (inst / "qemu-efi-vars.fd").read_bytes()
    cp = limapy("suspend", "win", timeout=300)
    assert cp.returncode == 0, cp.stderr
    cp = limapy("start", "win", "--timeout", "10m", timeout=700)
    assert cp.returncode == 0 and "[resuming]" in cp.stderr, cp.stderr
    assert "discarded" not in cp.stderr, cp.stderr
    cp = limapy("shell", "win", "ls", "/dev/shm/mark")
    assert cp.returncode == 0, cp.stdout + cp.stderr  # memory came back: a boot would have an empty /dev/shm
    cp = limapy("shell", "win", *pcr)
    assert cp.stdout.strip() == pcr0, cp.stdout + cp.stderr
    assert (inst / "qemu-efi-vars.fd").read_bytes() == vars_before
    assert not (inst / "suspend.state").exists()

    cp = limapy("stop", "windows")
    assert cp.returncode == 0, cp.stderr

    # Second start: no install media.
    cp = limapy("start", "win", "--timeout", "10m", timeout=700)
    assert cp.returncode == 0, cp.stderr
    argv = qemu_cmdline(inst)
    assert not [a for a in argv if "id=cd" in a or "/iso," in a or "cidata.iso" in a], argv
    devices = block_devices(inst)
    assert "boot-disk" in devices and not {"cd0", "cd1", "cd2"} & devices, devices
    cp = limapy("stop", "windows")
    assert cp.returncode == 0, cp.stderr

    password = (inst / "windows-password").read_text().strip()
    assert len(password) >= 16
    for log in ("ha.stdout.log", "ha.stderr.log", "serial.log"):
        assert password.encode() not in (inst / log).read_bytes(), log
    assert not [o for o in outputs if password in o]


def test_windows_first_logon_failure_ends_the_start(
    standin_disk: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    """Issue 23, item 9: the guest reports a failed first-logon step on COM1; the host agent stops waiting and
    `limapy start` fails with the step, the error and where the log is, within a minute of the failure."""
    fail = ('.param.STANDIN_FAIL = "openssh"',
            '.provision = [{"mode": "system", "script": "Write-Host $env:PARAM_STANDIN_FAIL"}]')  # a param is used
    args = standin_instance_args(tmp_path, False, *fail)
    cp = run_limapy("create", "--name", "failing", *args, str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    inst = limapy_home / "failing"
    put_on_standin_disk(inst, standin_disk)
    env = dict(os.environ, LIMAPY_HOME=str(limapy_home), PYTHONPATH=str(REPO_ROOT))
    began = time.monotonic()
    start = subprocess.Popen(
        [sys.executable, "-m", "limapy", "start", "failing", "--timeout", "20m"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    failed_at = None
    try:
        while start.poll() is None and time.monotonic() - began < 600:
            log = inst / "serial.log"
            if failed_at is None and log.exists() and b"LIMAPY-FAILED openssh" in log.read_bytes():
                failed_at = time.monotonic()
            time.sleep(0.5)
        _, err = start.communicate(timeout=120)
    finally:
        if start.poll() is None:
            start.kill()
        run_limapy("stop", "-f", "failing", timeout=120)
    ended = time.monotonic()
    assert failed_at is not None, err
    print(f"the failure came {failed_at - began:.0f} s into `limapy start`, which ended {ended - failed_at:.1f} s "
          f"later ({ended - began:.0f} s in all)")
    assert start.returncode != 0, err
    assert ended - failed_at < 60, err
    assert "[windows] installing OpenSSH" in err, err
    assert "the Windows first logon failed at step `openssh`" in err, err
    assert "PARAM_STANDIN_FAIL" in err and "first-logon.log" in err and str(inst / "serial.log") in err, err
    assert "[ready]" not in err and not (inst / "win-done-installation").exists()
