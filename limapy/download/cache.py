"""The download cache on disk: private directories, content-addressed blobs, and digests remembered by stat.

Layout under `<cache>/download/`:
- `by-content-sha256/<hex>/data`: a verified download, named by the sha256 of its bytes. Never rewritten:
  a new version of a URL is a new blob beside the old one, so an instance whose disk is an overlay on a blob
  keeps its base. `decompressed` (with `decompressed.sha256`) is the blob decompressed, equally immutable.
- `by-url-sha256/<sha256(url)>/`: what limapy knows of a URL: `url`, `content` (the hex of the last complete
  download), the server's validators (`etag`, `time` = Last-Modified, `length`, `type`), and while a download
  is under way or was interrupted, `partial` + `partial.json` (never a name a complete file has).
  `data` there is the layout of limapy < 0.2; such files are still used, never replaced.
- `by-path-sha256/<sha256(path)>/`: digests of local files (`path`, `sha256.digest`, `stat`; `sha512.digest`,
  `sha512.stat` for a file a template pins by sha512); for a compressed one, `decompressed.content` (the blob
  its output is, in by-content-sha256) and `decompressed.from` (the stat of the file it was made from).
  An older limapy kept that output here as `decompressed`, replaced when the file changed; still used, never
  written.
A blob verified against a sha512 digest (Debian and Alpine publish only those) records it as `sha512` beside
`data`, so the next fetch with that digest needs no second pass over the bytes.

Every directory is 0700 and every file 0600 whatever the umask. A digest is trusted only while the file's
(size, mtime, inode, ctime, device) match the ones recorded when it was computed; anything else is hashed
again (ctime because a file can be rewritten in place with its size and mtime put back; ctime cannot be).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from limapy.base import dirs

Progress = Callable[[int, int | None], None]
CHUNK = 1 << 20
DIR_MODE = 0o700
FILE_MODE = 0o600


def root() -> Path:
    return dirs.cache_dir() / "download"


def private_dir(path: Path) -> Path:
    """`path` inside the cache dir, it and its parents made 0700 (umask does not widen them) or checked: a real
    directory of the user's (cachedir.subdir; another user's tree or a link is refused with one line)."""
    from limapy.base import cachedir

    path = Path(path)
    parts = cachedir.within(path)
    if parts is None:
        raise cachedir.CacheRefused(f"{path} is not inside the cache directory {dirs.cache_dir()}")
    return cachedir.subdir(*parts)


def url_dir(url: str) -> Path:
    return root() / "by-url-sha256" / hashlib.sha256(url.encode()).hexdigest()


def content_dir(hexdigest: str) -> Path:
    return root() / "by-content-sha256" / hexdigest


def path_dir(path: Path) -> Path:
    return root() / "by-path-sha256" / hashlib.sha256(str(path).encode()).hexdigest()


def read(path: Path) -> str | None:
    """A small record of the cache, only when it is a regular file of the user's (never through a link)."""
    from limapy.base import cachedir

    raw = cachedir.read_own(path, 1 << 20)
    return raw.decode("utf-8", "replace").strip() if raw is not None else None


def own_file(path: Path) -> bool:
    """`path` is a regular file (not a link) of the user's: the only kind of cache file limapy trusts."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def write(path: Path, text: str) -> None:
    """Atomically, 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def stat_key(path: Path) -> str:
    """What a remembered digest is trusted by: size, mtime, inode, and ctime and device, which no one can set
    back (a file rewritten in place with its mtime restored has a new ctime)."""
    st = os.stat(path)
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino} {st.st_ctime_ns} {st.st_dev}"


class _Null:
    def write(self, b: bytes) -> int:
        return len(b)


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    return file_digest(path, "sha256", progress)


def file_digest(path: Path, algo: str, progress: Progress | None = None) -> str:
    """The hex digest of the file's bytes with `algo` (a hashlib name: sha256, sha384, sha512)."""
    h = hashlib.new(algo)
    total = os.stat(path).st_size
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return h.hexdigest()


def remembered_digest(
    path: Path, digest_file: Path, stat_file: Path, progress: Progress | None = None, algo: str = "sha256"
) -> str:
    """The file's hex digest: the recorded one while its stat is unchanged, else hashed now (and recorded)."""
    key = stat_key(path)
    known = read(digest_file)
    legacy = algo == "sha256" and ":" not in (known or "")  # a bare hex: what older versions wrote
    if known and (known.startswith(f"{algo}:") or legacy) and read(stat_file) == key:
        return known.removeprefix(f"{algo}:")
    actual = file_digest(path, algo, progress)
    write(digest_file, f"{algo}:{actual}")
    write(stat_file, stat_key(path))
    return actual


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on `directory` (its `.lock` file), so two commands fetch one URL once."""
    private_dir(directory)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def adopt(tmp: Path, hexdigest: str, source: str) -> Path:
    """Move a verified file into the content store under its digest; an existing blob stays as it is."""
    d = private_dir(content_dir(hexdigest))
    data = d / "data"
    with locked(d):
        if own_file(data) and blob_ok(hexdigest):
            remove(tmp)
            return data
        if os.path.lexists(data):
            quarantine(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, data)
        write(d / "stat", stat_key(data))
        if read(d / "url") is None:
            write(d / "url", source)
    return data


def blob_ok(hexdigest: str) -> bool:
    """The blob still holds the bytes its name promises (cheaply: by stat, re-hashed when the stat changed)."""
    d = content_dir(hexdigest)
    data = d / "data"
    if not own_file(data):
        return False
    try:
        key = stat_key(data)
    except FileNotFoundError:
        return False
    if read(d / "stat") == key:
        return True
    if sha256_file(data) != hexdigest:
        return False
    write(d / "stat", key)
    return True


def quarantine(path: Path) -> Path:
    """Move a file whose bytes changed out of the way (kept, not deleted: something may still use it)."""
    n = 0
    while True:
        target = path.with_name(f"{path.name}.changed-{n}")
        try:
            os.link(path, target, follow_symlinks=False)
        except FileExistsError:
            n += 1
            continue
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            os.replace(path, target)
            return target
        path.unlink()
        return target
