"""The virtio-win drivers Windows Setup needs, read from the virtio-win ISO for the answer ISO's `$WinPEDriver$`.

Windows Setup loads the drivers it finds in a `$WinPEDriver$` folder at the root of a drive into Windows PE and
installs them into the Windows it installs (Microsoft, "Limitations of $WinPeDriver$ when used in conjunction
with other driver injection methods", KB 2686316: "a feature of Setup.exe"; dockur/windows puts virtio-win's
drivers there, windows-guests.md §1.8). Setup finds the folder by looking, not by a drive letter, so the answer
ISO carries the drivers the guest's disk and NIC need, copied from the virtio-win ISO:

- aarch64: NetKVM (the disk is NVMe, inbox);
- x86_64 with virtio-win: viostor and NetKVM.

virtio-win's layout is `<driver>/<Windows version>/<arch>/<files>` (`NetKVM/w11/ARM64/netkvm.inf`,
`viostor/2k25/amd64/viostor.sys`; virtio-win-pkg-scripts, the 0.1.271 ISO the templates pin). Only the chosen
version and arch are copied, debug symbols (.pdb) left out: a few hundred KiB per driver. Only the named drivers:
loading every virtio-win driver in WinPE on arm64 has stopped Setup (0xd000a000; windows-guests.md §6.1).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from limapy.base.errors import LimapyError

WINPE_DRIVER_DIR = "$WinPEDriver$"
#: Files no driver needs at install time.
_SKIP_SUFFIXES = (".pdb",)
MAX_BYTES = 64 << 20
_ARCH_DIR = {"x86_64": "amd64", "aarch64": "ARM64"}


def drivers_for(*, virtio_disk: bool) -> tuple[str, ...]:
    """The virtio-win drivers a Windows guest's devices need: NetKVM always, viostor for a virtio disk."""
    return ("viostor", "NetKVM") if virtio_disk else ("NetKVM",)


def version_dir(is_server: bool) -> str:
    """virtio-win's folder for the Windows version: `2k25` for Server 2025, `w11` for Windows 11."""
    return "2k25" if is_server else "w11"


def arch_dir(arch: str) -> str:
    return _ARCH_DIR[arch]


def _name(kind: str, rec: Any) -> str:
    if kind == "udf":
        fid = rec.file_ident
        return "" if fid is None else bytes(fid.fi).decode(fid.encoding, "replace")
    if kind == "rr":
        return bytes(rec.rock_ridge.name()).decode("utf-8", "replace") if rec.rock_ridge else ""
    raw = bytes(rec.file_identifier())
    if kind == "joliet":
        return raw.decode("utf-16-be", "replace")
    return raw.decode("ascii", "replace").split(";", 1)[0].rstrip(".")


def _children(iso: Any, kind: str, path: str) -> dict[str, tuple[str, Any]]:
    """A directory's entries, by lower-case name: (name as stored, record)."""
    key = {"udf": "udf_path", "joliet": "joliet_path", "rr": "rr_path", "iso": "iso_path"}[kind]
    out: dict[str, tuple[str, Any]] = {}
    for rec in iso.list_children(**{key: path}):
        if rec is None:
            continue
        name = _name(kind, rec)
        if name in ("", ".", "..", "/", "\x00", "\x01") or (kind != "udf" and (rec.is_dot() or rec.is_dotdot())):
            continue
        out.setdefault(name.lower(), (name, rec))
    return out


def _kinds(iso: Any) -> list[str]:
    kinds = []
    if iso.has_udf():
        kinds.append("udf")
    if iso.has_joliet():
        kinds.append("joliet")
    if iso.has_rock_ridge():
        kinds.append("rr")
    return [*kinds, "iso"]


def _read(iso: Any, kind: str, path: str) -> bytes:
    key = {"udf": "udf_path", "joliet": "joliet_path", "rr": "rr_path", "iso": "iso_path"}[kind]
    if kind == "iso":
        path += ";1"
    buf = io.BytesIO()
    iso.get_file_from_iso_fp(buf, **{key: path})
    return buf.getvalue()


def _driver_dir(iso: Any, kind: str, parts: tuple[str, ...]) -> tuple[str, dict[str, tuple[str, Any]]] | None:
    current = ""
    for want in parts:
        entry = _children(iso, kind, current or "/").get(want.lower())
        if entry is None or not entry[1].is_dir():
            return None
        current = f"{current}/{entry[0]}"
    return current, _children(iso, kind, current)


def read_drivers(iso_path: Path, drivers: tuple[str, ...], *, version: str, arch: str) -> dict[str, bytes]:
    """{"$WinPEDriver$/<driver>/<file>": bytes} for each driver's folder for `version` and `arch` on the ISO."""
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(iso_path))
    except (PyCdlibException, OSError, ValueError) as exc:
        raise LimapyError(f"the virtio-win ISO {iso_path} cannot be read: {exc}") from None
    try:
        out: dict[str, bytes] = {}
        total = 0
        for driver in drivers:
            parts = (driver, version, arch_dir(arch))
            found = None
            for kind in _kinds(iso):
                try:
                    found = _driver_dir(iso, kind, parts)
                except (PyCdlibException, OSError):
                    found = None
                if found is not None:
                    break
            if found is None:
                raise LimapyError(
                    f"the virtio-win ISO {iso_path} has no {'/'.join(parts)} folder",
                    hint="use a virtio-win ISO with drivers for this Windows version and arch (0.1.271 or later)",
                )
            folder, entries = found
            files = sorted((name, rec) for name, rec in entries.values() if not rec.is_dir())
            if not any(name.lower().endswith(".inf") for name, _ in files):
                raise LimapyError(f"the virtio-win ISO {iso_path}: {folder} holds no driver (.inf)")
            for name, _rec in files:
                if name.lower().endswith(_SKIP_SUFFIXES):
                    continue
                data = _read(iso, kind, f"{folder}/{name}")
                total += len(data)
                if total > MAX_BYTES:
                    raise LimapyError(f"the virtio-win drivers on {iso_path} are over {MAX_BYTES >> 20} MiB")
                out[f"{WINPE_DRIVER_DIR}/{driver}/{name}"] = data
        return out
    finally:
        iso.close()
