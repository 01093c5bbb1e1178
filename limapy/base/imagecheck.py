"""What a disk image from outside limapy must be before qemu-img or QEMU opens it: raw, or a self-contained
qcow2 (DESIGN, "Threat model").

A qcow2 can name other files that QEMU then opens with the user's rights: a backing file (`-b /etc/shadow`,
or a `json:{...}`/`nbd:` reference), an external data file (guest writes land in it), and formats such as
VMDK name extents the same way. Letting qemu-img *probe* the format is how such a file gets interpreted in the
first place, so the format is decided here from the magic bytes, the qcow2 header is read directly (before
any qemu-img runs: opening an image already opens its data file), and qemu-img is only ever asked with
`-f <that format>`. Other formats are refused with a hint to convert them where the user trusts them:
converting is itself what reads extents, so limapy does not do it on the user's behalf.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limapy.base import proc
from limapy.base.errors import ExternalToolError, LimapyError, NotFoundError

if TYPE_CHECKING:
    from limapy.base.records import ImageInfo

QEMU_IMG = "qemu-img"
QCOW2_MAGIC = b"QFI\xfb"
#: qcow2 v3 incompatible feature bit 2: the guest's data lives in an external file the header names.
_EXTERNAL_DATA_FILE = 1 << 2
_EXT_DATA_FILE_NAME = 0x44415441  # header extension "DATA"
_EXT_END = 0
_PROBE = 4096


class UnsafeImage(LimapyError):
    """An image that could make QEMU open a file other than itself, or one limapy does not take."""


@dataclass(frozen=True)
class Verified:
    format: str  # "qcow2" or "raw": what -f / -F / format= get
    virtual_size: int


def sniff(path: Path) -> str:
    """The image's format from its first bytes: "qcow2", "raw", or the name of another format qemu-img would
    see in it (never a guess that could make raw bytes mean more than bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_PROBE)
            size = os.fstat(f.fileno()).st_size
            tail = b""
            if size >= 512:
                f.seek(size - 512)
                tail = f.read(512)
    except OSError:
        return "raw"
    if head[:4] == QCOW2_MAGIC:
        version = struct.unpack(">I", head[4:8])[0] if len(head) >= 8 else 0
        return "qcow2" if version in (2, 3) else "qcow (version 1)" if version == 1 else "qcow2 of an unknown version"
    for magic, name in ((b"QED\0", "QED"), (b"KDMV", "VMDK"), (b"COWD", "VMDK (VMware 3)"),
                        (b"vhdxfile", "VHDX"), (b"conectix", "VHD"), (b"LUKS\xba\xbe", "LUKS"),
                        (b"WithoutFreeSpace", "Parallels"), (b"WithouFreSpacExt", "Parallels"),
                        (b"Bochs Virtual HD Image", "Bochs"), (b"#!/bin/sh\n#V2.0 Format", "cloop")):  # fmt: skip
        if head.startswith(magic):
            return name
    if len(head) >= 0x44 and struct.unpack("<I", head[0x40:0x44])[0] == 0xBEDA107F:
        return "VDI"
    if tail[:4] == b"koly":
        return "DMG"
    if _vmdk_descriptor(head):
        return "VMDK (descriptor)"
    return "raw"


def _vmdk_descriptor(head: bytes) -> bool:
    """A text VMDK descriptor (it names its extents by path): what qemu-img's own probe takes for one."""
    if b"# Disk DescriptorFile" in head:
        return True
    return any(line.strip() in (b"version=1", b"version=2", b"version=3") for line in head[:2048].splitlines())


#: Kinds of header problems (the first item of each `_qcow2_problems` pair).
BACKING, DATA_FILE, ENCRYPTED, TRUNCATED = "backing", "data-file", "encrypted", "truncated"


def _qcow2_problems(path: Path) -> list[tuple[str, str]]:
    """What a qcow2 header names besides the image itself, read without qemu-img: (kind, text) pairs."""
    with open(path, "rb") as f:
        head = f.read(_PROBE)
        if len(head) < 72:
            return [(TRUNCATED, "has a truncated qcow2 header")]
        version, backing_off, backing_len = struct.unpack(">IQI", head[4:20])
        crypt = struct.unpack(">I", head[32:36])[0]
        problems = []
        if backing_off or backing_len:
            name = ""
            if backing_off and 0 < backing_len <= 1023:
                f.seek(backing_off)
                name = f.read(backing_len).decode("utf-8", "replace")
            problems.append((BACKING, f"names a backing file `{name}`" if name else "names a backing file"))
        header_len = 72
        if version >= 3 and len(head) >= 104:
            incompatible = struct.unpack(">Q", head[72:80])[0]
            header_len = struct.unpack(">I", head[100:104])[0]
            if incompatible & _EXTERNAL_DATA_FILE:
                problems.append((DATA_FILE, "keeps its data in an external data file"))
        for ext, data in _extensions(f, header_len):
            if ext == _EXT_DATA_FILE_NAME:
                name = data.decode("utf-8", "replace")
                problems = [p for p in problems if p[0] != DATA_FILE]
                problems.append((DATA_FILE, f"names an external data file `{name}`"))
        if crypt:
            problems.append((ENCRYPTED, "is encrypted (QEMU would need its secret)"))
    return problems


def _extensions(f: Any, offset: int) -> list[tuple[int, bytes]]:
    """qcow2 header extensions (type, data) from `offset` until the end marker; at most 64 of them."""
    out: list[tuple[int, bytes]] = []
    if offset < 72 or offset > 65536:
        return out
    f.seek(offset)
    for _ in range(64):
        raw = f.read(8)
        if len(raw) < 8:
            break
        ext, length = struct.unpack(">II", raw)
        if ext == _EXT_END or length > 65536:
            break
        data = f.read(length)
        f.seek((8 - length % 8) % 8, os.SEEK_CUR)
        out.append((ext, data))
    return out


def info(path: Path, fmt: str) -> ImageInfo:
    """`qemu-img info -f FMT --output=json -U`: never a probe."""
    cp = proc.run([QEMU_IMG, "info", "-U", "--output=json", "-f", fmt, path])
    try:
        data: ImageInfo = json.loads(cp.stdout)
    except ValueError as e:
        raise ExternalToolError(f"qemu-img info {path}: unreadable output") from e
    return data


def _flatten_hint(path: Path, fmt: str, what: str) -> str:
    if what.startswith(("http://", "https://")):
        return "an image from the network that names files on this host is broken or hostile: use another image"
    return (f"only if you trust the image and what it names: `qemu-img convert -f {fmt} -O qcow2 {path} NEW.qcow2` "
            "makes a self-contained copy (it reads those files)")


def verify(path: Path, what: str | None = None) -> Verified:
    """The format limapy may hand to qemu-img and QEMU for `path` (an image from the network or the user),
    or UnsafeImage naming `what` (the location as the user wrote it) and the reason."""
    what = what or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(f"{what}: no such disk image") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeImage(f"{what}: not a regular file, so not a disk image limapy uses")
    fmt = sniff(path)
    if fmt not in ("qcow2", "raw"):
        raise UnsafeImage(
            f"{what} is a {fmt} image; limapy uses raw and self-contained qcow2 images only (other formats can "
            "name further files on this host)", hint=_flatten_hint(path, fmt.split()[0].lower(), what))
    if fmt == "qcow2":
        problems = [text for _, text in _qcow2_problems(path)]
        if problems:
            raise UnsafeImage(f"{what}: refusing this qcow2 image: it {'; it '.join(problems)}; limapy uses raw "
                              "and self-contained qcow2 images only", hint=_flatten_hint(path, fmt, what))
    meta = info(path, fmt)
    if meta.get("format") != fmt:  # qemu-img read it as what it was told, or refused
        raise UnsafeImage(f"{what}: qemu-img does not read it as {fmt}")
    specific = (meta.get("format-specific") or {}).get("data") or {}
    names = [str(meta.get(k)) for k in ("backing-filename", "full-backing-filename") if meta.get(k)]
    if names or specific.get("data-file") or meta.get("encrypted"):
        detail = names[0] if names else specific.get("data-file") or "encrypted"
        raise UnsafeImage(f"{what}: refusing this {fmt} image: it refers to `{detail}`; limapy uses raw and "
                          "self-contained qcow2 images only", hint=_flatten_hint(path, fmt, what))
    return Verified(fmt, int(meta.get("virtual-size", 0)))


def header_problems(path: Path, *, allow_backing: bool = False) -> list[str]:
    """Cheap (no qemu-img): what a qcow2's header names besides itself (a backing file only counts unless
    `allow_backing`: limapy's own overlays have one); [] for raw, missing or unreadable."""
    try:
        if sniff(path) != "qcow2":
            return []
        return [text for kind, text in _qcow2_problems(path) if not (allow_backing and kind == BACKING)]
    except OSError:
        return []


def check_header(path: Path, what: str, *, allow_backing: bool = False) -> None:
    """UnsafeImage when `path`'s qcow2 header names another file (see header_problems)."""
    problems = header_problems(path, allow_backing=allow_backing)
    if problems:
        raise UnsafeImage(f"{what}: refusing the qcow2 image {path}: it {'; it '.join(problems)}",
                          hint="limapy never makes such an image; it was changed outside limapy")
