"""The HTTP(S) connections downloads use: a deadline from connect to last byte, redirects only where they may
go, and, for what a network template named, only public addresses (limapy.base.netpolicy).

- *Deadline.* A socket timeout bounds each wait, not the sum: a server that trickles its status line and
  headers a byte every few seconds holds `urlopen` forever. A `Watchdog` shuts every socket of a download down
  when its deadline passes (the read that waits then ends at once), whatever phase it is in: TLS handshake,
  headers, body.
- *Redirects* only to http(s), never from https down to http, never from a public address to a local one;
  with a `Guard`, each new location is checked as the first was.
- *Addresses.* With a `Guard`, the address each connection reached is checked too (unless a proxy is the
  peer): a name that resolved to a public address for the check and to a local one for the connection gets
  nowhere.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

from limapy import __version__
from limapy.base import netpolicy
from limapy.base.errors import LimapyError


class DownloadError(LimapyError):
    """A download that failed for good (after retries), with one line saying why."""


class Watchdog:
    """Shuts the sockets it watches down once `deadline` seconds (from its creation) have passed."""

    def __init__(self, deadline: float | None) -> None:
        self.total = deadline
        self.end = None if deadline is None else time.monotonic() + deadline
        self.fired = False
        self._timers: list[tuple[threading.Timer, socket.socket]] = []

    def remaining(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()

    def over(self) -> bool:
        return self.fired or (self.end is not None and time.monotonic() > self.end)

    def watch(self, sock: socket.socket) -> None:
        """Arm the deadline for `sock`. It is shut down through a duplicate of its descriptor: TLS takes the
        original socket object over (detaching it), and a shutdown reaches the connection from any of them."""
        left = self.remaining()
        if left is None:
            return
        dup = sock.dup()

        def fire() -> None:
            self.fired = True
            with contextlib.suppress(OSError):
                dup.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(max(left, 0.0), fire)
        timer.daemon = True
        timer.start()
        self._timers.append((timer, dup))

    def cancel(self) -> None:
        """Disarm and let go of the connections watched so far (the deadline itself stands)."""
        for timer, dup in self._timers:
            timer.cancel()
            dup.close()
        self._timers.clear()


def _connection(base: type[http.client.HTTPConnection], url: str, watchdog: Watchdog | None,
                guard: netpolicy.Guard | None, proxied: bool, *args: Any, **kwargs: Any) -> Any:  # fmt: skip
    """An http.client connection of class `base` whose sockets are watched and whose peer is checked."""
    conn = base(*args, **kwargs)
    create = conn._create_connection  # type: ignore[attr-defined]

    def create_connection(address: Any, *a: Any, **kw: Any) -> socket.socket:
        sock: socket.socket = create(address, *a, **kw)
        try:
            if watchdog is not None:
                watchdog.watch(sock)
            if guard is not None and not proxied:
                guard.check_peer(url, str(sock.getpeername()[0]))
        except BaseException:
            sock.close()
            raise
        return sock

    conn._create_connection = create_connection  # type: ignore[attr-defined]
    return conn


def _proxied(req: urllib.request.Request) -> bool:
    return bool(req.has_proxy() or getattr(req, "_tunnel_host", None))


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog | None, guard: netpolicy.Guard | None) -> None:
        super().__init__()
        self.watchdog, self.guard = watchdog, guard

    def http_open(self, req: urllib.request.Request) -> Any:
        factory = functools.partial(_connection, http.client.HTTPConnection, req.full_url, self.watchdog,
                                    self.guard, _proxied(req))  # fmt: skip
        return self.do_open(factory, req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog | None, guard: netpolicy.Guard | None) -> None:
        super().__init__()
        self.watchdog, self.guard = watchdog, guard

    def https_open(self, req: urllib.request.Request) -> Any:
        factory = functools.partial(_connection, http.client.HTTPSConnection, req.full_url, self.watchdog,
                                    self.guard, _proxied(req))  # fmt: skip
        return self.do_open(factory, req, context=self._context)  # type: ignore[attr-defined]


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, guard: netpolicy.Guard | None) -> None:
        super().__init__()
        self.guard = guard

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = urllib.parse.urlparse(newurl)
        old = urllib.parse.urlparse(req.full_url)
        if new.scheme not in ("http", "https"):
            raise DownloadError(f"{req.full_url}: redirect to {newurl} refused: only http(s) locations are fetched")
        if old.scheme == "https" and new.scheme == "http":
            raise DownloadError(f"{req.full_url}: redirect from https to {newurl} refused (a downgrade to plain http)")
        if self.guard is not None:
            self.guard.check_url(newurl)
        else:
            why = netpolicy.redirect_problem(req.full_url, newurl)
            if why is not None:
                raise DownloadError(f"redirect refused: {why}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener(guard: netpolicy.Guard | None = None, watchdog: Watchdog | None = None) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_Redirects(guard), _HTTP(watchdog, guard), _HTTPS(watchdog, guard))


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> urllib.request.Request:
    h = {"User-Agent": f"limapy/{__version__}", "Accept-Encoding": "identity", **(headers or {})}
    return urllib.request.Request(url, method=method, headers=h)  # noqa: S310 (scheme checked by the caller)


def head(url: str, *, timeout: float, guard: netpolicy.Guard | None = None) -> dict[str, str] | None:
    """The response headers of a HEAD request (lowercase names), done within `timeout` seconds in all; None
    when it fails in any way (offline, refused, too slow)."""
    import urllib.error

    watchdog = Watchdog(timeout)
    try:
        with opener(guard, watchdog).open(request(url, "HEAD"), timeout=timeout) as resp:
            return {k.lower(): v for k, v in resp.headers.items()}
    except (OSError, urllib.error.URLError, http.client.HTTPException, DownloadError):
        return None
    finally:
        watchdog.cancel()
