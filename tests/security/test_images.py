"""Hardening, second round, item 1: a disk image from the network or the user is raw or a self-contained qcow2.

Hostile images are built with the real qemu-img (a backing file, a `json:` or `nbd:` backing reference, an
external data file, a VMDK whose extent is a host file, another format) and served over HTTP on 127.0.0.1;
`create` refuses each before anything is made, `disk import` refuses the data-file variant, and an additional
disk whose guest wrote a qcow2 header naming a host file into it is refused at the next boot."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from limapy.base.errors import LimapyError
from limapy.instance import disk
from tests.security.conftest import Server, final_error, instances, limapy, one_error, qcow2, template

SECRET = b"root:$6$not-a-real-hash:19000:0:99999:7:::\n"


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def backing(d: Path, secret: Path) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", str(secret), "-F", "raw", str(d / "evil.qcow2"), "64M")
    return d / "evil.qcow2"


def json_backing(d: Path, secret: Path) -> Path:
    ref = "json:" + json.dumps({"driver": "file", "filename": str(secret)})
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", ref, "-F", "raw", str(d / "evil.qcow2"), "64M")
    return d / "evil.qcow2"


def nbd_backing(d: Path, secret: Path) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", "nbd:127.0.0.1:1", "-F", "raw", str(d / "evil.qcow2"), "64M")
    return d / "evil.qcow2"


def data_file(d: Path, secret: Path) -> Path:
    """A qcow2 whose data lives in `secret` (created, then the header keeps naming it)."""
    target = d / "victim-data"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={target}", str(d / "evil.qcow2"), "1M")
    target.write_bytes(SECRET.ljust(1 << 20, b"\0"))
    return d / "evil.qcow2"


def vmdk_extent(d: Path, secret: Path) -> Path:
    """A VMDK descriptor whose flat extent is the host file."""
    qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", str(d / "evil.vmdk"), "1M")
    text = (d / "evil.vmdk").read_text().replace('"evil-flat.vmdk"', json.dumps(str(secret)))
    (d / "evil.vmdk").write_text(text)
    return d / "evil.vmdk"


def vdi(d: Path, secret: Path) -> Path:
    qemu_img("create", "-q", "-f", "vdi", str(d / "evil.vdi"), "1M")
    return d / "evil.vdi"


HOSTILE: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "backing": (backing, "names a backing file"),
    "json-backing": (json_backing, "names a backing file `json:"),
    "nbd-backing": (nbd_backing, "names a backing file `nbd:127.0.0.1:1`"),
    "data-file": (data_file, "names an external data file"),
    "vmdk-extent": (vmdk_extent, "is a VMDK (descriptor) image"),
    "vdi": (vdi, "is a VDI image"),
}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    s = tmp_path / "shadow"
    s.write_bytes(SECRET.ljust(1 << 20, b"\0"))
    return s


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_create_refuses_a_downloaded_image_that_names_host_files(
    home: Path, tmp_path: Path, server: Server, secret: Path, kind: str
) -> None:
    build, message = HOSTILE[kind]
    (tmp_path / "src").mkdir()
    image = build(tmp_path / "src", secret)
    url = server.add("/" + image.name, image.read_bytes())
    cp = limapy("create", "--name", "e", str(template(tmp_path, url)))
    err = final_error(cp)
    assert url in err and message in err, err
    assert "raw and self-contained qcow2" in err or "raw and self-contained qcow2" in cp.stderr
    assert instances(home) == []
    assert not list(home.glob(".e.tmp-*"))


@pytest.mark.parametrize("kind", ["backing", "data-file"])
def test_create_refuses_a_local_image_that_names_host_files(
    home: Path, tmp_path: Path, secret: Path, kind: str
) -> None:
    image = HOSTILE[kind][0](tmp_path, secret)
    err = one_error(limapy("create", "--name", "e", str(template(tmp_path, str(image)))))
    assert HOSTILE[kind][1] in err
    assert instances(home) == []


def test_overlay_refuses_a_hostile_cache_blob_and_names_the_verified_format(
    home: Path, tmp_path: Path, secret: Path
) -> None:
    """`create_overlay` had no backing check for files in the cache: the cache holds downloads."""
    blob_dir = tmp_path / "cache" / "download" / "by-content-sha256" / ("0" * 64)
    blob_dir.mkdir(parents=True)
    evil = backing(tmp_path, secret).rename(blob_dir / "data")
    with pytest.raises(LimapyError, match="names a backing file"):
        disk.create_overlay(evil, tmp_path / "disk", 1 << 30)
    assert not (tmp_path / "disk").exists()
    # -F is the format limapy read from the bytes, never qemu-img's probe: a raw image stays raw.
    raw = tmp_path / "plain.img"
    raw.write_bytes(b"\x55" * 65536)
    disk.create_overlay(raw, tmp_path / "disk", 1 << 30)
    meta = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2", str(tmp_path / "disk")],
                                     check=True, capture_output=True).stdout)  # fmt: skip
    assert meta["backing-filename-format"] == "raw"


def test_disk_import_refuses_an_external_data_file(home: Path, tmp_path: Path, secret: Path) -> None:
    evil = data_file(tmp_path, secret)
    err = one_error(limapy("disk", "import", "d", str(evil)))
    assert "names an external data file" in err and "victim-data" in err
    assert not (home / "_disks" / "d").exists()
    ok = qcow2(tmp_path / "fine.qcow2")
    cp = limapy("disk", "import", "d", str(ok))
    assert cp.returncode == 0, cp.stderr


def test_a_raw_additional_disk_with_a_guest_written_qcow2_header_is_refused(
    home: Path, tmp_path: Path, secret: Path
) -> None:
    """A guest owns the bytes of a raw disk: a qcow2 header it writes there must not make the host open files
    on its behalf at the next boot."""
    assert limapy("disk", "create", "d", "--size", "64M", "--format", "raw").returncode == 0
    img = qcow2(tmp_path / "img.qcow2")
    t = template(tmp_path, str(img), "additionalDisks: [d]\n")
    cp = limapy("create", "--name", "a", str(t))
    assert cp.returncode == 0, cp.stderr
    assert limapy("start", "--dry-run", "a").returncode == 0  # the raw disk attaches as raw
    header = backing(tmp_path, secret).read_bytes()[:65536]
    with open(home / "_disks" / "d" / "datadisk", "r+b") as f:  # what the guest wrote to its first sectors
        f.write(header)
    err = one_error(limapy("start", "--dry-run", "a"))
    assert "additional disk `d`" in err and "names a backing file" in err, err


def test_hostile_header_is_refused_without_running_qemu_img(tmp_path: Path, secret: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An external data file is opened as soon as qemu-img opens the image (a FIFO there would hang it):
    the header is read first, and qemu-img never sees such an image."""
    from limapy.base import imagecheck, proc

    evil = data_file(tmp_path, secret)
    ran: list[object] = []
    monkeypatch.setattr(proc, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(LimapyError, match="external data file"):
        imagecheck.verify(evil)
    with pytest.raises(LimapyError, match="external data file"):
        disk.info(evil)
    assert ran == []
