from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from limapy.base import proc
from limapy.base.errors import InstanceError, LimapyError, NotFoundError
from limapy.instance import disk

GiB = 1 << 30


def qcow2_header(backing: str | None = None) -> bytes:
    """A qcow2 v3 header as qemu-img writes one (what limapy reads of it without qemu-img)."""
    import struct

    name = (backing or "").encode()
    head = struct.pack(">4sIQI", b"QFI\xfb", 3, 512 if name else 0, len(name)).ljust(100, b"\0")
    head += struct.pack(">I", 104)
    return head.ljust(512, b"\0") + name


class FakeQemuImg:
    """Pretends to be qemu-img: `images` maps path -> info dict; create writes a small file."""

    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.calls: list[list[str]] = []
        self.check_rc = 0
        self.check_out: dict[str, Any] = {"check-errors": 0}

    def __call__(self, argv: Sequence[str | Path], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        args = [str(a) for a in argv]
        self.calls.append(args)
        assert args[0] == "qemu-img"
        verb = args[1]
        out = b""
        rc = 0
        if verb == "info":
            out = json.dumps(self.images[args[-1]]).encode()
        elif verb == "create":
            path, size = args[-2], int(args[-1])
            Path(path).write_bytes(b"QFI\xfb")
            meta: dict[str, Any] = {"format": args[args.index("-f") + 1], "virtual-size": size}
            if "-b" in args:
                meta["backing-filename"] = args[args.index("-b") + 1]
            self.images[path] = meta
        elif verb == "resize":
            self.images[args[-2]]["virtual-size"] = int(args[-1])
        elif verb == "check":
            out, rc = json.dumps(self.check_out).encode(), self.check_rc
        return subprocess.CompletedProcess(args, rc, out, b"")

    def add(self, path: Path, fmt: str, size: int, backing: str | None = None) -> Path:
        path.write_bytes(qcow2_header(backing) if fmt == "qcow2" else b"x")
        meta: dict[str, Any] = {"format": fmt, "virtual-size": size}
        if backing:
            meta["backing-filename"] = backing
        self.images[str(path)] = meta
        return path

    def rename(self, src: Path, dst: Path) -> None:
        self.images[str(dst)] = self.images.pop(str(src))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeQemuImg:
    f = FakeQemuImg()
    monkeypatch.setattr(proc, "run", f)
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    real_replace = disk.os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        f.rename(Path(src), Path(dst))

    monkeypatch.setattr(disk.os, "replace", replace)
    return f


def test_overlay_argv_uses_detected_format(fake: FakeQemuImg, tmp_path: Path) -> None:
    base = fake.add(tmp_path / "base.img", "raw", 2 * GiB)
    target = tmp_path / "disk"
    disk.create_overlay(base, target, 100 * GiB)
    create = fake.calls[-1]
    assert create[:3] == ["qemu-img", "create", "-q"]
    assert create[create.index("-f") + 1] == "qcow2"
    assert create[create.index("-b") + 1] == str(base)
    assert create[create.index("-F") + 1] == "raw"
    assert create[-1] == str(100 * GiB)
    assert target.exists() and not (tmp_path / ".disk.tmp").exists()
    assert not [c for c in fake.calls if c[1] in ("convert", "dd")]


def test_overlay_never_smaller_than_base(fake: FakeQemuImg, tmp_path: Path) -> None:
    base = fake.add(tmp_path / "base.qcow2", "qcow2", 10 * GiB)
    disk.create_overlay(base, tmp_path / "disk", 1 * GiB)
    assert fake.calls[-1][-1] == str(10 * GiB)


def test_overlay_refuses_foreign_backing_chain(fake: FakeQemuImg, tmp_path: Path) -> None:
    base = fake.add(tmp_path / "base.qcow2", "qcow2", GiB, backing="/etc/shadow")
    with pytest.raises(LimapyError, match="names a backing file `/etc/shadow`"):
        disk.create_overlay(base, tmp_path / "disk", GiB)
    assert not (tmp_path / "disk").exists()
    # A downloaded blob in the cache is no exception (issue 24, item 1): it came from the network.
    cached = tmp_path / "cache" / "download"
    cached.mkdir(parents=True)
    blob = fake.add(cached / "data", "qcow2", GiB, backing=str(tmp_path / "x"))
    with pytest.raises(LimapyError, match="names a backing file"):
        disk.create_overlay(blob, tmp_path / "disk", GiB)
    assert not [c for c in fake.calls if c[1] in ("create", "info")]  # refused from the header alone


def test_overlay_refuses_to_overwrite_and_missing_base(fake: FakeQemuImg, tmp_path: Path) -> None:
    base = fake.add(tmp_path / "base.qcow2", "qcow2", GiB)
    (tmp_path / "disk").write_text("precious")
    with pytest.raises(InstanceError, match="already exists"):
        disk.create_overlay(base, tmp_path / "disk", GiB)
    assert (tmp_path / "disk").read_text() == "precious"
    with pytest.raises(NotFoundError):
        disk.create_overlay(tmp_path / "missing", tmp_path / "d2", GiB)


def test_failed_create_leaves_no_disk(
    fake: FakeQemuImg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(argv: Sequence[str | Path], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        Path(str(argv[-2])).write_bytes(b"partial")
        raise disk.ExternalToolError("qemu-img failed: No space left on device")

    monkeypatch.setattr(proc, "run", failing)
    with pytest.raises(disk.ExternalToolError):
        disk.create_empty(tmp_path / "disk", GiB)
    assert list(tmp_path.iterdir()) == []


def test_create_empty_and_grow_and_shrink(fake: FakeQemuImg, tmp_path: Path) -> None:
    d = tmp_path / "disk"
    disk.create_empty(d, 4 * GiB)
    tmp = str(tmp_path / ".disk.tmp")
    assert fake.calls[-1] == ["qemu-img", "create", "-q", "-f", "qcow2", tmp, str(4 * GiB)]
    assert disk.virtual_size(d) == 4 * GiB
    assert disk.grow(d, 4 * GiB) is False
    assert disk.grow(d, 8 * GiB) is True
    assert fake.calls[-1] == ["qemu-img", "resize", "-q", "-f", "qcow2", str(d), str(8 * GiB)]
    with pytest.raises(LimapyError) as ei:
        disk.grow(d, 2 * GiB)
    assert ei.value.message == "shrinking the disk (8GiB --> 2GiB) is not supported"


def test_check(fake: FakeQemuImg, tmp_path: Path) -> None:
    d = fake.add(tmp_path / "disk", "qcow2", GiB)
    assert disk.check(d).ok
    fake.check_rc, fake.check_out = 3, {"check-errors": 0, "leaks": 4}
    r = disk.check(d)
    assert r.ok and r.leaks == 4
    fake.check_rc, fake.check_out = 2, {"check-errors": 0, "corruptions": 2}
    r = disk.check(d)
    assert not r.ok and r.corruptions == 2
    raw = fake.add(tmp_path / "raw", "raw", GiB)
    n = len(fake.calls)
    assert disk.check(raw).ok
    assert all(c[1] != "check" for c in fake.calls[n:])


def test_is_iso9660(tmp_path: Path) -> None:
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"\0" * 0x8001 + b"CD001" + b"\0" * 100)
    assert disk.is_iso9660(iso)
    other = tmp_path / "x.img"
    other.write_bytes(b"\0" * 0x9000)
    assert not disk.is_iso9660(other)
    assert not disk.is_iso9660(tmp_path / "missing")


def test_additional_disks(fake: FakeQemuImg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    with pytest.raises(NotFoundError, match="does not exist"):
        disk.ensure_additional_disk("data")
    p = disk.ensure_additional_disk("data", 10 * GiB)
    assert p == home / "_disks" / "data" / "datadisk"
    assert (p.parent.stat().st_mode & 0o777) == 0o700
    n = len(fake.calls)
    assert disk.ensure_additional_disk("data", 20 * GiB) == p
    assert len(fake.calls) == n  # existing disk untouched
    a, b = home / "a", home / "b"
    a.mkdir()
    b.mkdir()
    running = {a}
    monkeypatch.setattr(disk, "owner_running", lambda owner: owner in running)
    assert disk.claim_additional_disk("data", a) == p
    disk.claim_additional_disk("data", a)  # re-claim by the owner is fine
    with pytest.raises(InstanceError, match="in use by the running instance `a`"):
        disk.claim_additional_disk("data", b)
    running.clear()  # `a` stopped: its mark no longer holds the disk
    disk.claim_additional_disk("data", b)
    assert disk.disk_owner("data") == b
    disk.release_additional_disk("data", b)
    disk.claim_additional_disk("data", a)
    running.add(a)
    disk.release_additional_disk("data", a)
    disk.claim_additional_disk("data", b)
    b.rmdir()  # owner gone: the stale claim does not block
    disk.claim_additional_disk("data", a)
