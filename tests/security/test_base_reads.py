"""`create` is O(1) in the image size (issue 29, item 2): a local image no digest pins is never read beyond
its header, a pinned one is hashed once per version of the file (size, mtime, inode, ctime, device), and a
base is still re-checked at start: a digest-less one by its stat (any change is refused), a pinned one by
its digest (a touched file with the same bytes passes, other bytes are refused).

Bytes read are counted with the kernel's per-process counter (`rchar` in /proc/self/io: every read(2) and
pread(2), page cache or not), around an in-process `create` after a warm-up, so imports do not count. The
qemu-img children read headers only (their time is in hack/bench.py's create rows).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from limapy.base.errors import LimapyError
from limapy.instance import disk, store
from tests.security.conftest import limapy, one_error, template

MiB = 1 << 20
SIZE = 256 * MiB
SMALL_READ = 16 * MiB  # templates, the schema verdict, qemu-img's JSON: far below any image

pytestmark = pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc/self/io")


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def raw_image(path: Path, fill: int = 0xAB) -> Path:
    """A raw image of SIZE bytes: real data at the start and the end, sparse between (reads still count)."""
    with path.open("wb") as f:
        f.write(bytes([fill]) * MiB)
        f.seek(SIZE - MiB)
        f.write(bytes([fill]) * MiB)
    return path


def sha(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def pinned(tmp_path: Path, img: Path, digest: str, name: str) -> Path:
    t = tmp_path / f"{name}.yaml"
    t.write_text(f"images:\n- location: {str(img)!r}\n  arch: x86_64\n  digest: {digest!r}\narch: x86_64\n")
    return t


def read_by_create(tmpl: Path, name: str) -> int:
    from limapy.ops.create import create

    before = rchar()
    create(str(tmpl), name=name)
    return rchar() - before


@pytest.fixture
def warm(home: Path, tmp_path: Path) -> None:
    """One create first: the imports, the schema verdict and qemu-img's page cache are then what every create
    after it has, and what is counted is the image."""
    w = tmp_path / "warm"
    w.mkdir()
    read_by_create(template(w, str(raw_image(w / "warm.raw"))), "warm")


def test_create_reads_no_more_than_the_header_of_a_digestless_local_image(home: Path, tmp_path: Path,
                                                                          warm: None) -> None:  # fmt: skip
    img = raw_image(tmp_path / "img.raw")
    n = read_by_create(template(tmp_path, str(img)), "a")
    assert n < SMALL_READ, f"create read {n} bytes for a {SIZE}-byte image no digest pins"
    record = json.loads((home / "a" / "base-image.json").read_text())
    st = img.stat()
    assert record == {"path": str(img), "stat": f"{st.st_size} {st.st_mtime_ns} {st.st_ino} {st.st_ctime_ns} "
                                                 f"{st.st_dev}"}  # fmt: skip
    assert not (tmp_path / "cache" / "download" / "by-path-sha256").exists()  # nothing hashed, nothing recorded
    inst = store.Instance("a", home / "a")
    before = rchar()
    assert disk.verify_base(inst.base_record, inst.disk, "a") is False  # start's check: by stat
    assert rchar() - before < MiB


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_a_pinned_image_is_hashed_once_per_version_of_the_file(home: Path, tmp_path: Path, warm: None,
                                                               algo: str) -> None:  # fmt: skip
    img = raw_image(tmp_path / "img.raw")
    t = pinned(tmp_path, img, f"{algo}:{sha(img, algo)}", "t")
    first = read_by_create(t, "a")
    assert SIZE <= first < SIZE + SMALL_READ, f"the digest is checked once over the whole file ({first} bytes)"
    assert read_by_create(t, "b") < SMALL_READ  # the same version of the file: remembered by its stat
    record = json.loads((home / "b" / "base-image.json").read_text())
    assert record["digest"] == f"{algo}:{sha(img, algo)}"  # the pinned digest, not a second hash in sha256
    time.sleep(0.02)
    os.utime(img)  # a new version of the file (same bytes): hashed again, once
    assert SIZE <= read_by_create(t, "c") < SIZE + SMALL_READ
    assert read_by_create(t, "d") < SMALL_READ


def test_a_wrong_pin_still_fails_create(home: Path, tmp_path: Path) -> None:
    img = raw_image(tmp_path / "img.raw")
    cp = limapy("create", "--name", "a", str(pinned(tmp_path, img, "sha256:" + "0" * 64, "t")))
    assert "digest mismatch" in one_error(cp)
    assert not (home / "a").exists()


def test_a_touched_digestless_base_is_refused_with_the_way_out(home: Path, tmp_path: Path) -> None:
    """No digest pins it, so a change of its stat cannot be told from a change of its bytes: refused, and the
    hint says how to accept the file as it is (the user's explicit word)."""
    img = raw_image(tmp_path / "img.raw")
    assert limapy("create", "--name", "a", str(template(tmp_path, str(img)))).returncode == 0
    inst = store.Instance("a", home / "a")
    time.sleep(0.02)
    os.utime(img)
    with pytest.raises(LimapyError, match="changed since the instance was created") as e:
        disk.verify_base(inst.base_record, inst.disk, "a")
    assert e.value.hint and str(inst.base_record) in e.value.hint
    assert "no digest pins it" in one_error(limapy("start", "--dry-run", "a"))
    inst.base_record.unlink()  # the user accepts the file as it is now
    assert limapy("start", "--dry-run", "a").returncode == 0


def test_a_touched_pinned_base_is_hashed_and_kept_a_rewritten_one_refused(home: Path, tmp_path: Path) -> None:
    img = raw_image(tmp_path / "img.raw")
    assert limapy("create", "--name", "a", str(pinned(tmp_path, img, f"sha256:{sha(img)}", "t"))).returncode == 0
    inst = store.Instance("a", home / "a")
    time.sleep(0.02)
    os.utime(img)  # the same bytes, a new stat
    assert disk.verify_base(inst.base_record, inst.disk, "a") is True  # hashed: the same bytes; re-record it
    disk.record_base(inst.base_record, img)
    before = rchar()
    assert disk.verify_base(inst.base_record, inst.disk, "a") is False  # and from then on by stat
    assert rchar() - before < MiB
    st = img.stat()
    time.sleep(0.02)
    with img.open("r+b") as f:  # other bytes, mtime put back: the ctime tells, the digest decides
        f.write(b"\x00" * 512)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(LimapyError, match=r"changed since the instance was created: .* holds sha256:"):
        disk.verify_base(inst.base_record, inst.disk, "a")
