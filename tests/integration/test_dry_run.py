"""`limapy start --dry-run` changes nothing: $LIMAPY_HOME (and the download cache) hash the same before and after
a dry run of a created instance, Linux and Windows; the argv it prints is the plan a start would run. Before the
redesign a dry run grew the disk and wrote the vars store, the first-boot ISO, ssh.config and the password."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.winiso import build_standin_iso

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lpn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def limapy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIMAPY_HOME=str(home / "h"), LIMAPY_CACHE_DIR=str(home / "cache"), PYTHONPATH=str(REPO),
               LIMAPY_QEMU_ACCEL="tcg")
    env.pop("LIMAPY_DRIVER", None)
    return subprocess.run([sys.executable, "-m", "limapy", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def tree_hash(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under root: kind, mode, mtime, and content digest (files) or target (links)."""
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", st.st_mode, st.st_mtime_ns)
        else:
            out[rel] = ("file", st.st_mode, st.st_mtime_ns, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def unchanged_by_dry_run(home: Path, name: str) -> str:
    before = tree_hash(home)
    cp = limapy(home, "start", "--dry-run", name)
    assert cp.returncode == 0, cp.stderr
    after = tree_hash(home)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"a dry run changed: {changed}"
    return cp.stdout.strip().splitlines()[-1]


def test_linux_dry_run_writes_nothing(home: Path) -> None:
    img = home / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    t = home / "t.yaml"
    t.write_text(f"images:\n- location: {json.dumps(str(img))}\n  arch: x86_64\narch: x86_64\nmounts: []\n"
                 "disk: 2GiB\n")
    assert limapy(home, "create", "--name", "a", str(t)).returncode == 0
    inst = home / "h" / "a"
    # as an instance made by an older limapy: writing the base record is a start's job, not a dry run's
    (inst / "base-image.json").unlink(missing_ok=True)
    argv = unchanged_by_dry_run(home, "a")
    assert "qemu-efi-vars.fd" in argv and "cidata.iso" in argv
    for never in ("cidata.iso", "ssh.config", "qemu-efi-vars.fd", "base-image.json", "lock"):
        assert not (inst / never).exists(), never
    assert not (home / "h" / "_config" / "user").exists()  # no key made either


def test_windows_dry_run_writes_nothing(home: Path) -> None:
    iso = build_standin_iso(home / "Win11_x64.iso", arch="x86_64")
    cp = limapy(home, "create", "--name", "w", "--set", f'.images[0].location = "{iso}"', "--set", '.arch = "x86_64"',
                "--set", ".tpm = false", "--set", '.osOpts.Windows.opensshSource = "capability"', "template:windows")
    assert cp.returncode == 0, cp.stderr
    argv = unchanged_by_dry_run(home, "w")
    inst = home / "h" / "w"
    assert "id=cd2" in argv  # the answer ISO is planned, not written
    for never in ("cidata.iso", "windows-password", "rdp.port", "ssh.config", "qemu-efi-vars.fd"):
        assert not (inst / never).exists(), never
