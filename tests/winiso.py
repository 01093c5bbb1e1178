"""Stand-in Windows install ISOs for tests: UDF + Joliet, a Win11-like label and a real WIM header.

The WIM holds no files, only what limapy reads: the 208-byte header, some filler standing in for
resources, and the uncompressed UTF-16LE XML image list at the end (where WIMGAPI puts it).
The default edition orders are chosen so that Lima's fixed indexes (6 x64, 3 arm64, 1 server) pick
the wrong edition: only reading the image list gets Pro / Standard (Desktop Experience).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

# Pro at index 2; Lima's 6 would be "Pro Education".
X64_EDITIONS = [
    "Windows 11 Home",
    "Windows 11 Pro",
    "Windows 11 Home N",
    "Windows 11 Education",
    "Windows 11 Pro N",
    "Windows 11 Pro Education",
    "Windows 11 Pro for Workstations",
]
# Pro at index 5; Lima's 3 would be "Education".
ARM64_EDITIONS = [
    "Windows 11 Home",
    "Windows 11 Home Single Language",
    "Windows 11 Education",
    "Windows 11 Pro Education",
    "Windows 11 Pro",
    "Windows 11 Pro for Workstations",
]
# Lima's 1 is Server Core; the desktop edition is 2.
SERVER_EDITIONS = [
    "Windows Server 2025 Standard",
    "Windows Server 2025 Standard (Desktop Experience)",
    "Windows Server 2025 Datacenter",
    "Windows Server 2025 Datacenter (Desktop Experience)",
]

LABELS = {
    "x86_64": "CCCOMA_X64FRE_EN-US_DV9",
    "aarch64": "CCCOMA_A64FRE_EN-US_DV9",
}
SERVER_LABEL = "SSS_X64FREE_EN-US_DV9"

_ARCH_CODE = {"x86_64": 9, "aarch64": 12, "i686": 0}
_CLIENT_IDS = [  # longest suffix first
    ("Pro for Workstations", "ProfessionalWorkstation"),
    ("Pro Education", "ProfessionalEducation"),
    ("Home Single Language", "CoreSingleLanguage"),
    ("Education N", "EducationN"),
    ("Home N", "CoreN"),
    ("Pro N", "ProfessionalN"),
    ("Education", "Education"),
    ("Home", "Core"),
    ("Pro", "Professional"),
]


def edition_id(name: str) -> str:
    if "Server" in name:
        base = "ServerDatacenter" if "Datacenter" in name else "ServerStandard"
        return base + ("Eval" if "Evaluation" in name else "")
    for suffix, ident in _CLIENT_IDS:
        if name.endswith(" " + suffix):
            return ident
    return "Enterprise"


def installation_type(name: str) -> str:
    if "Server" not in name:
        return "Client"
    return "Server" if "Desktop Experience" in name else "Server Core"


def image_xml(
    editions: Sequence[str], arch: str, *, languages: Sequence[str] = ("en-US",), with_ids: bool = True
) -> str:
    parts = ["<WIM><TOTALBYTES>4096</TOTALBYTES>"]
    for index, name in enumerate(editions, start=1):
        windows = [f"<ARCH>{_ARCH_CODE[arch]}</ARCH>", "<PRODUCTNAME>Microsoft Windows</PRODUCTNAME>"]
        if with_ids:
            windows.append(f"<EDITIONID>{edition_id(name)}</EDITIONID>")
            windows.append(f"<INSTALLATIONTYPE>{installation_type(name)}</INSTALLATIONTYPE>")
        if languages:
            langs = "".join(f"<LANGUAGE>{escape(lang)}</LANGUAGE>" for lang in languages)
            windows.append(f"<LANGUAGES>{langs}<DEFAULT>{escape(languages[0])}</DEFAULT></LANGUAGES>")
        parts.append(
            f'<IMAGE INDEX="{index}"><DIRCOUNT>1</DIRCOUNT><WINDOWS>{"".join(windows)}</WINDOWS>'
            f"<NAME>{escape(name)}</NAME><DESCRIPTION>{escape(name)}</DESCRIPTION>"
            f"<DISPLAYNAME>{escape(name)}</DISPLAYNAME></IMAGE>"
        )
    parts.append("</WIM>")
    return "".join(parts)


def wim_bytes(
    xml: str | bytes | None,
    *,
    image_count: int = 1,
    esd: bool = False,
    xml_flags: int = 0x02,
    declared_size: int | None = None,
    filler: int = 4096,
) -> bytes:
    """A WIM: header, `filler` bytes of fake resources, then the XML resource (UTF-16LE + BOM)."""
    if isinstance(xml, str):
        blob = b"\xff\xfe" + xml.encode("utf-16-le")
    else:
        blob = xml or b""
    offset = 208 + filler if blob else 0
    size = len(blob) if declared_size is None else declared_size
    header = bytearray(208)
    header[0:8] = b"MSWIM\x00\x00\x00"
    struct.pack_into("<IIII", header, 8, 208, 0xE00 if esd else 0x10D00, 0x00040002, 32768)
    header[0x18:0x28] = bytes(range(16))  # GUID
    struct.pack_into("<HHI", header, 0x28, 1, 1, image_count)
    if blob:
        header[0x48:0x4F] = size.to_bytes(7, "little")
        header[0x4F] = xml_flags
        struct.pack_into("<QQ", header, 0x50, offset, size)
    return bytes(header) + b"\xa5" * filler + blob


def build_iso(
    path: Path,
    *,
    label: str,
    files: dict[str, bytes],
    trees: Sequence[str] = ("udf", "joliet", "iso"),
    efi_boot: bytes | None = None,
) -> Path:
    """A UDF 2.60 + Joliet + ISO 9660 ISO holding `files` ({"sources/install.wim": b"..."}).

    `trees` picks which directory trees name the files: ("udf",) is laid out like Microsoft's media,
    whose ISO 9660 side only holds a README stub. `efi_boot` is a FAT image made the El Torito EFI boot
    entry (no emulation), as efisys.bin is on Microsoft's media.
    """
    import pycdlib

    iso = pycdlib.PyCdlib()
    # The Joliet label holds 16 UCS-2 characters (Microsoft's media truncate it the same way);
    # the primary descriptor gets the full 32-character label.
    iso.new(
        interchange_level=3,
        joliet=3 if "joliet" in trees else None,
        udf="2.60" if "udf" in trees else None,
        vol_ident=label[:16],
    )
    iso.pvd.volume_identifier = label.encode("ascii").ljust(32, b" ")

    def names(rel: str, is_file: bool) -> dict[str, str]:
        out = {}
        if "iso" in trees:
            out["iso_path"] = "/" + rel.upper() + (";1" if is_file else "")
        if "joliet" in trees:
            out["joliet_path"] = "/" + rel
        if "udf" in trees:
            out["udf_path"] = "/" + rel
        return out

    made: set[str] = set()
    try:
        if "iso" not in trees:
            stub = b"This disc contains a UDF file system.\n"
            iso.add_fp(io.BytesIO(stub), len(stub), iso_path="/README.TXT;1")
        for rel in sorted(files):
            parts = rel.strip("/").split("/")
            for depth in range(1, len(parts)):
                d = "/".join(parts[:depth])
                if d not in made:
                    made.add(d)
                    iso.add_directory(**names(d, False))
            data = files[rel]
            iso.add_fp(io.BytesIO(data), len(data), **names(rel, True))
        if efi_boot is not None:
            iso.add_fp(io.BytesIO(efi_boot), len(efi_boot), iso_path="/EFISYS.BIN;1")
            iso.add_eltorito("/EFISYS.BIN;1", bootcatfile="/BOOT.CAT;1", efi=True, media_name="noemul")
        iso.write(str(path))
    finally:
        iso.close()
    return path


def build_standin_iso(
    path: Path,
    *,
    label: str | None = None,
    arch: str = "x86_64",
    editions: list[str] | None = None,
    server: bool = False,
    wim_name: str = "install.wim",
    wim: bytes | None = None,
    trees: Sequence[str] = ("udf", "joliet", "iso"),
    boot_prompt: bool | str = False,
    languages: Sequence[str] = ("en-US",),
) -> Path:
    """A small stand-in install ISO: sources/<wim_name> with a real header and image list; with `boot_prompt`,
    bootable by UEFI into the stand-in of Windows' boot program (tests/standin/bootcd.c; `boot_prompt="screen"`:
    the variant whose prompt never reaches the serial console)."""
    if editions is None:
        editions = SERVER_EDITIONS if server else (ARM64_EDITIONS if arch == "aarch64" else X64_EDITIONS)
    if label is None:
        label = (SERVER_LABEL if server else LABELS[arch]).replace("EN-US", (languages or ["en-US"])[0].upper())
    if wim is None:
        xml = image_xml(editions, arch, languages=languages)
        wim = wim_bytes(xml, image_count=len(editions), esd=wim_name.endswith(".esd"))
    files = {
        f"sources/{wim_name}": wim,
        "setup.exe": b"MZ stand-in setup.exe\n",
        "bootmgr": b"stand-in bootmgr\n",
    }
    efi = None
    if boot_prompt:
        from tests.standin_efi import boot_image

        efi = boot_image(arch, "" if boot_prompt is True else str(boot_prompt))
    return build_iso(Path(path), label=label, files=files, trees=trees, efi_boot=efi)


#: Microsoft's evaluation media names (Windows Server 2025, 26100.1742): Core first, so Lima's index 1 is wrong.
SERVER_EVAL_EDITIONS = [
    "Windows Server 2025 Standard Evaluation",
    "Windows Server 2025 Standard Evaluation (Desktop Experience)",
    "Windows Server 2025 Datacenter Evaluation",
    "Windows Server 2025 Datacenter Evaluation (Desktop Experience)",
]
SERVER_EVAL_LABEL = "SSS_X64FREV_EN-US_DV9"


#: A driver folder of virtio-win's layout (virtio-win-pkg-scripts): INF, catalog, driver, debug symbols.
VIRTIO_WIN_FILES = ("{name}.inf", "{name}.cat", "{name}.sys", "{name}.pdb")


def virtio_win_file(driver: str, version: str, arch: str, name: str) -> bytes:
    """The stand-in content of one driver file: names its driver, version and arch, so a copy can be told apart."""
    return f"; stand-in {driver} {version} {arch} {name}\r\n".encode()


def build_virtio_win_iso(path: Path) -> Path:
    """A stand-in virtio-win ISO laid out as the real one (`<driver>/<version>/<arch>/<files>`), no real drivers;
    more drivers than limapy copies, so a copy of the wrong ones shows."""
    files = {}
    for driver in ("viostor", "NetKVM", "vioscsi", "Balloon"):
        for version, arch in (("w11", "amd64"), ("w11", "ARM64"), ("2k25", "amd64")):
            for pattern in VIRTIO_WIN_FILES:
                name = pattern.format(name=driver.lower())
                files[f"{driver}/{version}/{arch}/{name}"] = virtio_win_file(driver, version, arch, name)
    return build_iso(Path(path), label="virtio-win-0.1.271", files=files, trees=("joliet", "iso"))


# --------------------------------------------------------------------------- real-sized install.wim

BIG_WIM = (4 << 30) + (300 << 20)  # over 4 GiB, as the Server 2025 ISO's install.wim


class _SparseWim(io.RawIOBase):
    """A read-only WIM of `size` bytes: the header at 0 and the XML image list at the end, zeros in between
    (read without holding them in memory)."""

    def __init__(self, size: int, xml: str) -> None:
        super().__init__()
        blob = b"\xff\xfe" + xml.encode("utf-16-le")
        header = bytearray(wim_bytes(xml, filler=0)[:208])
        self.xml_at = size - len(blob)
        struct.pack_into("<QQ", header, 0x50, self.xml_at, len(blob))
        self.chunks = {0: bytes(header), self.xml_at: blob}
        self.size, self.pos = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else max(0, min(n, self.size - self.pos))
        start, self.pos = self.pos, self.pos + n
        if not any(off < start + n and start < off + len(d) for off, d in self.chunks.items()):
            return bytes(n)
        buf = bytearray(n)
        for off, data in self.chunks.items():
            lo, hi = max(off, start), min(off + len(data), start + n)
            if lo < hi:
                buf[lo - start : hi - start] = data[lo - off : hi - off]
        return bytes(buf)


class _HoleWriter(io.RawIOBase):
    """Writes through to `f`, but seeks over blocks of zeros: the ISO file stays sparse."""

    def __init__(self, f: io.BufferedWriter) -> None:
        super().__init__()
        self.f = f

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if data.count(0) == len(data):
            self.f.seek(len(data), 1)
        else:
            self.f.write(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()


def build_big_standin_iso(
    path: Path, *, editions: Sequence[str], arch: str = "x86_64", label: str, udf_only: bool = False,
    size: int = BIG_WIM,
) -> Path:
    """An install ISO whose sources/install.wim is `size` bytes (over 4 GiB: multi-extent in ISO 9660, several
    allocation descriptors in UDF), written sparse (a few hundred KiB on disk). `udf_only`: the file is in the UDF
    tree only, as on Microsoft's media whose ISO 9660 side is a stub."""
    import pycdlib

    wim = _SparseWim(size, image_xml(editions, arch))
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=None if udf_only else 3, udf="2.60", vol_ident=label[:16])
    iso.pvd.volume_identifier = label.encode("ascii").ljust(32, b" ")
    try:
        if udf_only:
            stub = b"This disc contains a UDF file system.\n"
            iso.add_fp(io.BytesIO(stub), len(stub), iso_path="/README.TXT;1")
            iso.add_directory(udf_path="/sources")
            iso.add_fp(wim, size, udf_path="/sources/install.wim")
        else:
            iso.add_directory(iso_path="/SOURCES", joliet_path="/sources", udf_path="/sources")
            iso.add_fp(wim, size, iso_path="/SOURCES/INSTALL.WIM;1", joliet_path="/sources/install.wim",
                       udf_path="/sources/install.wim")  # fmt: skip
        with open(path, "wb") as f:
            iso.write_fp(_HoleWriter(f))
            f.truncate()
    finally:
        iso.close()
    return Path(path)
