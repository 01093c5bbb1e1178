"""Hardening, second round (issue 24, item 17): a full file system. `delete` still frees space, ENOSPC is one
line naming the file system, and a `disk create` that fails leaves nothing behind.

The file system is a real one: a 8 MiB tmpfs mounted as LIMAPY_HOME in a private mount namespace
(`unshare -m`; `-r` too when not root), so nothing outlives the test. The commands run inside it from a
script; each one's exit code and output come back as files."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from limapy.base.errors import InstanceError
from tests.security.conftest import REPO, qcow2, template

SCRIPT = r"""
set -u
mount -t tmpfs -o size=8m tmpfs "$FS" || exit 99
export LIMAPY_HOME="$FS/home"
run() { name=$1; shift; "$PY" -m limapy "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; echo $? >"$OUT/$name.rc"; }
run create create --name a "$T"
run create2 create --name b "$T"
dd if=/dev/zero of="$FS/fill" bs=4k >/dev/null 2>&1
run edit edit --set ".cpus = 3" b
run delete delete a
dd if=/dev/zero of="$FS/fill2" bs=4k >/dev/null 2>&1
run disk disk create d --size 1GiB
ls -A "$LIMAPY_HOME/_disks" >"$OUT/disks.ls" 2>/dev/null
run disk2 disk create d --size 1GiB
rm -f "$FS/fill" "$FS/fill2"
run disk3 disk create d --size 64MiB
ls -A "$LIMAPY_HOME" >"$OUT/home.ls"
"""


@pytest.fixture
def full(tmp_path: Path) -> dict[str, tuple[int, str, str]]:
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is part of the test setup"
    fs, out = tmp_path / "fs", tmp_path / "out"
    fs.mkdir()
    out.mkdir()
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")))
    env = dict(os.environ, FS=str(fs), OUT=str(out), T=str(t), PY=sys.executable, PYTHONPATH=str(REPO),
               LIMAPY_CACHE_DIR=str(tmp_path / "cache"))  # fmt: skip
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    cp = subprocess.run([unshare, *flags, "--propagation", "private", "sh", "-c", SCRIPT], env=env,
                        capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert cp.returncode != 99, f"cannot mount a tmpfs here: {cp.stderr}"
    results = {}
    for rc in out.glob("*.rc"):
        name = rc.stem
        results[name] = (int(rc.read_text()), (out / f"{name}.out").read_text(), (out / f"{name}.err").read_text())
    for ls in out.glob("*.ls"):
        results[ls.stem] = (0, ls.read_text(), "")
    results["fs"] = (0, str(fs), "")
    return results


def test_full_file_system(full: dict[str, tuple[int, str, str]]) -> None:
    fs = full["fs"][1]
    assert full["create"][0] == 0 and full["create2"][0] == 0, full["create"]
    rc, _, err = full["edit"]  # writing lima.yaml on a full file system: one line naming it
    assert rc != 0 and "internal error" not in err and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if not ln.startswith("limapy: hint:")]
    assert len(lines) == 1 and lines[0].startswith(f"limapy: no space left on the file system mounted at {fs}"), err
    assert "limapy prune" in err and "limapy delete" in err  # the hint says how to free space
    rc, _, err = full["delete"]  # deleting frees space: it must work on a full disk
    assert rc == 0, err
    rc, _, err = full["disk"]
    assert rc != 0 and len(err.strip().splitlines()) <= 2 and "internal error" not in err, err
    assert full.get("disks", (0, "", ""))[1].split() == [], "a failed disk create left its directory"
    assert full["disk2"][0] != 0 and "already exists" not in full["disk2"][2]  # the name is not stuck
    assert full["disk3"][0] == 0, full["disk3"][2]  # space freed: the same name is created
    assert sorted(full["home"][1].split()) == ["_disks", "b"]  # `a` is gone, nothing half-made


def test_no_space_names_the_fullest_candidate(tmp_path: Path) -> None:
    """Without a file name (a write on a descriptor) the message names the file system of the fullest place
    limapy writes to; with one, that file's."""
    from limapy.base.fsutil import no_space

    e = OSError(errno.ENOSPC, "No space left on device")
    err = no_space(e, [tmp_path])
    assert isinstance(err, InstanceError) and err.message.startswith("no space left on the file system mounted at /")
    named = OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "x"))
    assert no_space(named).message.startswith("disk quota exceeded on the file system mounted at ")
    assert no_space(named).message.endswith(f"(writing {tmp_path / 'x'})")
