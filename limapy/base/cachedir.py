"""The per-user cache directory (`dirs.cache_dir()`): private whatever the umask, and believed only while it is
the user's own.

Everything limapy keeps there (downloads, the `validate` memo, schema verdicts, help and completion tables,
the `ssh -V` answer) goes through here: directories are made 0700 and files 0600 explicitly (a umask of 000
would make them 0777/0666), an existing directory must be a real directory owned by the user (not a link,
not another user's: root running with a shared `$HOME` must not write into a tree someone else can swap),
and a too-open one of the user's own is tightened to 0700. A memo file is believed only when it is a regular
file of the user's that nobody else may write, in such directories; otherwise it is ignored and computed
again. A cache root that is not the user's is refused with one line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from limapy.base import dirs
from limapy.base.errors import LimapyError

DIR_MODE = 0o700
FILE_MODE = 0o600
MAX_MEMO = 16 << 20


class CacheRefused(LimapyError):
    """The cache (or a directory in it) is not a directory of the user's own."""


def _refused(path: Path, why: str) -> CacheRefused:
    return CacheRefused(
        f"refusing to use the cache directory {path}: {why}",
        hint=f"limapy keeps its cache in a directory of your own; remove or move {path}, or set "
             f"{dirs.ENV_CACHE} to another directory",
    )  # fmt: skip


def _check(path: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise _refused(path, "it is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise _refused(path, "it is not a directory")
    if st.st_uid != os.geteuid():
        raise _refused(path, f"it belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, DIR_MODE)  # ours, made by an older limapy under a loose umask


def root(*, create: bool = True) -> Path:
    """The cache root, made 0700 when missing (its missing parents too, as XDG asks of `~/.cache`). It may be a
    link the user made (to another disk); what it names must be the user's directory."""
    r = dirs.cache_dir()
    try:
        st = os.stat(r)
    except FileNotFoundError:
        if not create:
            raise
        os.makedirs(r.parent, mode=DIR_MODE, exist_ok=True)
        try:
            os.mkdir(r, DIR_MODE)
        except FileExistsError:
            pass
        st = os.stat(r)
    _check(r, st)
    return r


def subdir(*parts: str, create: bool = True) -> Path:
    """`<cache>/<parts...>`: each a real directory of the user's (made 0700 when missing and `create`)."""
    cur = root(create=create)
    for part in parts:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(cur, DIR_MODE)
            except FileExistsError:
                pass
            st = os.lstat(cur)
        _check(cur, st)
    return cur


def within(path: Path) -> tuple[str, ...] | None:
    """The parts of `path` below the cache root, or None when it is not inside it."""
    try:
        return Path(path).relative_to(dirs.cache_dir()).parts
    except ValueError:
        return None


def read_own(path: Path, limit: int = MAX_MEMO) -> bytes | None:
    """The bytes of `path` when it is a regular file of the user's that no one else may write (never through a
    link, never blocking on a FIFO); None otherwise (missing included)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o022:
            return None
        if st.st_size > limit:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_memo(path: Path) -> bytes | None:
    """A memo's bytes (read_own) when its directories are the user's own too; None means: compute it again."""
    parts = within(path)
    if not parts:
        return None
    try:
        subdir(*parts[:-1], create=False)
    except (OSError, LimapyError):
        return None
    return read_own(path)


def write_memo(path: Path, data: bytes) -> bool:
    """Write a memo (0600, atomically, in 0700 directories of the user's); False when the cache cannot take it
    (read-only, full, not the user's): the answer is computed again next time."""
    from limapy.base.fsutil import atomic_write

    parts = within(path)
    if not parts:
        return False
    try:
        subdir(*parts[:-1])
        atomic_write(path, data, FILE_MODE)
    except (OSError, LimapyError):
        return False
    return True
