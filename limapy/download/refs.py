"""Who stands on the download cache: the homes whose instances may use its blobs, and the lock that keeps
`prune` from removing a base between a `create`'s fetch and its overlay.

The cache is the user's and shared by all of the user's `$LIMAPY_HOME`s, and an instance's disk names its base
by path. So `prune` must see every instance dir of every home, not only its own: each home that makes an
instance (`create`, `clone`, `factory-reset`) or starts one registers itself here (`<cache>/homes/<sha256
of its path>` holding the path), and `prune` looks at every instance dir of every registered home that still exists
(what is used is read from each dir when `prune` runs: a renamed, cloned or deleted instance needs no
bookkeeping). A create holds the lock (`<cache>/.prune.lock`) shared from before its downloads until its
instance dir is in place; `prune` holds it exclusively, so it waits for them (and they for it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from limapy.base import dirs
from limapy.base.errors import LimapyError
from limapy.download import cache

HOMES = "homes"
LOCK = ".prune.lock"


def _homes_dir() -> Path:
    return dirs.cache_dir() / HOMES


def register(home: Path) -> None:
    """Remember that `home` has (or is about to have) instances standing on this cache."""
    home = Path(home).absolute()
    entry = _homes_dir() / hashlib.sha256(str(home).encode()).hexdigest()
    if cache.read(entry) == str(home):
        return
    cache.private_dir(_homes_dir())
    cache.write(entry, str(home))


def register_quietly(home: Path) -> None:
    """register, for commands whose work does not depend on it (a read-only or foreign cache is not their
    business; the download that needs the cache says so)."""
    with contextlib.suppress(OSError, LimapyError):
        register(home)


def homes() -> dict[Path, Path]:
    """{home: its registry entry} for every registered home."""
    d = _homes_dir()
    out: dict[Path, Path] = {}
    try:
        entries = sorted(d.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return out
    for entry in entries:
        text = cache.read(entry)
        if text and os.path.isabs(text):
            out[Path(text)] = entry
    return out


def forget(entry: Path) -> None:
    cache.remove(entry)


@contextlib.contextmanager
def _locked(mode: int, say: Callable[[str], None] | None = None) -> Iterator[None]:
    cache.private_dir(dirs.cache_dir())
    fd = os.open(dirs.cache_dir() / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, cache.FILE_MODE)
    try:
        os.fchmod(fd, cache.FILE_MODE)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if say is not None:
                say("waiting for other limapy commands using the download cache (a create?) to finish")
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def using(home: Path) -> contextlib.AbstractContextManager[None]:
    """Held by a command from before it fetches a base until the instance standing on it exists (`home`
    registered first): `prune` cannot remove the base in between."""
    register(home)
    return _locked(fcntl.LOCK_SH)


def pruning(say: Callable[[str], None] | None = None) -> contextlib.AbstractContextManager[None]:
    return _locked(fcntl.LOCK_EX, say)
