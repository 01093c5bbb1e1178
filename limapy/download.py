"""fetch(location, digest) -> a local path: images, kernels, ISOs and virtio-win, by URL or local path.

Remote files are cached like Lima (lima-reference.md §3) under
`<cache>/download/by-url-sha256/<sha256(url)>/{url,data,sha256.digest,time,type}`. Every write goes to a temp
file that is renamed into place only when complete and verified, so an interrupted or wrong download never
poisons the cache. A decompressed copy (`.gz .xz .bz2 .zst`) sits beside `data` as `decompressed`.
Local files are used in place; their verified sha256 is remembered by (path, size, mtime) so a 5 GB ISO is
hashed once, not on every start.
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import gzip
import hashlib
import http.client
import io
import lzma
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from limapy import dirs, proc
from limapy.errors import LimapyError, NotFoundError

Progress = Callable[[int, int | None], None]
CHUNK = 1 << 20
TIMEOUT = 60.0
COMPRESSED = (".gz", ".xz", ".bz2", ".zst")
_HEX = re.compile(r"^[0-9a-f]{64}$")


class DigestError(LimapyError):
    """A digest that is malformed or does not match the file."""


def parse_digest(digest: str) -> str:
    """`sha256:<hex>` -> hex, with go-digest's messages for the ways it can be wrong."""
    algo, sep, value = digest.partition(":")
    if not sep or not algo or not value:
        raise DigestError(f"invalid checksum digest format: {digest!r}", hint="write it as sha256:<64 hex>")
    if algo != "sha256":
        raise DigestError(f"unsupported digest algorithm: {algo!r}", hint="only sha256 is supported")
    if not _HEX.match(value):
        raise DigestError(f"invalid checksum digest length: {digest!r}", hint="expected 64 lowercase hex")
    return value


def cache_root() -> Path:
    return dirs.cache_dir() / "download"


def url_entry(url: str) -> Path:
    return cache_root() / "by-url-sha256" / hashlib.sha256(url.encode()).hexdigest()


def _path_entry(path: Path) -> Path:
    return cache_root() / "by-path-sha256" / hashlib.sha256(str(path).encode()).hexdigest()


def fetch(
    location: str, *, digest: str | None = None, decompress: bool = True, progress: Progress | None = None
) -> Path:
    """A local, verified (and, for compressed names, decompressed) copy of `location`."""
    want = parse_digest(digest) if digest else None
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme in ("http", "https"):
        return _fetch_remote(location, want, decompress, progress)
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:  # one letter could be a Windows drive
        raise LimapyError(
            f"{location}: unsupported URL scheme `{parsed.scheme}`", hint="use https://, file:// or a path"
        )
    else:
        path = Path(location).expanduser()
    return _fetch_local(path.absolute(), location, want, decompress, progress)


# -- local files ------------------------------------------------------------------------------------------


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _fetch_local(
    path: Path, location: str, want: str | None, decompress: bool, progress: Progress | None
) -> Path:
    if not path.is_file():
        raise NotFoundError(f"{location}: no such file", hint="check the image location in the template")
    needs_copy = decompress and _compression(path.name) is not None
    if want is None and not needs_copy:
        return path
    entry = _path_entry(path)
    entry.mkdir(parents=True, exist_ok=True)
    with _locked(entry):
        key = _stat_key(path)
        if want is not None:
            known = _read(entry / "sha256.digest") if _read(entry / "stat") == key else None
            actual = known or _sha256_file(path, progress)
            if not known:
                _write(entry / "path", str(path))
                _write(entry / "sha256.digest", f"sha256:{actual}")
                _write(entry / "stat", key)
            _compare(location, want, actual.removeprefix("sha256:"))
        if not needs_copy:
            return path
        out = entry / "decompressed"
        if not (out.is_file() and _read(entry / "decompressed.stat") == key):
            _decompress(path, out, progress)
            _write(entry / "decompressed.stat", key)
        return out


# -- remote files -----------------------------------------------------------------------------------------


def _fetch_remote(url: str, want: str | None, decompress: bool, progress: Progress | None) -> Path:
    entry = url_entry(url)
    entry.mkdir(parents=True, exist_ok=True)
    data = entry / "data"
    with _locked(entry):
        if not _cached_ok(url, entry, want):
            _download(url, entry, want, progress)
        name = urllib.parse.urlparse(url).path
        if not (decompress and _compression(name)):
            return data
        out = entry / "decompressed"
        stamp = _read(entry / "sha256.digest")
        if not (out.is_file() and _read(entry / "decompressed.digest") == stamp):
            _decompress(data, out, progress, name=name)
            _write(entry / "decompressed.digest", stamp or "")
        return out


def _cached_ok(url: str, entry: Path, want: str | None) -> bool:
    data = entry / "data"
    if not data.is_file():
        return False
    stored = (_read(entry / "sha256.digest") or "").removeprefix("sha256:")
    if not stored:  # crashed between rename and digest write: recompute
        stored = _sha256_file(data, None)
        _write(entry / "sha256.digest", f"sha256:{stored}")
    if want is not None:
        return stored == want
    # No digest to pin it: re-validate against the server's Last-Modified; offline keeps the cache.
    last = _read(entry / "time")
    if last is None:
        return True
    try:
        req = urllib.request.Request(url, method="HEAD")  # noqa: S310 (scheme checked by caller)
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            remote = resp.headers.get("Last-Modified")
    except (OSError, urllib.error.URLError):
        return True
    return remote is None or remote == last


def _download(url: str, entry: Path, want: str | None, progress: Progress | None) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix="data.", suffix=".tmp", dir=entry)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                resp_cm = urllib.request.urlopen(url, timeout=TIMEOUT)  # noqa: S310
                with resp_cm as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    headers = {
                        "time": resp.headers.get("Last-Modified"),
                        "type": resp.headers.get_content_type(),
                    }
                    done = _copy(resp, out, h, total, progress)
            except urllib.error.HTTPError as e:
                raise LimapyError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
            except urllib.error.URLError as e:
                raise LimapyError(f"cannot download {url}: {e.reason}") from None
            except (OSError, http.client.HTTPException) as e:
                raise LimapyError(f"cannot download {url}: {e}") from None
            if total is not None and done != total:
                raise LimapyError(f"cannot download {url}: connection closed after {done} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if want is not None:
            _compare(url, want, actual)
        os.replace(tmp, entry / "data")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _write(entry / "sha256.digest", f"sha256:{actual}")
    _write(entry / "url", url)
    for filename, value in headers.items():
        if value:
            _write(entry / filename, value)
        else:
            with contextlib.suppress(FileNotFoundError):
                (entry / filename).unlink()


class _Reader(Protocol):
    def read(self, n: int, /) -> bytes: ...


class _Writer(Protocol):
    def write(self, b: bytes, /) -> int: ...


def _copy(src: _Reader, dst: _Writer, h: Any, total: int | None, progress: Progress | None) -> int:
    done = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        h.update(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    return done


# -- helpers ----------------------------------------------------------------------------------------------


def _compare(location: str, want: str, actual: str) -> None:
    if want != actual:
        raise DigestError(
            f"{location}: sha256 digest mismatch: expected sha256:{want}, got sha256:{actual}",
            hint="the file changed upstream or is corrupt; fix the digest in the template or the file",
        )


def _sha256_file(path: Path, progress: Progress | None) -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    with path.open("rb") as f:
        _copy(f, _Null(), h, total, progress)
    return h.hexdigest()


class _Null:
    def write(self, b: bytes) -> int:
        return len(b)


def _compression(name: str) -> str | None:
    for ext in COMPRESSED:
        if name.endswith(ext):
            return ext
    return None


def _decompress(src: Path, out: Path, progress: Progress | None, *, name: str | None = None) -> None:
    ext = _compression(name or src.name)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        if ext == ".zst":
            os.close(fd)
            proc.run(["zstd", "-d", "-q", "-f", "-o", tmp, src])
        else:
            opener: dict[str | None, Callable[[Path], io.BufferedIOBase]] = {
                ".gz": lambda p: gzip.open(p, "rb"),
                ".xz": lambda p: lzma.open(p, "rb"),
                ".bz2": lambda p: bz2.open(p, "rb"),
            }
            with os.fdopen(fd, "wb") as dst, opener[ext](src) as f:
                try:
                    _copy(f, dst, hashlib.sha256(), None, progress)
                except (OSError, EOFError, lzma.LZMAError) as e:
                    raise LimapyError(f"cannot decompress {name or src}: {e}") from None
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(entry: Path) -> Iterator[None]:
    """Per-entry lock so two starts downloading the same URL do it once."""
    fd = os.open(entry / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- progress display -------------------------------------------------------------------------------------


class ProgressReporter:
    """A progress callback: a rich bar on a TTY, otherwise a plain line every 10 % (or 10 s).

    Use as `with ProgressReporter("ubuntu.img") as p: fetch(url, digest=d, progress=p)`.
    """

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self._rich: Any = None
        self._task: Any = None
        self._last_pct = -10
        self._last_time = 0.0

    def __enter__(self) -> ProgressReporter:
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self._rich = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def __call__(self, done: int, total: int | None) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=done, total=total)
            return
        now = time.monotonic()
        pct = done * 100 // total if total else -1
        if total and pct < self._last_pct + 10 and done != total and now - self._last_time < 10:
            return
        if not total and now - self._last_time < 10:
            return
        self._last_pct, self._last_time = pct, now
        size = f"{done >> 20} MiB" + (f" of {total >> 20} MiB ({pct}%)" if total else "")
        print(f"{self.label}: {size}", file=self.stream, flush=True)


def remove_cached(url: str) -> None:
    """Drop one URL's cache entry (used by `prune`-like commands and tests)."""
    shutil.rmtree(url_entry(url), ignore_errors=True)
