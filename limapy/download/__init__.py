"""fetch(location, digest) -> a local path: images, kernels, ISOs, virtio-win and templates, by URL or path.

Remote files go through the content-addressed cache (limapy.download.cache): a verified download becomes an
immutable blob named by its sha256, so a base image an instance uses never changes underneath it, and a newer
version of a digest-less "latest" URL lands beside the old one. Downloads resume after an interruption and
are bounded in size and time (limapy.download.transfer). A decompressed copy (`.gz .xz .bz2 .zst`) of a
download sits beside its blob as `decompressed` (keyed by the compressed bytes); a local compressed file's is
a blob of its own, named by the sha256 of the output. Local files are used in place, and read in full only
to check a digest the template pins: that digest is remembered by their stat (size, mtime, inode, ctime,
device), so a 5 GB ISO is hashed once per version of the file, not on every create or start.
`known_identity(path)` is what a base is recorded with (never reading it); `identity(path)` hashes when needed.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import lzma
import os
import re
import stat
import tempfile
import urllib.error
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limapy.base import netpolicy, proc
from limapy.base.errors import LimapyError, NotFoundError, UsageError, shown
from limapy.download import cache, connect, space, transfer
from limapy.download.progress import ProgressReporter as ProgressReporter

Progress = Callable[[int, int | None], None]
Say = Callable[[str], None]
COMPRESSED = (".gz", ".xz", ".bz2", ".zst")
_HEX = re.compile(r"[0-9a-f]{64}")
_LOWER_HEX = re.compile(r"[0-9a-f]+")


class DigestError(LimapyError):
    """A digest that is malformed or does not match the file."""


#: The digests limapy checks, and the length of their hex: go-digest's (Lima's) sha256, sha384 and sha512.
ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Digest:
    algo: str  # a key of ALGORITHMS
    hex: str

    def __str__(self) -> str:
        return f"{self.algo}:{self.hex}"


def split_digest(digest: str) -> Digest:
    """`sha256:<hex>` or `sha512:<hex>`, with go-digest's messages for the ways it can be wrong."""
    algo, sep, value = digest.partition(":")
    if not sep or not algo or not value:
        raise DigestError(f"invalid checksum digest format: {digest!r}", hint="write it as sha256:<64 hex>")
    if algo not in ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm: {algo!r}", hint="sha256, sha384 and sha512 are supported")
    if len(value) != ALGORITHMS[algo] or not _LOWER_HEX.fullmatch(value):
        raise DigestError(
            f"invalid checksum digest length: {digest!r}", hint=f"expected {ALGORITHMS[algo]} lowercase hex"
        )
    return Digest(algo, value)


def parse_digest(digest: str) -> str:
    """The hex of a valid digest (see split_digest)."""
    return split_digest(digest).hex


def cache_root() -> Path:
    return cache.root()


def url_entry(url: str) -> Path:
    return cache.url_dir(url)


#: How long one download may take in all (from its first connect to its last byte, retries included) unless
#: `$LIMAPY_DOWNLOAD_TIMEOUT` says otherwise (`0`: no limit). Generous: a 6 GiB ISO at 1 MiB/s takes under 2
#: hours; a server that stalls is given up much earlier by the low-speed limit (transfer.LOW_SPEED).
DOWNLOAD_DEADLINE = 6 * 3600.0
ENV_DEADLINE = "LIMAPY_DOWNLOAD_TIMEOUT"


@dataclass(frozen=True)
class _Opts:
    progress: Progress | None
    max_bytes: int | None
    deadline: float | None
    deadline_hint: str
    say: Say | None
    guard: netpolicy.Guard | None


def _default_deadline() -> tuple[float | None, str]:
    from limapy.base.units import parse_duration

    value = os.environ.get(ENV_DEADLINE, "").strip()
    if not value:
        return DOWNLOAD_DEADLINE, f"; {ENV_DEADLINE} sets it"
    try:
        seconds = parse_duration(value)
    except LimapyError:
        raise LimapyError(f"{ENV_DEADLINE}={value!r}: not a duration",
                          hint="e.g. 90m, 12h, or 0 for no limit") from None  # fmt: skip
    return (seconds or None), f"; {ENV_DEADLINE} sets it"


def fetch(
    location: str,
    *,
    digest: str | None = None,
    decompress: bool = True,
    progress: Progress | None = None,
    max_bytes: int | None = None,
    deadline: float | None = None,
    say: Say | None = None,
    guard: netpolicy.Guard | None = None,
) -> Path:
    """A local, verified (and, for compressed names, decompressed) copy of `location`. `deadline`: seconds for
    the whole download (default: DOWNLOAD_DEADLINE or $LIMAPY_DOWNLOAD_TIMEOUT). `guard`: `location` was
    named by a template from the network, so it may reach public addresses only (limapy.base.netpolicy)."""
    want = split_digest(digest) if digest else None
    try:
        parsed = urllib.parse.urlparse(location)
    except ValueError as e:  # `https://[::1` (an unclosed IPv6 address)
        raise UsageError(f"{shown(location)}: not a valid URL ({e})") from None
    if parsed.scheme in ("http", "https"):
        if guard is not None:
            guard.check_url(location)  # before the cache is looked at: not even a HEAD goes there
        hint = ""
        if deadline is None:
            deadline, hint = _default_deadline()
        opts = _Opts(progress, max_bytes, deadline, hint, say, guard)
        try:
            return _fetch_remote(location, want, decompress, opts)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise space.full(location, cache.root()) from None
            raise
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:  # one letter could be a Windows drive
        raise LimapyError(
            f"{location}: unsupported URL scheme `{parsed.scheme}`", hint="use https://, file:// or a path"
        )
    else:
        path = Path(location).expanduser()
    try:
        return _fetch_local(path.absolute(), location, want, decompress, progress)
    except OSError as e:
        if e.errno == errno.ENOSPC:  # decompressing into the cache
            raise space.full(location, cache.root()) from None
        raise


# -- local files ------------------------------------------------------------------------------------------


def _regular(path: Path, location: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(f"{location}: no such file", hint="check the image location in the template") from None
    except OSError as e:
        raise LimapyError(f"{location}: cannot read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise LimapyError(f"{location}: is {kind}, not an image file")


def _fetch_local(path: Path, location: str, want: Digest | None, decompress: bool, progress: Progress | None) -> Path:
    _regular(path, location)
    needs_copy = decompress and _compression(path.name) is not None
    if want is None and not needs_copy:
        return path
    entry = cache.private_dir(cache.path_dir(path))
    with cache.locked(entry):
        cache.write(entry / "path", str(path))
        if want is not None:
            digest_file, stat_file = _path_files(entry, want.algo)
            actual = cache.remembered_digest(path, digest_file, stat_file, progress, want.algo)
            _compare(location, want, actual)
        if not needs_copy:
            return path
        return _decompressed_local(path, entry, progress)


# -- remote files -----------------------------------------------------------------------------------------


def _fetch_remote(url: str, want: Digest | None, decompress: bool, opts: _Opts) -> Path:
    entry = cache.private_dir(cache.url_dir(url))
    with cache.locked(entry):
        blob = _cached(url, entry, want, opts.guard)
        if blob is None:
            blob = _download(url, entry, want, opts)
        name = urllib.parse.urlparse(url).path
        if not (decompress and _compression(name)):
            return blob
        key = blob.parent.name if blob.parent.parent.name == "by-content-sha256" else cache.stat_key(blob)
        return _decompressed(blob, blob.parent, opts.progress, name=name, key=key)


def _cached(url: str, entry: Path, want: Digest | None, guard: netpolicy.Guard | None = None) -> Path | None:
    """The verified blob to use for `url`, or None to download. A blob whose bytes changed is moved aside."""
    if want is not None and want.algo != "sha256":
        # The store is named by sha256: the URL's last blob is used when it was verified with this digest.
        current = cache.read(entry / "content")
        if current and _HEX.fullmatch(current) and cache.own_file(cache.content_dir(current) / "data"):
            if cache.read(cache.content_dir(current) / want.algo) == want.hex and cache.blob_ok(current):
                return cache.content_dir(current) / "data"
        return None
    if want is not None:
        if cache.own_file(cache.content_dir(want.hex) / "data"):
            if cache.blob_ok(want.hex):
                return cache.content_dir(want.hex) / "data"
            cache.quarantine(cache.content_dir(want.hex) / "data")
        legacy = entry / "data"  # limapy < 0.2 kept downloads here; still used (instances point at them)
        if cache.own_file(legacy) and cache.read(entry / "sha256.digest") == f"sha256:{want.hex}":
            if cache.remembered_digest(legacy, entry / "sha256.digest", entry / "data.stat") == want.hex:
                return legacy
        return None
    current = cache.read(entry / "content")
    if current and _HEX.fullmatch(current) and cache.own_file(cache.content_dir(current) / "data"):
        if not cache.blob_ok(current):
            cache.quarantine(cache.content_dir(current) / "data")
            return None
        return cache.content_dir(current) / "data" if _unchanged(url, entry, guard) else None
    legacy = entry / "data"
    if cache.own_file(legacy) and cache.read(entry / "sha256.digest") and _unchanged(url, entry, guard):
        return legacy
    return None


def _unchanged(url: str, entry: Path, guard: netpolicy.Guard | None = None) -> bool:
    """No digest pins the URL: ask the server whether it changed (Last-Modified, ETag, length), within 10 s in
    all. Offline, or a server that says nothing, keeps the cached copy."""
    last, etag, length = cache.read(entry / "time"), cache.read(entry / "etag"), cache.read(entry / "length")
    if last is None and etag is None:
        return True
    headers = connect.head(url, timeout=10, guard=guard)
    if headers is None:
        return True
    if etag and headers.get("etag") and headers["etag"] != etag:
        return False
    if last and headers.get("last-modified") and headers["last-modified"] != last:
        return False
    return not (length and headers.get("content-length") and headers["content-length"] != length)


def _download(url: str, entry: Path, want: Digest | None, opts: _Opts) -> Path:
    partial, state = entry / "partial", entry / "partial.json"
    result = transfer.download(url, partial, state, max_bytes=opts.max_bytes, deadline=opts.deadline,
                               deadline_hint=opts.deadline_hint, progress=opts.progress, say=opts.say,
                               guard=opts.guard)  # fmt: skip
    if want is not None:  # over the whole file, also when most of it came in an earlier try
        actual = result.sha256 if want.algo == "sha256" else cache.file_digest(partial, want.algo)
        if actual != want.hex:
            cache.remove(partial)  # a wrong file: nothing of it may pass for the real one, nor be resumed
            cache.remove(state)
            _compare(url, want, actual)
    blob = cache.adopt(partial, result.sha256, url)
    if want is not None and want.algo != "sha256":
        cache.write(blob.parent / want.algo, want.hex)
    cache.remove(state)
    cache.write(entry / "url", url)
    for key in ("time", "etag", "type"):
        if result.headers.get(key):
            cache.write(entry / key, result.headers[key])
        else:
            cache.remove(entry / key)
    cache.write(entry / "length", str(result.size))
    cache.write(entry / "content", result.sha256)
    return blob


# -- decompression ----------------------------------------------------------------------------------------


def _compression(name: str) -> str | None:
    for ext in COMPRESSED:
        if name.endswith(ext):
            return ext
    return None


def _decompressed(src: Path, where: Path, progress: Progress | None, *, name: str, key: str) -> Path:
    """`where/decompressed`, made once per source (`key`), kept while its bytes are what was written."""
    out = where / "decompressed"
    digest_file, stat_file, source_file = (where / f"decompressed.{k}" for k in ("sha256", "stat", "source"))
    if cache.own_file(out) and cache.read(source_file) == key:
        recorded = cache.read(digest_file)
        if recorded and cache.remembered_digest(out, where / ".decompressed.check", stat_file) == recorded:
            return out
        cache.quarantine(out)
    if isinstance(progress, ProgressReporter):
        progress.stage = "decompressing"  # what its header line names
    digest = _decompress(src, out, progress, name=name)
    cache.write(digest_file, digest)
    cache.write(stat_file, cache.stat_key(out))
    cache.write(where / ".decompressed.check", f"sha256:{digest}")
    cache.write(source_file, key)
    return out


def _decompressed_local(src: Path, entry: Path, progress: Progress | None) -> Path:
    """A local compressed image decompressed into the content store (`by-content-sha256/<sha256 of the
    output>/data`), remembered by the source's stat: a newer release at the same path is a new blob beside the
    old one, so an instance made on the old one keeps its base (it is never rewritten in place)."""
    key = cache.stat_key(src)
    known = cache.read(entry / "decompressed.content")
    if known and _HEX.fullmatch(known) and cache.read(entry / "decompressed.from") == key and cache.blob_ok(known):
        return cache.content_dir(known) / "data"
    store = cache.private_dir(cache.root() / "by-content-sha256")
    tmp = store / f".decompressing-{os.getpid()}-{entry.name[:16]}"
    try:
        digest = _decompress(src, tmp, progress, name=src.name)
        blob = cache.adopt(tmp, digest, f"file://{src} (decompressed)")
    finally:
        cache.remove(tmp)
    cache.write(entry / "decompressed.content", digest)
    cache.write(entry / "decompressed.from", key)
    return blob


def _decompress(src: Path, out: Path, progress: Progress | None, *, name: str) -> str:
    ext = _compression(name)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        if ext == ".zst":
            os.close(fd)
            proc.run(["zstd", "-d", "-q", "-f", "-o", tmp, src])
            os.chmod(tmp, cache.FILE_MODE)
            digest = cache.sha256_file(tmp)
        else:
            openers: dict[str | None, Callable[[Path], Any]] = {
                ".gz": lambda p: gzip.open(p, "rb"),
                ".xz": lambda p: lzma.open(p, "rb"),
                ".bz2": lambda p: bz2.open(p, "rb"),
            }
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as dst, openers[ext](src) as f:
                os.fchmod(dst.fileno(), cache.FILE_MODE)
                done = 0
                try:
                    while chunk := f.read(cache.CHUNK):
                        dst.write(chunk)
                        h.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, None)
                except (OSError, EOFError, lzma.LZMAError) as e:
                    raise LimapyError(f"cannot decompress {name}: {e}") from None
                dst.flush()
                os.fsync(dst.fileno())
            digest = h.hexdigest()
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return digest


# -- what a base image is ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A file's content digest, and the stat it had when that digest was known to hold."""

    path: str
    digest: str  # "<algo>:<hex>" (sha256 unless asked otherwise); "" when not known (see known_identity)
    stat: str  # cache.stat_key: "size mtime_ns inode ctime_ns device"


def _path_files(entry: Path, algo: str) -> tuple[Path, Path]:
    """The digest and stat records of a local file's by-path entry for `algo`."""
    if algo == "sha256":
        return entry / "sha256.digest", entry / "stat"
    return entry / f"{algo}.digest", entry / f"{algo}.stat"


def _blob_hex(path: Path) -> str | None:
    """The sha256 a content-store blob is named by (`by-content-sha256/<hex>/data`), else None."""
    parent = path.parent
    if path.name == "data" and parent.parent.name == "by-content-sha256" and _HEX.fullmatch(parent.name):
        return parent.name
    return None


def identity(path: Path, progress: Progress | None = None, algo: str = "sha256") -> Identity:
    """The `algo` digest of a fetched or local file, from what the cache knows when the file's stat still
    matches, else by hashing it (and remembering that)."""
    path = Path(path)
    parent = path.parent
    if algo == "sha256":
        blob = _blob_hex(path)
        if blob is not None and cache.blob_ok(blob):
            return Identity(str(path), f"sha256:{blob}", cache.stat_key(path))
        if path.name == "decompressed" and cache.read(parent / "decompressed.sha256"):
            hexd = cache.remembered_digest(path, parent / ".decompressed.check", parent / "decompressed.stat",
                                           progress)  # fmt: skip
            return Identity(str(path), f"sha256:{hexd}", cache.stat_key(path))
    entry = cache.private_dir(cache.path_dir(path))
    with cache.locked(entry):
        cache.write(entry / "path", str(path))
        hexd = cache.remembered_digest(path, *_path_files(entry, algo), progress, algo)
    return Identity(str(path), f"{algo}:{hexd}", cache.stat_key(path))


def known_identity(path: Path) -> Identity:
    """What a base is recorded with at `create`, without reading its bytes: its stat, and the digest the cache
    holds for this very version of the file (a content-store blob's name; the digest a template pinned and
    `fetch` checked, by its stat), or "" for a local file no digest was ever checked for. So a digest-less
    local image costs the same whatever its size, and a pinned one is hashed once per version (by `fetch`)."""
    path = Path(path)
    key = cache.stat_key(path)
    blob = _blob_hex(path)
    if blob is not None and cache.blob_ok(blob):  # by stat (hashed again only when the blob's stat changed)
        return Identity(str(path), f"sha256:{blob}", cache.stat_key(path))
    if path.name == "decompressed" and cache.read(path.parent / "decompressed.sha256"):
        return identity(path)  # limapy < 0.2's layout: remembered by stat
    entry = cache.path_dir(path)
    for algo in ALGORITHMS:
        digest_file, stat_file = _path_files(entry, algo)
        known = cache.read(digest_file) if cache.read(stat_file) == key else None
        if not known:
            continue
        if known.startswith(f"{algo}:") and _LOWER_HEX.fullmatch(hexd := known.removeprefix(f"{algo}:")):
            return Identity(str(path), f"{algo}:{hexd}", key)
        if algo == "sha256" and _HEX.fullmatch(known):  # a bare hex: what older versions wrote
            return Identity(str(path), f"sha256:{known}", key)
    return Identity(str(path), "", key)


# -- helpers ----------------------------------------------------------------------------------------------


def _compare(location: str, want: Digest, actual: str) -> None:
    if want.hex != actual:
        raise DigestError(
            f"{location}: {want.algo} digest mismatch: expected {want}, got {want.algo}:{actual}",
            hint="the file changed upstream or is corrupt; fix the digest in the template or the file",
        )
