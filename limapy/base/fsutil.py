"""Writing files so that a reader (or a crash) never sees half of them, and never through a link: a file
written in place is opened without following a symbolic link, and must have no other name (a hard link)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection
from pathlib import Path

from limapy.base.errors import InstanceError

LINK_HINT = "limapy does not follow links in an instance directory: remove the link (or re-create the instance)"
HARDLINK_HINT = ("limapy writes these files in place and does not write through a hard link: remove that name "
                 "(the file's other names keep it)")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to a temp file beside `path`, fsync, rename: readers see old or new, never half."""
    path = Path(path)
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _hardlink_message(path: Path, nlink: int) -> str:
    return f"{path} has {nlink} names (a hard link); limapy does not write to it in place"


def check_entries(directory: Path, links_allowed: Collection[str], hardlinks_allowed: Collection[str], *,
                  prefix: str = "") -> None:
    """Refuse a symbolic link in `directory` not named in `links_allowed`, and a regular file with other names
    not in `hardlinks_allowed` (one line naming it, `prefix` first)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_symlink():
            if entry.name not in links_allowed:
                raise InstanceError(f"{prefix}{entry.path} is a symbolic link", hint=LINK_HINT)
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and entry.name not in hardlinks_allowed:
            raise InstanceError(prefix + _hardlink_message(Path(entry.path), st.st_nlink), hint=HARDLINK_HINT)


def check_in_place(fd: int, path: Path) -> None:
    """The file open on `fd`, about to be written in place, is a regular file of this user with no other name."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise InstanceError(f"{path} is not a regular file; limapy does not write to it", hint=LINK_HINT)
    if st.st_nlink != 1:
        raise InstanceError(_hardlink_message(path, st.st_nlink), hint=HARDLINK_HINT)
    if st.st_uid != os.geteuid():
        raise InstanceError(f"{path} belongs to uid {st.st_uid}, not to you; limapy does not write to it",
                            hint="remove that file (limapy did not make it)")  # fmt: skip


def open_private(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that refuses to follow a symbolic link (O_NOFOLLOW), mode `mode`. A file opened for writing must
    be this user's regular file with no other name (`check_in_place`), and is truncated (O_TRUNC) only once
    that is checked: a hard link planted under its name is refused, never emptied."""
    writing = flags & (os.O_WRONLY | os.O_RDWR)
    try:
        fd = os.open(path, (flags & ~os.O_TRUNC if writing else flags) | os.O_NOFOLLOW, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InstanceError(f"{path} is a symbolic link; limapy does not follow it", hint=LINK_HINT) from None
        raise
    if writing:
        try:
            check_in_place(fd, path)
            if flags & os.O_TRUNC:
                os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
    return fd


def mount_point(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _free(path: Path) -> int:
    try:
        st = os.statvfs(mount_point(path))
    except OSError:
        return 1 << 62
    return st.f_bavail * st.f_frsize


def no_space(e: OSError, candidates: Collection[Path] = ()) -> InstanceError:
    """ENOSPC or EDQUOT as one line naming the file system: the one of the file named, else the fullest of
    `candidates` (where limapy writes: its home, the cache, the temp dir)."""
    named = [Path(str(f)) for f in (e.filename, e.filename2) if f]
    where = named[0] if named else min(candidates or [Path.cwd()], key=_free)
    mount = mount_point(where)
    what = "disk quota exceeded" if e.errno == errno.EDQUOT else "no space left"
    detail = f" (writing {where})" if named else ""
    return InstanceError(
        f"{what} on the file system mounted at {mount}{detail}",
        hint="free some space there and retry: `limapy prune` removes unused downloads, and `limapy delete` "
        "works on a full disk",
    )
