"""The install media's "Press any key to boot from CD or DVD", answered by the real host agent under TCG.

The stand-in install ISO boots (El Torito EFI, as Microsoft's efisys.bin) into tests/standin/bootcd.c, which
prints that prompt through the firmware's console, waits about 5 s for a key, and on a key plays Setup's first
steps: it partitions and writes the instance disk, then restarts the machine, after which it prompts again.

Proven on x86_64 (OVMF, PS/2 keyboard) and aarch64 (AAVMF, usb-kbd) with the firmware slowed (one vCPU, and
for aarch64 `max` with its architected pointer authentication, the slow one under TCG):
- the first boot's prompt is answered (the stand-in says so on the serial console, the phase display says so),
- after Setup's restart the prompt gets no key (it times out: "no key pressed"),
- a second `limapy start` mid-install (the disk is partitioned) boots the disk first, keeps the answer media
  attached and sends no key at all;
- a boot program whose prompt never reaches the serial console (the stand-in variant printing it on the screen
  only) still gets its key, from the firmware's CD boot line on, and Setup starts (issue 23).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import standin_efi
from tests.winiso import build_standin_iso, build_virtio_win_iso

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "templates" / "experimental" / "windows.yaml"
IMAGE_POS = {"x86_64": 0, "aarch64": 1}
KEY = b"limapy-standin: key pressed"
NO_KEY = b"limapy-standin: no key pressed"
WROTE = b"limapy-standin: Setup wrote the disk"


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lpb-", dir="/tmp"))
    yield path
    for pidfile in path.glob("*/*.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        except (ValueError, OSError):
            pass
    shutil.rmtree(path, ignore_errors=True)


def env(home: Path) -> dict[str, str]:
    return dict(os.environ, LIMAPY_HOME=str(home), PYTHONPATH=str(REPO), LIMAPY_QEMU_ACCEL="tcg")


def limapy(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limapy", *args], env=env(home), capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def serial(inst: Path) -> bytes:
    try:
        return (inst / "serial.log").read_bytes().replace(b"\x00", b"")
    except OSError:
        return b""


def wait_for(inst: Path, want: bytes, start: subprocess.Popen[str], seconds: float) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = serial(inst)
        if want in text:
            return text
        assert start.poll() is None, start.communicate()
        time.sleep(0.5)
    raise AssertionError(f"{want!r} not in serial.log after {seconds:.0f} s: {serial(inst)[-1500:]!r}")


def events(inst: Path) -> list[dict[str, object]]:
    out = []
    for line in (inst / "ha.stdout.log").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def qemu_argv(inst: Path) -> list[str]:
    pid = int((inst / "qemu.pid").read_text().strip())
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_boot_prompt_answered_once_and_never_mid_install(home: Path, tmp_path: Path, arch: str) -> None:
    missing = [t for t in (f"qemu-system-{arch}", "qemu-img") if shutil.which(t) is None]
    missing += standin_efi.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (hack/setup.sh installs them)")
    iso = build_standin_iso(tmp_path / f"Win11_{arch}.iso", arch=arch, boot_prompt=True)
    sets = [
        f'.arch = "{arch}"', f'.images[{IMAGE_POS[arch]}].location = "{iso}"', ".tpm = false",
        '.video.display = "none"', ".cpus = 1", '.memory = "1GiB"', '.disk = "2GiB"',
        '.osOpts.Windows.opensshSource = "capability"',  # no MSI download (no network here)
    ]  # fmt: skip
    if arch == "aarch64":
        vw = build_virtio_win_iso(tmp_path / "virtio-win.iso")
        sets += [
            f'.osOpts.Windows.virtioWin = [{{location: "{vw}", arch: "aarch64"}}]',
            '.vmOpts.qemu.cpuType.aarch64 = "max"',  # QARMA pointer authentication: much slower than impdef
        ]
    cp = limapy(home, "create", "--name", "win", *[a for s in sets for a in ("--set", s)], str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    inst = home / "win"

    # First start: the prompt is answered; Setup writes the disk and restarts; the next prompt gets no key.
    start = subprocess.Popen(
        [sys.executable, "-m", "limapy", "start", "win", "--timeout", "8m"], env=env(home),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        text = wait_for(inst, NO_KEY, start, 420)
        assert text.count(KEY) == 1 and WROTE in text, text[-2000:]
        assert text.index(KEY) < text.index(WROTE) < text.rindex(NO_KEY)
        assert b"Press any key to boot from CD or DVD" in text[text.index(WROTE) :]  # it did ask again
        messages = [str(e.get("message") or "") for e in events(inst)]
        assert any("answered the boot prompt" in m for m in messages), messages
        assert any("Windows Setup started" in m for m in messages), messages
        argv = qemu_argv(inst)
        cd0 = next(a for a in argv if "drive=cd0" in a and not a.startswith("file="))
        assert cd0.endswith("bootindex=0"), cd0
    finally:
        stop = limapy(home, "stop", "-f", "win")
        _, err = start.communicate(timeout=60)
    assert stop.returncode == 0, stop.stderr
    assert "[firmware] answered the boot prompt" in err, err

    # Second start mid-install: the disk is partitioned, so it boots first, the media stay, no key is sent.
    dry = limapy(home, "start", "--dry-run", "win")
    assert dry.returncode == 0, dry.stderr
    start = subprocess.Popen(
        [sys.executable, "-m", "limapy", "start", "win", "--timeout", "8m"], env=env(home),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (inst / "qemu.pid").exists():
            assert start.poll() is None and time.monotonic() < deadline, start.communicate()
            time.sleep(0.3)
        argv = qemu_argv(inst)
        disk = next(a for a in argv if "drive=boot-disk" in a and not a.startswith("file="))
        assert disk.endswith("bootindex=0"), disk
        assert any("id=cd2" in a for a in argv) and any("id=cd0" in a for a in argv)  # answer media stay
        assert not [a for a in argv if "drive=cd" in a and "bootindex" in a]
        # Let the firmware run through its boot options (the stand-in "installed" disk boots nothing).
        wait_for(inst, b"BdsDxe: loading Boot", start, 240)
        time.sleep(15)
        assert KEY not in serial(inst), serial(inst)[-2000:]
        messages = [str(e.get("message") or "") for e in events(inst)]
        assert any("already written the disk" in m for m in messages), messages
        assert not any("pressing Enter" in m or "answered the boot prompt" in m for m in messages), messages
    finally:
        limapy(home, "stop", "-f", "win")
        start.communicate(timeout=60)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_prompt_only_on_the_screen_still_starts_setup(home: Path, tmp_path: Path, arch: str) -> None:
    """Issue 23: the boot program's prompt never reaches the serial console (the stand-in built to print it on
    the graphics console only). Keys go from the firmware's CD boot line, so Setup still starts: the stand-in
    takes a key and writes the disk."""
    missing = [t for t in (f"qemu-system-{arch}", "qemu-img") if shutil.which(t) is None]
    missing += standin_efi.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (hack/setup.sh installs them)")
    iso = build_standin_iso(tmp_path / f"Win11_{arch}.iso", arch=arch, boot_prompt="screen")
    sets = [
        f'.arch = "{arch}"', f'.images[{IMAGE_POS[arch]}].location = "{iso}"', ".tpm = false",
        '.video.display = "none"', ".cpus = 1", '.memory = "1GiB"', '.disk = "2GiB"',
        '.osOpts.Windows.opensshSource = "capability"',
    ]  # fmt: skip
    if arch == "aarch64":
        vw = build_virtio_win_iso(tmp_path / "virtio-win.iso")
        sets += [f'.osOpts.Windows.virtioWin = [{{location: "{vw}", arch: "aarch64"}}]']
    cp = limapy(home, "create", "--name", "win", *[a for s in sets for a in ("--set", s)], str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    inst = home / "win"
    start = subprocess.Popen(
        [sys.executable, "-m", "limapy", "start", "win", "--timeout", "8m"], env=env(home),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        text = wait_for(inst, WROTE, start, 420)
        assert b"the prompt shows on the screen only" in text, text[-2000:]
        assert b"Press any key" not in text  # nothing of the prompt on the serial console
        assert KEY in text and text.index(KEY) < text.index(WROTE)
        messages = [str(e.get("message") or "") for e in events(inst)]
        assert any("starting the install media: pressing Enter" in m for m in messages), messages
        deadline = time.monotonic() + 60
        while not any("Windows Setup started" in str(e.get("message") or "") for e in events(inst)):
            assert time.monotonic() < deadline, [e.get("message") for e in events(inst)]
            time.sleep(0.5)
    finally:
        stop = limapy(home, "stop", "-f", "win")
        start.communicate(timeout=60)
    assert stop.returncode == 0, stop.stderr
