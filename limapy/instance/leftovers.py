"""What a killed command leaves in $LIMAPY_HOME, found and removed by a later one (`prune`; `list` warns).

`store.creating` makes a create's or a clone's instance in a hidden temp dir, `.NAME.tmp-XXXX`, and holds an
flock on that dir until it is installed or removed; `delete` renames the instance to `.NAME.deleting` before
removing it. A SIGKILL (or a crash, or a full disk at the wrong moment) leaves such a dir behind, possibly
as big as a full disk copy. One that no process holds is a leftover; one held is being written right now.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path

from limapy.base import dirs

_LEFTOVER_RE = re.compile(r"\.(?P<name>[A-Za-z0-9._-]+)\.(?:tmp-[A-Za-z0-9_]+|deleting)")


def _held(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return True  # not ours to judge (gone, or not a directory any more)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def find() -> list[Path]:
    """The leftover dirs under $LIMAPY_HOME, sorted; none while their command still runs."""
    try:
        entries = [e for e in os.scandir(dirs.limapy_home()) if e.name.startswith(".")]
    except FileNotFoundError:
        return []
    found = [e for e in entries if _LEFTOVER_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    return sorted(Path(e.path) for e in found if not _held(e.path))


def size(path: Path) -> int:
    """The bytes `path` holds on disk (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
    return total


def remove(path: Path) -> int:
    """Remove the leftover `path` (re-checked: not while a command holds it); the bytes it held."""
    import shutil

    if _held(str(path)):
        return 0
    freed = size(path)
    shutil.rmtree(path, ignore_errors=True)
    return freed
