"""One HTTP(S) download into a partial file: resumable, bounded, retried, and never mistaken for complete.

- Resume: an interrupted download keeps `partial` and, in `partial.json`, the server's validators (ETag,
  Last-Modified, length). The next try asks for the rest (`Range` + `If-Range`); a 206 appends, a 200 (no
  range support, or the file changed) starts again from zero.
- Complete only when the bytes match what the server promised (Content-Length / Content-Range total), or, for
  a body without a length, what a HEAD request says afterwards.
- Bounded: a size cap (`max_bytes`), a total `deadline`, and a low-speed limit (`LOW_SPEED` bytes in
  `LOW_SPEED_WINDOW` seconds), so a server trickling a byte every 20 s cannot hang a command.
- Transient failures (connection reset, timeouts, HTTP 5xx/429) are retried with backoff, resuming.
- Redirects only to http(s), never from https down to http. Proxies from HTTP(S)_PROXY / NO_PROXY (urllib).
- An HTML page where a file was expected (a login or error page) is an error, not a download.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limapy.base import netpolicy
from limapy.base.errors import LimapyError
from limapy.base.units import format_size
from limapy.download import cache, connect, space
from limapy.download.connect import DownloadError as DownloadError

Progress = Callable[[int, int | None], None]
SOCKET_TIMEOUT = 30.0
LOW_SPEED = 1024
LOW_SPEED_WINDOW = 60.0
RETRIES = 4
BACKOFF = (1.0, 2.0, 4.0, 8.0)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Transient(Exception):
    """A failure worth another try (the partial file is kept)."""


@dataclass
class State:
    """What `partial.json` remembers of an unfinished download."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    length: int | None = None

    @classmethod
    def load(cls, path: Path, url: str) -> State:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(url)
        if not isinstance(data, dict) or data.get("url") != url:
            return cls(url)
        length = data.get("length")
        return cls(url, data.get("etag"), data.get("last_modified"), length if isinstance(length, int) else None)

    def save(self, path: Path) -> None:
        cache.write(path, json.dumps(self.__dict__))

    @property
    def validator(self) -> str | None:
        # A strong ETag is the better If-Range validator; Last-Modified is what most mirrors give.
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


@dataclass
class Result:
    sha256: str
    size: int
    headers: dict[str, str] = field(default_factory=dict)
    resumed_from: int = 0


def head_length(url: str, guard: netpolicy.Guard | None = None, timeout: float = SOCKET_TIMEOUT) -> int | None:
    headers = connect.head(url, timeout=timeout, guard=guard)
    value = (headers or {}).get("content-length")
    return int(value) if value and value.isdigit() else None


def _looks_like_html(first: bytes) -> bool:
    head = first[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


class _Clock(connect.Watchdog):
    """The download's deadline (from the first connect to the last byte, over every retry: the watchdog shuts
    a connection down when it passes, in whatever phase) and its low-speed limit."""

    def __init__(self, deadline: float | None, deadline_hint: str = "") -> None:
        super().__init__(deadline)
        self.hint = deadline_hint
        self.window_start = time.monotonic()
        self.window_bytes = 0

    def expired(self, url: str) -> DownloadError:
        from limapy.base.units import format_duration

        return DownloadError(f"cannot download {url}: not done after {format_duration(self.total or 0)} (the time "
                             f"allowed{self.hint}); run the command again to resume")  # fmt: skip

    def check(self, url: str, got: int) -> None:
        now = time.monotonic()
        if self.over():
            raise self.expired(url)
        self.window_bytes += got
        if now - self.window_start >= LOW_SPEED_WINDOW:
            if self.window_bytes < LOW_SPEED:
                raise _Transient(f"fewer than {LOW_SPEED} bytes in {LOW_SPEED_WINDOW:.0f} s")
            self.window_start, self.window_bytes = now, 0


def download(
    url: str,
    partial: Path,
    state_file: Path,
    *,
    max_bytes: int | None = None,
    deadline: float | None = None,
    deadline_hint: str = "",
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
    guard: netpolicy.Guard | None = None,
) -> Result:
    """Fetch `url` into `partial` (resuming what is there); returns its sha256 once complete. `deadline`:
    seconds from the first connect to the last byte, retries included (`deadline_hint` says how to change it).
    `guard`: the addresses a network template's URL may reach (limapy.base.netpolicy).

    On failure the partial file and its state stay for the next try, unless the server's answer makes them
    useless (then they are removed). Ctrl-C (KeyboardInterrupt) leaves them as they are."""
    clock = _Clock(deadline, deadline_hint)
    state = State.load(state_file, url)
    resumed_from = 0
    last_error = ""
    try:
        for attempt in range(RETRIES + 1):
            if attempt:
                wait = BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]
                left = clock.remaining()
                if left is not None and left < wait:
                    raise clock.expired(url)
                if say:
                    say(f"download interrupted ({last_error}); retrying in {wait:.0f} s")
                time.sleep(wait)
            try:
                try:
                    result = _attempt(url, partial, state_file, state, clock, max_bytes, progress, say, guard)
                finally:
                    clock.cancel()  # this try's connections: a retry connects anew
            except _Transient as e:
                if clock.over():
                    raise clock.expired(url) from None
                last_error = str(e)
                continue
            except DownloadError:
                if clock.over():  # what the watchdog's shutdown looked like to the code that read
                    raise clock.expired(url) from None
                raise
            result.resumed_from = max(resumed_from, result.resumed_from)
            return result
    finally:
        clock.cancel()
    raise DownloadError(f"cannot download {url}: {last_error} (gave up after {RETRIES + 1} tries; run the command "
                        "again to resume)")


def _attempt(
    url: str,
    partial: Path,
    state_file: Path,
    state: State,
    clock: _Clock,
    max_bytes: int | None,
    progress: Progress | None,
    say: Callable[[str], None] | None,
    guard: netpolicy.Guard | None = None,
) -> Result:
    offset = _partial_size(partial)
    if offset and not state.validator:
        offset = 0  # nothing to tell an unchanged file from a changed one: start again
    headers = {}
    if offset:
        headers = {"Range": f"bytes={offset}-", "If-Range": str(state.validator)}
    try:
        resp = connect.opener(guard, clock).open(connect.request(url, headers=headers), timeout=SOCKET_TIMEOUT)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset and state.length == offset:
            return _finish(url, partial, state, {}, offset)
        if e.code == 416:
            cache.remove(partial)
            raise _Transient("the server refused the range asked for; starting again") from None
        if e.code >= 500 or e.code == 429:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, LimapyError):
            raise e.reason from None
        raise _classify(url, e.reason) from None
    except (OSError, http.client.HTTPException) as e:
        raise _classify(url, e) from None
    with resp:
        status = resp.status
        info = {k.lower(): v for k, v in resp.headers.items()}
        start = 0
        total: int | None = None
        if status == 206:
            m = _CONTENT_RANGE.fullmatch(info.get("content-range", ""))
            if not m or int(m.group(1)) != offset:
                cache.remove(partial)
                raise _Transient("the server answered another range than asked; starting again")
            start = offset
            total = int(m.group(3)) if m.group(3) != "*" else None
            if say and offset:
                whole = f" of {format_size(total)}" if total else ""
                say(f"resuming: {format_size(offset)}{whole} already downloaded ({offset} bytes), fetching the rest")
            if progress:
                progress(offset, total)  # the bar starts at the bytes already here
        else:
            if offset and say:
                say("the server sent the whole file (no range support, or the file changed): starting again")
            length = info.get("content-length", "")
            total = int(length) if length.isdigit() else None
        if max_bytes is not None and total is not None and total > max_bytes:
            raise DownloadError(f"cannot download {url}: {total} bytes, more than the {max_bytes} allowed")
        if total is not None:
            space.check_room(url, cache.root(), total - start)
        state.etag = info.get("etag") or None
        state.last_modified = info.get("last-modified") or None
        state.length = total
        state.save(state_file)
        done, hasher = _stream(url, resp, partial, start, total, clock, max_bytes, progress, info)
    if clock.over():  # the watchdog ended the connection: what came is not the whole, whatever it says
        raise clock.expired(url)
    if total is not None and done != total:
        raise _Transient(f"connection closed after {done} of {total} bytes")
    if total is None and info.get("transfer-encoding", "").lower() != "chunked":
        # No length given and not chunked: the body ended when the connection closed, which a truncation
        # looks like too. Ask the server what the whole is (within what is left of the deadline).
        left = clock.remaining()
        promised = head_length(url, guard, SOCKET_TIMEOUT if left is None else max(min(SOCKET_TIMEOUT, left), 0.1))
        if promised is not None and promised != done:
            raise _Transient(f"got {done} bytes, the server says the file has {promised}")
    return _finish(url, partial, state, info, start, hasher)


def _stream(
    url: str,
    resp: Any,
    partial: Path,
    start: int,
    total: int | None,
    clock: _Clock,
    max_bytes: int | None,
    progress: Progress | None,
    info: dict[str, str],
) -> tuple[int, Any]:
    """Write the body at `start`; (bytes in the file, a sha256 of them when the whole was streamed now)."""
    try:
        return _write_body(url, resp, partial, start, total, clock, max_bytes, progress, info)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        cache.remove(partial)  # a part that cannot be finished here must not keep the file system full
        raise space.full(url, cache.root()) from None


def _write_body(
    url: str,
    resp: Any,
    partial: Path,
    start: int,
    total: int | None,
    clock: _Clock,
    max_bytes: int | None,
    progress: Progress | None,
    info: dict[str, str],
) -> tuple[int, Any]:
    hasher = None if start else hashlib.sha256()
    done = start
    first = True
    with _open_partial(partial) as out:
        out.seek(start)
        out.truncate()
        # read1: what has arrived (at most CHUNK), so the deadline and speed checks see a trickle as it comes;
        # read(CHUNK) would block until a whole chunk is there.
        read = getattr(resp, "read1", resp.read)
        while True:
            try:
                chunk = read(cache.CHUNK)
            except (OSError, http.client.HTTPException) as e:
                out.flush()
                os.fsync(out.fileno())
                raise _Transient(f"{type(e).__name__}: {e}") from None
            if first and start == 0 and chunk:
                first = False
                if info.get("content-type", "").startswith("text/html") and _looks_like_html(chunk):
                    cache.remove(partial)
                    raise DownloadError(
                        f"cannot download {url}: the server sent an HTML page, not the file (a login, error or "
                        "download page?)",
                        hint="check the URL in a browser; point the template at the file itself",
                    )
            if not chunk:
                break
            out.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
            done += len(chunk)
            if max_bytes is not None and done > max_bytes:
                cache.remove(partial)
                raise DownloadError(f"cannot download {url}: more than the {max_bytes} bytes allowed")
            if progress:
                progress(done, total)
            clock.check(url, len(chunk))
        out.flush()
        os.fsync(out.fileno())
    return done, hasher


def _partial_size(partial: Path) -> int:
    """How much of an earlier try is there to resume from: 0 unless `partial` is a regular file of the user's
    (a link or another user's file in its place is removed, never followed)."""
    try:
        st = os.lstat(partial)
    except FileNotFoundError:
        return 0
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
        return st.st_size
    cache.remove(partial)
    return 0


def _open_partial(partial: Path) -> Any:
    """`partial` opened for writing without following a link (O_NOFOLLOW), made 0600 if new, and refused
    unless it is a regular file of the user's."""
    fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, cache.FILE_MODE)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise DownloadError(f"refusing to write {partial}: not a regular file of yours")
        os.fchmod(fd, cache.FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "r+b")


def _finish(url: str, partial: Path, state: State, info: dict[str, str], start: int, hasher: Any = None) -> Result:
    del url
    digest = hasher.hexdigest() if hasher is not None else cache.sha256_file(partial)
    headers = {k: v for k, v in (("time", state.last_modified), ("etag", state.etag),
                                 ("type", info.get("content-type", "").split(";")[0].strip())) if v}
    return Result(digest, partial.stat().st_size, headers, resumed_from=start)


def _classify(url: str, err: object) -> Exception:
    """Network errors worth a retry become _Transient; the rest (DNS, refused, TLS) fail at once."""
    text = str(getattr(err, "strerror", None) or err)
    if isinstance(err, (TimeoutError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                        http.client.IncompleteRead, http.client.RemoteDisconnected)):
        return _Transient(f"{type(err).__name__}: {text}")
    return DownloadError(f"cannot download {url}: {text}")


