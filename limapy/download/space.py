"""Room on the file system that holds the cache: a download that cannot fit is refused up front when its size
is known, and one that fills the file system midway (its size unknown, or something else wrote meanwhile) is
removed, with one line naming the file system either way. Nothing is left behind that keeps it full."""

from __future__ import annotations

import os
from pathlib import Path

from limapy.base import fsutil
from limapy.download.connect import DownloadError

HINT = "free some space there, or set LIMAPY_CACHE_DIR to a directory on a larger file system"
#: Kept free beyond the download itself (the blob's records, the overlay created next, anything else running).
MARGIN = 16 << 20


def _where(cache: Path) -> str:
    try:
        return f"the file system at {fsutil.mount_point(cache)} (which holds the cache, {cache})"
    except OSError:
        return f"the file system holding the cache ({cache})"


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check_room(what: str, cache: Path, need: int) -> None:
    """Refuse, before a byte is written, a download of `need` more bytes that would not fit."""
    from limapy.base.units import format_size

    try:
        have = free(cache)
    except OSError:
        return
    if need + MARGIN > have:
        raise DownloadError(f"cannot download {what}: {_where(cache)} has {format_size(have)} free, and it needs "
                            f"{format_size(need)}", hint=HINT)  # fmt: skip


def full(what: str, cache: Path) -> DownloadError:
    """The file system filled up while `what` was written (what was written of it is removed by the caller)."""
    return DownloadError(f"cannot download {what}: {_where(cache)} is full (no space left on device); what was "
                         "downloaded of it is removed", hint=HINT)  # fmt: skip
