"""limapy.base.iso: names, labels, modes and byte-for-byte determinism, read back with pycdlib."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pycdlib
import pytest

from limapy.base.errors import LimapyError
from limapy.base.iso import write_iso, write_iso_file

FILES = {
    "autounattend.xml": b"<unattend/>",
    "ssh_authorized_keys": b"ssh-ed25519 AAAA test\n",
    "user-data": b"#cloud-config\n",
    "meta-data": b"instance-id: iid-1\n",
    "provision.system/00000000": b"#!/bin/sh\necho hi\n",
    "provision.system/00000001": b"#!/bin/sh\n",
    "$WinPEDriver$/viostor.inf": b"[Version]\n",
    "a-very-long-file-name-that-needs-joliet.txt": b"x",
    "a-very-long-file-name-that-needs-joliet.cfg": b"y",
}


def _open(data: bytes) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    return iso


def _read(iso: pycdlib.PyCdlib, **path: str) -> bytes:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


def test_joliet_long_names_and_label() -> None:
    iso = _open(write_iso(FILES, "autounattend", joliet=True))
    try:
        assert iso.has_joliet() and not iso.has_rock_ridge()
        for path, data in FILES.items():
            assert _read(iso, joliet_path="/" + path) == data
        assert iso.pvd.volume_identifier.rstrip(b" ") == b"autounattend"
        assert iso.joliet_vd.volume_identifier.decode("utf-16-be").rstrip() == "autounattend"
    finally:
        iso.close()


def test_rock_ridge_names_and_modes() -> None:
    data = write_iso(FILES, "cidata", joliet=True, rock_ridge=True, modes={"provision.system/00000000": 0o755})
    iso = _open(data)
    try:
        assert iso.has_rock_ridge() and iso.has_joliet()
        for path, content in FILES.items():
            assert _read(iso, rr_path="/" + path) == content
        rec = iso.get_record(rr_path="/provision.system/00000000")
        assert stat.S_IMODE(rec.rock_ridge.get_file_mode()) == 0o755
        rec = iso.get_record(rr_path="/user-data")
        assert stat.S_IMODE(rec.rock_ridge.get_file_mode()) == 0o444
    finally:
        iso.close()


def test_iso9660_names_are_unique_and_valid() -> None:
    import re

    iso = _open(write_iso(FILES, "cidata"))
    try:
        names = [c.file_identifier().decode() for c in iso.list_children(iso_path="/")]
    finally:
        iso.close()
    real = [n for n in names if n not in ("\x00", "\x01", ".", "..")]
    assert len(real) == len(set(real)) == 8  # 6 files + 2 directories at the root
    for n in real:
        assert re.fullmatch(r"[A-Z0-9_]{1,8}(\.[A-Z0-9_]{0,3};1)?", n), n


def test_deterministic_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    a = write_iso(FILES, "cidata", rock_ridge=True)
    monkeypatch.setenv("TZ", "America/New_York")
    import time

    time.tzset()
    try:
        b = write_iso(dict(reversed(list(FILES.items()))), "cidata", rock_ridge=True)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert a == b
    assert write_iso({**FILES, "user-data": b"changed"}, "cidata", rock_ridge=True) != a


def test_clock_is_restored() -> None:
    import time

    import pycdlib.pycdlib as mod

    write_iso(FILES, "x")
    assert mod.time is time


def test_write_iso_file_atomic_and_private(tmp_path: Path) -> None:
    target = tmp_path / "seed.iso"
    target.write_bytes(b"old")
    write_iso_file(target, FILES, "cidata", rock_ridge=True)
    assert target.read_bytes() == write_iso(FILES, "cidata", rock_ridge=True)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]


@pytest.mark.parametrize(
    "files,label",
    [
        ({"../x": b""}, "l"),
        ({"a//b": b""}, "l"),
        ({"x" * 65: b""}, "l"),
        ({"a": b""}, ""),
        ({"a": b""}, "x" * 33),
    ],
)
def test_rejects_bad_input(files: dict[str, bytes], label: str) -> None:
    with pytest.raises(LimapyError):
        write_iso(files, label)


def test_needs_joliet_or_rock_ridge() -> None:
    with pytest.raises(LimapyError):
        write_iso(FILES, "x", joliet=False, rock_ridge=False)
