"""Windows install media: read an install ISO's image list and pick the edition to install.

A Windows install ISO carries `sources/install.wim` (or `install.esd`, or split `install.swm`) whose
WIM header points at an XML resource listing the images (editions). That XML is stored uncompressed,
as UTF-16LE with a BOM, so reading the 208-byte header and one resource is enough: the multi-GB file
is never read (a Server ISO's install.wim is over 4 GiB: its runs are read where they lie, see _Runs).
Microsoft ISOs keep the real tree in UDF (the ISO 9660 side is a stub), so UDF is
tried first, then Joliet, then plain ISO 9660.

WIM header layout (little endian; see wimlib's include/wimlib/header.h):
  +0x00 magic "MSWIM\\0\\0\\0"   +0x08 u32 header size (208)   +0x0c u32 version
  +0x2c u32 image count        +0x48 XML resource header (24 bytes):
      7-byte size in file, 1 flag byte, u64 offset in file, u64 original (uncompressed) size.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from limapy.base.errors import LimapyError

WIM_MAGIC = b"MSWIM\x00\x00\x00"
WIM_HEADER_SIZE = 208
XML_RESHDR_OFFSET = 0x48
IMAGE_COUNT_OFFSET = 0x2C
RESHDR_FLAG_COMPRESSED = 0x04
RESHDR_FLAG_SOLID = 0x10
# Real image lists are tens of KB; anything past this is not an install medium worth trusting.
MAX_XML_BYTES = 2 * 1024 * 1024

WIM_NAMES = ("install.wim", "install.esd", "install.swm")

# WINDOWS/ARCH values (PROCESSOR_ARCHITECTURE_*) -> Lima arch names.
_WIM_ARCH = {0: "i686", 9: "x86_64", 12: "aarch64"}
# Lima arch -> the word Microsoft uses on its media.
_MS_ARCH = {"x86_64": "x64", "aarch64": "arm64", "i686": "x86"}
_LABEL_ARCH = {"X64": "x86_64", "A64": "aarch64", "X86": "i686"}
# Client media labels (CCCOMA_ consumer, as Lima checks; CCSA_ seen on other client media).
_CLIENT_LABEL_PREFIXES = ("CCCOMA_", "CCSA_")

# Lima's fixed /IMAGE/INDEX values, used when the image list cannot be read.
LIMA_INDEX_CLIENT = {"x86_64": 6, "aarch64": 3}
LIMA_INDEX_SERVER = 1

DOWNLOAD_URLS = {
    "x86_64": "https://www.microsoft.com/software-download/windows11",
    "aarch64": "https://www.microsoft.com/software-download/windows11arm64",
}
SERVER_DOWNLOAD_URL = "https://www.microsoft.com/evalcenter/download-windows-server-2025"


class InstallMediaError(LimapyError):
    """The install ISO itself is unusable (not an ISO, unreadable file)."""


class WimMetadataError(InstallMediaError):
    """The ISO opens but its image list cannot be read; callers may fall back to fixed indexes.

    `partial` carries what could still be learnt (the volume label and what it implies).
    """

    def __init__(self, message: str, partial: MediaInfo | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class WimImage:
    index: int
    name: str
    edition_id: str | None
    arch: str | None  # "x86_64" | "aarch64" | "i686" | None
    languages: tuple[str, ...]
    display_name: str | None = None
    installation_type: str | None = None  # "Client" | "Server" | "Server Core" | ...

    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.name, self.display_name) if n)


@dataclass(frozen=True)
class MediaInfo:
    volume_label: str
    images: tuple[WimImage, ...]
    is_server: bool
    arch: str | None
    path: Path | None = None

    def describe(self) -> str:
        return str(self.path) if self.path else f"the install ISO ({self.volume_label or 'no label'})"


# --------------------------------------------------------------------------- WIM header + XML


def read_wim_xml(fp: BinaryIO, file_size: int, *, max_bytes: int = MAX_XML_BYTES) -> bytes:
    """Read the raw XML resource of a WIM from a seekable file, reading only header + resource."""
    fp.seek(0)
    header = fp.read(WIM_HEADER_SIZE)
    if len(header) < WIM_HEADER_SIZE or header[:8] != WIM_MAGIC:
        raise WimMetadataError("not a WIM file (no MSWIM header)")
    (hdr_size,) = struct.unpack_from("<I", header, 8)
    if hdr_size != WIM_HEADER_SIZE:
        raise WimMetadataError(f"unsupported WIM header size {hdr_size}")
    raw = header[XML_RESHDR_OFFSET : XML_RESHDR_OFFSET + 24]
    size_in_wim = int.from_bytes(raw[0:7], "little")
    flags = raw[7]
    offset, original_size = struct.unpack_from("<QQ", raw, 8)
    if size_in_wim == 0 or offset == 0:
        raise WimMetadataError("the WIM has no XML image list")
    if flags & (RESHDR_FLAG_COMPRESSED | RESHDR_FLAG_SOLID) or size_in_wim != original_size:
        raise WimMetadataError("the WIM's XML image list is compressed; limapy reads only uncompressed lists")
    if size_in_wim > max_bytes:
        raise WimMetadataError(f"the WIM's XML image list is {size_in_wim} bytes (limit {max_bytes})")
    if offset < WIM_HEADER_SIZE or offset + size_in_wim > file_size:
        raise WimMetadataError("the WIM's XML image list lies outside the file")
    fp.seek(offset)
    data = fp.read(size_in_wim)
    if len(data) != size_in_wim:
        raise WimMetadataError("the WIM's XML image list is truncated")
    return data


def _decode_xml(data: bytes) -> str:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        text = data.decode("utf-16")
    elif len(data) >= 2 and data[1:2] == b"\x00":
        text = data.decode("utf-16-le")
    else:
        text = data.decode("utf-8")
    return text.strip("\x00\ufeff \r\n\t")


def _text(elem: Any, path: str) -> str | None:
    found = elem.find(path)
    if found is None or found.text is None:
        return None
    value: str = found.text.strip()
    return value or None


def parse_wim_xml(data: bytes) -> tuple[WimImage, ...]:
    """Parse a WIM XML image list (bytes as stored). Refuses DTDs and entities outright."""
    import xml.etree.ElementTree as ET

    if len(data) > MAX_XML_BYTES:
        raise WimMetadataError("the WIM's XML image list is too large")
    try:
        text = _decode_xml(data)
    except UnicodeDecodeError as exc:
        raise WimMetadataError(f"the WIM's XML image list is not valid UTF-16: {exc.reason}") from None
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise WimMetadataError("refusing the WIM's XML image list: it contains a DTD or entity declaration")
    try:
        root = ET.fromstring(text)  # noqa: S314 - DTDs/entities rejected above, size capped
    except ET.ParseError as exc:
        raise WimMetadataError(f"the WIM's XML image list is not well-formed XML: {exc}") from None
    if root.tag != "WIM":
        raise WimMetadataError(f"the WIM's XML image list has root <{root.tag}>, expected <WIM>")
    images: list[WimImage] = []
    for pos, img in enumerate(root.findall("IMAGE"), start=1):
        try:
            index = int(img.get("INDEX", str(pos)))
        except ValueError:
            raise WimMetadataError(f"image {pos} has a non-numeric INDEX") from None
        arch_code = _text(img, "WINDOWS/ARCH")
        arch = _WIM_ARCH.get(int(arch_code)) if arch_code and arch_code.isdigit() else None
        langs = tuple(
            t.strip() for t in (e.text for e in img.findall("WINDOWS/LANGUAGES/LANGUAGE")) if t and t.strip()
        )
        default_lang = _text(img, "WINDOWS/LANGUAGES/DEFAULT")
        if default_lang and default_lang in langs:
            langs = (default_lang, *tuple(lang for lang in langs if lang != default_lang))
        name = _text(img, "NAME") or _text(img, "DISPLAYNAME") or f"image {index}"
        images.append(
            WimImage(
                index=index,
                name=name,
                edition_id=_text(img, "WINDOWS/EDITIONID") or _text(img, "FLAGS"),
                arch=arch,
                languages=langs,
                display_name=_text(img, "DISPLAYNAME"),
                installation_type=_text(img, "WINDOWS/INSTALLATIONTYPE") or _text(img, "INSTALLATIONTYPE"),
            )
        )
    if not images:
        raise WimMetadataError("the WIM's XML image list names no images")
    return tuple(images)


# --------------------------------------------------------------------------- labels


def arch_from_label(label: str) -> str | None:
    m = re.search(r"_(X64|A64|X86)FRE", label.upper())
    return _LABEL_ARCH[m.group(1)] if m else None


def server_from_label(label: str) -> bool:
    return not label.upper().startswith(_CLIENT_LABEL_PREFIXES)


def _server_from_images(images: tuple[WimImage, ...]) -> bool | None:
    known = False
    for img in images:
        kind = (img.installation_type or "").lower()
        edition = (img.edition_id or "").lower()
        if kind.startswith("server") or edition.startswith("server"):
            return True
        if kind or edition:
            known = True
    return False if known else None


def _common_arch(images: tuple[WimImage, ...]) -> str | None:
    arches = {img.arch for img in images if img.arch}
    return arches.pop() if len(arches) == 1 else None


def media_info(label: str, images: tuple[WimImage, ...], path: Path | None = None) -> MediaInfo:
    server = _server_from_images(images)
    return MediaInfo(
        volume_label=label,
        images=images,
        is_server=server_from_label(label) if server is None else server,
        arch=_common_arch(images) or arch_from_label(label),
        path=path,
    )


# --------------------------------------------------------------------------- ISO access


def _decode_dstring(raw: bytes) -> str:
    """An OSTA CS0 d-string: compression id byte, characters, length in the last byte."""
    if len(raw) < 2 or raw[-1] == 0:
        return ""
    body = raw[1 : raw[-1]]
    return body.decode("latin-1" if raw[0] == 8 else "utf-16-be", "replace").strip()


def _volume_label(iso: Any) -> str:
    label = ""
    try:
        label = bytes(iso.pvd.volume_identifier).decode("ascii", "replace").strip()
    except Exception:  # noqa: S110 - a missing label is not fatal
        pass
    if not label:
        try:
            label = _decode_dstring(bytes(iso.udf_main_descs.logical_volumes[0].log_vol_ident))
        except Exception:  # noqa: S110
            pass
    return label


def _child_name(kind: str, rec: Any) -> str:
    if kind == "udf":
        fid = rec.file_ident
        return "" if fid is None else bytes(fid.fi).decode(fid.encoding, "replace")
    raw = bytes(rec.file_identifier())
    if kind == "joliet":
        return raw.decode("utf-16-be", "replace")
    return raw.decode("ascii", "replace")


def _iso_match(kind: str, name: str) -> str:
    if kind == "iso":  # ISO 9660: "INSTALL.WIM;1", directories may end with "."
        name = name.split(";", 1)[0].rstrip(".")
    return name.lower()


def _find_path(iso: Any, kind: str, parts: tuple[str, ...], candidates: tuple[str, ...]) -> str | None:
    """Case-insensitive lookup of /<parts...>/<one of candidates> in one of the ISO's trees."""
    current = "/"
    for want in (*parts, None):
        key = f"{kind}_path"
        found = None
        for child in iso.list_children(**{key: current}):
            if child is None:
                continue
            name = _child_name(kind, child)
            if name in ("", ".", "..", "/", "\x00", "\x01"):
                continue
            match = _iso_match(kind, name)
            if want is not None and match == want and child.is_dir():
                found = name
                break
            if want is None and child.is_file() and match in candidates:
                found = name
                if match == candidates[0]:
                    break
        if found is None:
            return None
        current = current.rstrip("/") + "/" + found
    return current


def _locate_wim(iso: Any) -> tuple[str, str] | None:
    kinds = []
    if iso.has_udf():
        kinds.append("udf")
    if iso.has_joliet():
        kinds.append("joliet")
    kinds.append("iso")
    for kind in kinds:
        try:
            found = _find_path(iso, kind, ("sources",), WIM_NAMES)
        except Exception:  # noqa: S112 - a broken tree: try the next one
            continue
        if found:
            return kind, found
    return None


class _Runs:
    """A file inside an ISO as a seekable read-only stream over its byte runs (get_file_byte_extents): a
    multi-extent ISO 9660 file (over 4 GiB: several directory records) and a UDF file with several allocation
    descriptors (each at most 1 GiB) read right whether or not the runs are contiguous."""

    def __init__(self, fp: BinaryIO, runs: list[tuple[int, int]]) -> None:
        self.fp, self.runs, self.pos = fp, runs, 0
        self.size = sum(length for _, length in runs)

    def length(self) -> int:
        return self.size

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else self.pos + pos if whence == 1 else self.size + pos
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else max(0, min(n, self.size - self.pos))
        out = bytearray()
        start = 0  # the file offset where the current run begins
        for at, length in self.runs:
            if n <= len(out):
                break
            want = self.pos + len(out)
            if start <= want < start + length:
                self.fp.seek(at + want - start)
                chunk = self.fp.read(min(n - len(out), start + length - want))
                if not chunk:
                    break
                out += chunk
            start += length
        self.pos += len(out)
        return bytes(out)


def _read_xml(iso: Any, path: Path, kind: str, wim_path: str) -> bytes:
    try:
        runs = iso.get_file_byte_extents(**{f"{kind}_path": wim_path})
    except AttributeError:  # pycdlib before 1.15: its own reader (contiguous files only)
        with iso.open_file_from_iso(**{f"{kind}_path": wim_path}) as fp:
            return read_wim_xml(fp, fp.length())
    with open(path, "rb") as raw:
        runs_fp = _Runs(raw, [(int(at), int(length)) for at, length in runs])
        return read_wim_xml(runs_fp, runs_fp.length())  # type: ignore[arg-type]


def inspect_iso(path: Path) -> MediaInfo:
    """Read an install ISO's volume label and WIM image list; raises WimMetadataError to allow fallback."""
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
    except (PyCdlibException, OSError, struct.error, ValueError) as exc:
        raise InstallMediaError(
            f"{path} is not a readable ISO image: {exc}",
            hint="point images[].location at a Windows install ISO",
        ) from None
    try:
        label = _volume_label(iso)
        partial = media_info(label, (), path)
        located = _locate_wim(iso)
        if located is None:
            raise WimMetadataError(f"{path} has no sources/install.wim or install.esd", partial)
        kind, wim_path = located
        try:
            data = _read_xml(iso, path, kind, wim_path)
        except WimMetadataError as exc:
            raise WimMetadataError(f"{path}: {wim_path}: {exc.message}", partial) from None
        except (PyCdlibException, OSError, struct.error) as exc:
            raise WimMetadataError(f"{path}: cannot read {wim_path}: {exc}", partial) from None
        try:
            images = parse_wim_xml(data)
        except WimMetadataError as exc:
            raise WimMetadataError(f"{path}: {wim_path}: {exc.message}", partial) from None
        return media_info(label, images, path)
    finally:
        iso.close()


def inspect_iso_lenient(path: Path) -> tuple[MediaInfo | None, list[str]]:
    """inspect_iso, but an unreadable image list becomes a warning and label-only information."""
    try:
        return inspect_iso(path), []
    except WimMetadataError as exc:
        return exc.partial, [f"could not read the Windows image list: {exc.message}"]


# --------------------------------------------------------------------------- presence


def ms_arch(arch: str | None) -> str:
    return _MS_ARCH.get(arch or "", arch or "unknown")




def require_iso(location: str, arch: str, *, image_pos: int = 0, server: bool | None = None) -> Path:
    """The local install ISO named by an images[].location, or one LimapyError saying how to get it."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", location) and not location.startswith("file://"):
        raise ValueError(f"require_iso wants a local path, not {location!r}")
    path = Path(location.removeprefix("file://")).expanduser()
    if path.is_file():
        return path
    if server is None:
        server = "server" in path.name.lower()
    if server:
        where = f"Windows Server evaluation media: {SERVER_DOWNLOAD_URL}"
    else:
        url = DOWNLOAD_URLS.get(arch, DOWNLOAD_URLS["x86_64"])
        where = f"Windows 11 {ms_arch(arch)} (English (United States)): {url}"
    what = "is a directory, not an ISO" if path.exists() else "not found"
    raise LimapyError(
        f"Windows install ISO {what}: {path}",
        hint=(
            f"download {where}; save it as {path} or point the template at it with "
            f"--set '.images[{image_pos}].location=\"/path/Win11.iso\"' "
            "(or edit images[].location in the YAML)"
        ),
    )
