"""Hardening, second round, items 6 and 9: a base that changed is noticed however it changed, and a newer
release of a local compressed image never rewrites the base older instances stand on. Real qemu-img."""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

import pytest

from limapy import download
from limapy.base import stamps
from limapy.base.errors import LimapyError
from limapy.instance import disk, store
from tests.security.conftest import Server, limapy, one_error, qcow2, template


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rewrite_in_place(path: Path, offset: int, data: bytes) -> None:
    """Change bytes without changing size, inode or mtime (the mtime is put back): only ctime tells."""
    st = os.stat(path)
    time.sleep(0.02)  # file times tick coarsely: make sure the rewrite lands on a later ctime
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (st.st_size, st.st_ino, st.st_mtime_ns)


# --- 6. a base rewritten in place with its mtime restored -------------------------------------------------


def test_start_notices_a_base_rewritten_in_place_with_its_mtime_put_back(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2", fill=0x41)
    assert limapy("create", "--name", "a", str(template(tmp_path, str(img)))).returncode == 0
    inst = store.Instance("a", home / "a")
    assert disk.verify_base(inst.base_record, inst.disk, "a") is False
    size = img.stat().st_size
    rewrite_in_place(img, size - 65536, b"\x43" * 65536)  # the last cluster: guest data, not the header
    with pytest.raises(LimapyError, match="changed since the instance was created"):
        disk.verify_base(inst.base_record, inst.disk, "a")
    assert "changed since the instance was created" in one_error(limapy("start", "--dry-run", "a"))


def test_a_cache_blob_rewritten_in_place_is_verified_again(home: Path, server: Server) -> None:
    good = b"the real image " * 1000
    url = server.add("/img", good)
    path = download.fetch(url, digest="sha256:" + hashlib.sha256(good).hexdigest())
    rewrite_in_place(path, 0, b"X" * 15)
    again = download.fetch(url, digest="sha256:" + hashlib.sha256(good).hexdigest())
    assert again.read_bytes() == good  # moved aside and fetched again
    assert server.gets("/img") == 2


def test_a_local_file_digest_is_not_trusted_after_an_in_place_rewrite(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "img.raw"
    f.write_bytes(b"A" * 4096)
    before = download.identity(f).digest
    rewrite_in_place(f, 0, b"B" * 16)
    assert download.identity(f).digest != before
    assert download.identity(f).digest == "sha256:" + sha(f)


def test_summary_and_memo_stamps_see_an_in_place_rewrite(tmp_path: Path) -> None:
    f = tmp_path / "lima.yaml"
    f.write_text("cpus: 2\n")
    record = stamps.record([f])
    rewrite_in_place(f, 6, b"4")
    assert f.read_text() == "cpus: 4\n"
    assert not stamps.unchanged(record)


# --- 9. a newer local .qcow2.gz never rewrites an older instance's base ------------------------------------


@pytest.mark.parametrize("replace", ["rename", "in-place"])
def test_newer_local_compressed_image_leaves_older_bases_alone(home: Path, tmp_path: Path, replace: str) -> None:
    v1 = qcow2(tmp_path / "v1.qcow2", fill=0x41).read_bytes()
    v2 = qcow2(tmp_path / "v2.qcow2", fill=0x42).read_bytes()
    gz = tmp_path / "release.qcow2.gz"
    gz.write_bytes(gzip.compress(v1, mtime=0))
    t = template(tmp_path, str(gz))
    assert limapy("create", "--name", "old", str(t)).returncode == 0
    base_old = disk.backing_file(home / "old" / "disk")
    assert base_old is not None and sha(base_old) == hashlib.sha256(v1).hexdigest()
    if replace == "rename":  # a new release downloaded beside and moved over the old name
        (tmp_path / "new.gz").write_bytes(gzip.compress(v2, mtime=0))
        (tmp_path / "new.gz").replace(gz)
    else:  # written over the same file
        gz.write_bytes(gzip.compress(v2, mtime=0))
    cp = limapy("create", "--name", "new", str(t))
    assert cp.returncode == 0, cp.stderr
    base_new = disk.backing_file(home / "new" / "disk")
    assert base_new is not None and sha(base_new) == hashlib.sha256(v2).hexdigest()
    assert base_new != base_old
    assert sha(base_old) == hashlib.sha256(v1).hexdigest()  # what `old` was made on, still
    assert limapy("start", "--dry-run", "old").returncode == 0
