"""disk.py against the real qemu-img: overlays cost the same for any base size and hold no copy."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from limapy.base.errors import LimapyError
from limapy.instance import disk

MiB = 1 << 20
GiB = 1 << 30

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")


def make_base(path: Path, size: int) -> Path:
    """A raw image with real data at the start and the end (sparse in between: cheap to build)."""
    with path.open("wb") as f:
        f.write(b"\xab" * MiB)
        f.seek(size - MiB)
        f.write(b"\xcd" * MiB)
    return path


def allocated(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def timed_overlay(base: Path, work: Path, runs: int = 3) -> float:
    times = []
    for i in range(runs):
        inst = work / f"inst-{base.stem}-{i}"
        inst.mkdir(mode=0o700)
        t0 = time.perf_counter()
        disk.create_overlay(base, inst / "disk", 100 * GiB)
        times.append(time.perf_counter() - t0)
        assert allocated(inst) < 2 * MiB, "the instance dir must not hold a copy of the base"
    return statistics.median(times)


def test_overlay_cost_independent_of_base_size(tmp_path: Path) -> None:
    small = make_base(tmp_path / "small.img", 64 * MiB)
    big = make_base(tmp_path / "big.img", 2 * GiB)
    t_small = timed_overlay(small, tmp_path)
    t_big = timed_overlay(big, tmp_path)
    assert t_big <= 1.5 * t_small + 0.1, (t_small, t_big)
    meta = disk.info(tmp_path / "inst-big-0" / "disk")
    assert meta["format"] == "qcow2"
    assert meta["backing-filename"] == str(big)
    assert meta["backing-filename-format"] == "raw"
    assert meta["virtual-size"] == 100 * GiB


def test_overlay_reads_base_and_writes_stay_in_overlay(tmp_path: Path) -> None:
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-io is not installed")
    base = make_base(tmp_path / "base.img", 64 * MiB)
    before = base.read_bytes()
    d = tmp_path / "disk"
    disk.create_overlay(base, d, GiB)
    io = ["qemu-io", "-f", "qcow2"]
    subprocess.run([*io, "-c", "read -P 0xab 0 4k", str(d)], check=True, capture_output=True)
    r = subprocess.run([*io, "-c", "write -P 0x11 0 4k", str(d)], check=True, capture_output=True)
    assert b"wrote" in r.stdout
    r = subprocess.run([*io, "-c", "read -P 0x11 0 4k", str(d)], check=True, capture_output=True)
    assert b"Pattern verification failed" not in r.stdout
    assert base.read_bytes() == before
    assert disk.check(d).ok


def test_grow_and_refuse_shrink(tmp_path: Path) -> None:
    d = tmp_path / "disk"
    disk.create_empty(d, GiB)
    assert disk.virtual_size(d) == GiB
    assert os.stat(d).st_size < 2 * MiB
    assert disk.grow(d, 3 * GiB)
    assert disk.virtual_size(d) == 3 * GiB
    with pytest.raises(LimapyError, match=r"shrinking the disk \(3GiB --> 1GiB\) is not supported"):
        disk.grow(d, GiB)
    assert disk.virtual_size(d) == 3 * GiB
    assert disk.check(d).ok


def test_refuses_base_with_foreign_backing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    inner = make_base(tmp_path / "inner.img", 64 * MiB)
    layered = tmp_path / "layered.qcow2"
    disk.create_overlay(inner, layered, 64 * MiB)
    with pytest.raises(LimapyError, match="names a backing file"):
        disk.create_overlay(layered, tmp_path / "disk", GiB)
    assert not (tmp_path / "disk").exists()


def test_additional_disk_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    p = disk.ensure_additional_disk("data", 5 * GiB)
    assert disk.virtual_size(p) == 5 * GiB
    assert disk.info(p)["format"] == "qcow2"
