"""`limapy clone` of an installed Windows, the host side end to end, with the Linux stand-in guest
(hack/build-windows-standin.sh; see test_windows_standin.py for what it plays).

Proven here: a clone of an installed (stopped) stand-in gets new passwords (0600, in no output and no log) and a
pending identity; its first boot attaches the identity medium (label LIMAPY_ID, the guest sees it by label) in
the answer media's slot and boots the disk; once the boot is ready the record is gone, and the next start attaches
no medium. The source is untouched and still starts. What the
stand-in cannot play (it is not Windows): the guest applying the identity (tests/unit/test_windows_clone.py reads
that step from the script; docs/windows.md, "Clones", says what a real Windows must confirm).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import REPO_ROOT, RunLimapy
from tests.e2e.guest import put_on_standin_disk, standin_instance_args
from tests.e2e.test_windows_standin import TEMPLATE, block_devices, qemu_cmdline


def test_windows_clone_with_standin_guest(
    standin_disk: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    outputs: list[str] = []

    def limapy(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        cp = run_limapy(*args, timeout=timeout)
        outputs.extend([cp.stdout, cp.stderr])
        return cp

    cp = limapy("create", "--name", "win", *standin_instance_args(tmp_path, False), str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    src = limapy_home / "win"
    put_on_standin_disk(src, standin_disk)
    cp = limapy("clone", "win", "early")
    assert cp.returncode != 0 and "has not finished installing Windows" in cp.stderr, cp.stderr
    assert not (limapy_home / "early").exists()

    cp = limapy("start", "win", "--timeout", "14m")  # the install's first boot (the stand-in's first logon)
    assert cp.returncode == 0, cp.stderr
    assert (src / "win-done-installation").exists()
    cp = limapy("stop", "win")
    assert cp.returncode == 0, cp.stderr

    cp = limapy("clone", "win", "win2")
    assert cp.returncode == 0, cp.stderr
    assert "own computer name (lima-win2), passwords and SSH host keys" in cp.stderr, cp.stderr
    new = limapy_home / "win2"
    for name in ("windows-password", "win-clone-identity.json"):
        assert (new / name).stat().st_mode & 0o777 == 0o600, name
    password = (new / "windows-password").read_text().strip()
    assert password != (src / "windows-password").read_text().strip()

    # The clone's first boot: the identity medium in the seed's slot, the disk first.
    env = dict(os.environ, LIMAPY_HOME=str(limapy_home), PYTHONPATH=str(REPO_ROOT))
    start = subprocess.Popen(
        [sys.executable, "-m", "limapy", "start", "win2", "--timeout", "10m"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (new / "qemu.pid").exists() or not (new / "qmp.sock").exists():
            assert start.poll() is None, start.communicate()
            assert time.monotonic() < deadline, "QEMU did not start within 120 s"
            time.sleep(0.5)
        argv = qemu_cmdline(new)
        assert any("id=cd2" in a for a in argv) and not any("id=cd0" in a for a in argv), argv
        assert any(str(new / "cidata.iso") in a for a in argv), argv
        assert "ide-hd,drive=boot-disk,bus=ide.0,bootindex=0" in argv, argv
        assert {"boot-disk", "cd2"} <= block_devices(new)
        out, err = start.communicate(timeout=700)
    finally:
        if start.poll() is None:
            start.kill()
    outputs.extend([out, err])
    assert start.returncode == 0, err
    assert "[ready]" in err and "Windows Setup" not in err and "pressing Enter" not in err, err
    # The guest saw the medium by its label (udev's by-label link; Windows finds it the same way, by label).
    cp = limapy("shell", "win2", "ls", "/dev/disk/by-label/")
    assert cp.returncode == 0 and "LIMAPY_ID" in cp.stdout, cp.stdout + cp.stderr
    # Ready: the identity is applied, the record is gone (the next boot attaches nothing).
    assert not (new / "win-clone-identity.json").exists()
    cp = limapy("stop", "win2")
    assert cp.returncode == 0, cp.stderr

    cp = limapy("start", "win2", "--timeout", "10m")
    assert cp.returncode == 0, cp.stderr
    argv = qemu_cmdline(new)
    assert not [a for a in argv if "id=cd" in a or "cidata.iso" in a], argv
    assert not {"cd0", "cd1", "cd2"} & block_devices(new)
    cp = limapy("stop", "win2")
    assert cp.returncode == 0, cp.stderr

    for log in ("ha.stdout.log", "ha.stderr.log", "serial.log"):
        assert password.encode() not in (new / log).read_bytes(), log
    assert not [o for o in outputs if password in o]
