"""Write small ISO 9660 images (seed and answer media) from an in-memory {path: bytes} map.

pycdlib is pure Python, so no mkisofs/xorriso is needed on the host. The output is deterministic:
every timestamp pycdlib would take from the clock is pinned to FIXED_EPOCH (in UTC), and files and
directories are added in sorted order, so the same input always gives the same bytes (golden tests,
caching, and "did the seed change?" comparisons all rely on it).

Names: the long name of every path is kept in Joliet and/or Rock Ridge; the plain ISO 9660 name is a
mangled 8.3 upper-case form that nobody is meant to read (Windows Setup needs Joliet, cloud-init reads
either extension).
"""

from __future__ import annotations

import io
import os
import re
import threading
import time as _time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from limapy.base.errors import LimapyError
from limapy.base.fsutil import atomic_write


class _Names(TypedDict, total=False):
    """How pycdlib names an entry: ISO 9660's name, Joliet's, Rock Ridge's, and the POSIX mode."""

    iso_path: str
    joliet_path: str
    rr_name: str
    file_mode: int

#: 2000-01-01T00:00:00Z: the date every file and volume descriptor carries.
FIXED_EPOCH = 946684800.0

DEFAULT_FILE_MODE = 0o100444
DEFAULT_DIR_MODE = 0o040555
_MAX_LABEL = 32
_MAX_JOLIET_NAME = 64

_clock_lock = threading.Lock()


class _FixedClock:
    """Stands in for the `time` module inside pycdlib while an image is built."""

    def time(self) -> float:
        return FIXED_EPOCH

    def localtime(self, secs: float | None = None) -> _time.struct_time:
        return _time.gmtime(FIXED_EPOCH if secs is None else secs)

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


@contextmanager
def _pinned_clock() -> Iterator[None]:
    import pycdlib.dates
    import pycdlib.headervd
    import pycdlib.pycdlib
    import pycdlib.utils

    modules: list[Any] = [pycdlib.pycdlib, pycdlib.headervd, pycdlib.dates, pycdlib.utils]
    with _clock_lock:
        saved = [getattr(m, "time", None) for m in modules]
        clock = _FixedClock()
        for m, old in zip(modules, saved, strict=True):
            if old is not None:
                m.time = clock
        try:
            yield
        finally:
            for m, old in zip(modules, saved, strict=True):
                if old is not None:
                    m.time = old


_BAD_ISO_CHARS = re.compile(r"[^A-Z0-9_]")


def _iso_component(name: str, used: set[str], *, is_dir: bool) -> str:
    """An 8.3 (file) or 8 (directory) d-character name, unique within its directory."""
    upper = name.upper()
    if is_dir:
        stem, ext = upper, ""
    else:
        stem, dot, ext = upper.rpartition(".")
        if not dot:
            stem, ext = upper, ""
    stem = _BAD_ISO_CHARS.sub("_", stem)[:8] or "_"
    ext = _BAD_ISO_CHARS.sub("_", ext)[:3]
    counter = 0
    while True:
        candidate = stem if counter == 0 else f"{stem[: 8 - len(str(counter)) - 1]}_{counter}"
        full = candidate if is_dir else f"{candidate}.{ext}"
        if full not in used:
            used.add(full)
            return full
        counter += 1


def _check_path(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    if not path or any(p in ("", ".", "..") for p in parts):
        raise LimapyError(f"invalid path for an ISO image: {path!r}")
    for p in parts:
        if len(p) > _MAX_JOLIET_NAME:
            raise LimapyError(f"ISO path component longer than {_MAX_JOLIET_NAME} characters: {p!r}")
    return parts


def write_iso(
    files: Mapping[str, bytes],
    label: str,
    *,
    joliet: bool = True,
    rock_ridge: bool = False,
    modes: Mapping[str, int] | None = None,
) -> bytes:
    """Build an ISO image holding `files` (POSIX-style relative paths) and return its bytes.

    `modes` optionally gives Rock Ridge permission bits per path (e.g. 0o755 for scripts); other files
    get 0o444, directories 0o555. Without Joliet or Rock Ridge long names are lost, so one is required.
    """
    if not joliet and not rock_ridge:
        raise LimapyError("an ISO without Joliet or Rock Ridge would lose every long file name")
    if not label or len(label) > _MAX_LABEL:
        raise LimapyError(f"ISO volume label must be 1 to {_MAX_LABEL} characters: {label!r}")
    import pycdlib

    modes = modes or {}
    with _pinned_clock():
        iso = pycdlib.PyCdlib()
        iso.new(
            interchange_level=3,
            joliet=3 if joliet else None,
            rock_ridge="1.09" if rock_ridge else None,
            vol_ident=label,
        )
        iso_names: dict[str, str] = {"": ""}  # long dir path -> ISO dir path
        used: dict[str, set[str]] = {"": set()}
        for path in sorted(files):
            parts = _check_path(path)
            parent = ""
            for depth, part in enumerate(parts):
                long_path = "/".join(parts[: depth + 1])
                is_dir = depth < len(parts) - 1
                if long_path in iso_names:
                    if not is_dir:
                        raise LimapyError(f"duplicate path in ISO image: {path!r}")
                    parent = long_path
                    continue
                name = _iso_component(part, used[parent], is_dir=is_dir)
                iso_path = f"{iso_names[parent]}/{name}"
                kwargs: _Names = {"iso_path": iso_path if is_dir else f"{iso_path};1"}
                if joliet:
                    kwargs["joliet_path"] = "/" + long_path
                if rock_ridge:
                    kwargs["rr_name"] = part
                if is_dir:
                    if rock_ridge:
                        kwargs["file_mode"] = DEFAULT_DIR_MODE
                    iso.add_directory(**kwargs)
                    iso_names[long_path] = iso_path
                    used[long_path] = set()
                    parent = long_path
                else:
                    data = files[path]
                    if rock_ridge:
                        mode = modes.get(path)
                        kwargs["file_mode"] = 0o100000 | (mode & 0o7777) if mode else DEFAULT_FILE_MODE
                    iso.add_fp(io.BytesIO(data), len(data), **kwargs)
                    iso_names[long_path] = iso_path
        out = io.BytesIO()
        iso.write_fp(out)
        iso.close()
    return out.getvalue()


def write_iso_file(
    path: str | os.PathLike[str],
    files: Mapping[str, bytes],
    label: str,
    *,
    joliet: bool = True,
    rock_ridge: bool = False,
    modes: Mapping[str, int] | None = None,
    file_mode: int = 0o600,
) -> None:
    """write_iso to `path` atomically: a temporary file in the same directory, then rename."""
    data = write_iso(files, label, joliet=joliet, rock_ridge=rock_ridge, modes=modes)
    atomic_write(Path(path), data, file_mode)


