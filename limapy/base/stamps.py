"""What a cached answer about files is keyed by: each file's size, mtime, inode and ctime (or its absence), the
host facts limapy's fill reads, limapy's version. Used by instance summaries and `validate`'s memo."""

from __future__ import annotations

import os
from pathlib import Path

from limapy import __version__

Stamp = list[int] | None


def stamp(path: Path | str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]  # ctime: an mtime put back is still seen


def host() -> list[object]:
    """limapy's version, the host user's uid, `$HOME` and CPU count (the fill reads the last three: the guest
    user, `{{.Home}}`, Lima's default cpus)."""
    return [__version__, os.getuid(), os.environ.get("HOME", ""), _cpus()]


_CPUS: list[int] = []


def _cpus() -> int:
    if not _CPUS:  # asked once per process: `list` keys a summary per instance
        _CPUS.append(os.cpu_count() or 1)
    return _CPUS[0]


def record(paths: list[Path]) -> list[list[object]]:
    """[[path, stamp], ...] for `paths` (deduplicated, sorted)."""
    return [[p, stamp(p)] for p in sorted({str(p) for p in paths})]


def unchanged(entries: object) -> bool:
    """True when `entries` (as `record` made them, read back from JSON) all still hold."""
    if not isinstance(entries, list):
        return False
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            return False
        if stamp(entry[0]) != entry[1]:
            return False
    return True
