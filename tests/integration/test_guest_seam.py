"""The guest-OS seam carries a third OS: with a toy "FreeBSD" (tests/toyguest.py, registered by one line:
LIMAPY_GUEST_MODULES) run by a stub engine (tests/stubengine.py: no machine, a directory served over SSH),
`create` fetches what the toy asks for, `start` writes its first-boot media and the host agent waits on its
readiness probe, and `limapy shell` runs its remote command through the real OpenSSH client; nothing in limapy/
names the toy, and without the registry line limapy refuses `os: FreeBSD` before making anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lpt-", dir="/tmp"))
    yield path
    subprocess.run([sys.executable, "-m", "limapy", "stop", "-f", "t"], env=env(path), capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def env(home: Path, registered: bool = True) -> dict[str, str]:
    e = dict(os.environ, LIMAPY_HOME=str(home), LIMAPY_CACHE_DIR=str(home / "_cache"), PYTHONPATH=str(REPO),
             LIMAPY_DRIVER_MODULES="stub=tests.stubengine", LIMAPY_DRIVER="stub")  # fmt: skip
    e.pop("LIMAPY_GUEST_MODULES", None)
    if registered:
        e["LIMAPY_GUEST_MODULES"] = "FreeBSD=tests.toyguest"  # the one registry line
    return e


def limapy(home: Path, *args: str, registered: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "limapy", *args], env=env(home, registered), capture_output=True,
                          text=True, timeout=120, cwd=REPO)  # fmt: skip


def template(tmp: Path) -> Path:
    img = tmp / "freebsd-toy.img"
    img.write_bytes(b"a toy FreeBSD image\n")
    t = tmp / "t.yaml"
    t.write_text(f"os: FreeBSD\narch: x86_64\nimages:\n- location: {str(img)!r}\n  arch: x86_64\nmounts: []\n")
    return t


def test_a_toy_guest_is_created_started_probed_and_shelled_into(home: Path, tmp_path: Path) -> None:
    cp = limapy(home, "create", "--name", "t", str(template(tmp_path)))
    assert cp.returncode == 0, cp.stderr
    filled = (home / "t" / "lima.yaml").read_text()
    assert "os: FreeBSD" in filled

    cp = limapy(home, "start", "t")
    assert cp.returncode == 0, cp.stderr
    assert "READY" in cp.stderr
    seed = (home / "t" / "toy-seed.sh").read_text()  # the toy's first-boot media, written at the start
    assert "toy-boot-done" in seed
    root = home / "t" / "stubroot"
    assert (root / "var/run/toy-boot-done").read_text().strip().startswith("iid-")  # what the probe waited for
    events = (home / "t" / "ha.stdout.log").read_text()
    assert '"phase": "ssh"' in events and "SSH is up" in events  # the probe ran over SSH, before READY
    assert "the toy guest's user is" in events  # its ready_warnings, read over the same connection

    cp = limapy(home, "shell", "t", "sh", "-c", 'echo "in the toy: $(cat etc/user)"; exit 3')
    assert cp.returncode == 3, cp.stderr  # the exit code passes through
    user = (root / "etc" / "user").read_text().strip()
    assert cp.stdout == f"in the toy: {user}\n"

    cp = limapy(home, "stop", "t")
    assert cp.returncode == 0, cp.stderr
    assert limapy(home, "list", "--json").stdout.count('"status":"Stopped"') == 1


def test_without_its_registry_line_the_os_is_refused(home: Path, tmp_path: Path) -> None:
    cp = limapy(home, "create", "--name", "t", str(template(tmp_path)), registered=False)
    assert cp.returncode != 0
    assert "limapy cannot run `os: FreeBSD` guests" in cp.stderr and "Traceback" not in cp.stderr
    assert not (home / "t").exists()


def test_nothing_in_limapy_names_the_toy() -> None:
    hits = [p for p in (REPO / "limapy").rglob("*.py") if "toyguest" in p.read_text() or "stubengine" in p.read_text()]
    assert hits == []
