"""Which network addresses a fetch may reach on behalf of a template from the network (DESIGN, "Threat model").

A template fetched over the network names URLs limapy then fetches (its `base:`, provision files, images,
kernels, firmware, Windows media). Such a URL may not point at this host or its networks: loopback,
link-local (the cloud metadata service at 169.254.169.254), private and unique-local ranges, and every other
address that is not globally routable, in IPv4 and IPv6 (an IPv4-mapped or NAT64 address counts as the IPv4
one it carries). A `Guard` checks the URL's host in three places: as written (literal addresses, numeric forms
such as `127.1` or `2130706433`, and `localhost`), as resolved when it is fetched, and the address each
connection actually reached (so a name that resolves differently a moment later, or a redirect, gets nowhere).
Through a proxy the proxy is the peer; then the name as resolved here is all there is to check. The one
exception is the template's own origin (same scheme, host and port): the user chose to fetch from there.
The user lifts the rule with `--allow-local-files`.

Redirects are checked for every fetch, whoever named the URL: a public address may not redirect to a
non-public one.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

from limapy.base.errors import LimapyError

HINT = ("a template from the network may not make limapy read files on this host or reach loopback, link-local "
        "or private addresses (as a web page may not); if you trust it, pass --allow-local-files, or download it "
        "and start from the local copy")  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


class LocalAddressError(LimapyError):
    """A URL a network template named reaches a local (non-public) address."""


def address_kind(text: str) -> str | None:
    """What kind of non-public address `text` is ("loopback", "link-local", "private", ...), or None for a
    globally routable one; None too for text that is no address."""
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        elif addr in _NAT64:
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    for test, kind in (("is_loopback", "loopback"), ("is_unspecified", "unspecified"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast")):  # fmt: skip
        if getattr(addr, test):
            return kind
    if isinstance(addr, ipaddress.IPv6Address) and addr in _UNIQUE_LOCAL:
        return "unique-local"
    if addr.is_private:
        return "private"
    if not addr.is_global:
        return "non-public"
    return None


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def literal_address(host: str) -> str | None:
    """The address `host` spells without asking DNS: an IP literal (bracketless), an IPv4 number in any form
    the C resolver accepts (`127.1`, `0x7f.0.0.1`, `2130706433`), or 127.0.0.1 for `localhost` names."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))  # numeric IPv4 forms only: no DNS
    except (OSError, UnicodeError, ValueError):
        return None


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        p = urllib.parse.urlsplit(url)
        port = p.port or {"http": 80, "https": 443}.get(p.scheme)
    except ValueError:
        return None
    return (p.scheme, (p.hostname or "").rstrip(".").lower(), port)


def same_origin(a: str, b: str | None) -> bool:
    return b is not None and _origin(a) is not None and _origin(a) == _origin(b)


def host_of(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return ""


def literal_problem(url: str) -> str | None:
    """Why `url` (written in a network template) is refused from its text alone, or None."""
    host = host_of(url)
    addr = literal_address(host)
    kind = address_kind(addr) if addr else None
    if kind is None:
        return None
    shown = host if addr == host or not host else f"{host} ({addr})"
    return f"{shown} is {_a(kind)} address"


def resolved_problem(url: str) -> str | None:
    """Why `url` is refused once its host is resolved here (DNS), or None (an unresolvable name is left to
    the fetch, which fails on it anyway)."""
    problem = literal_problem(url)
    if problem is not None:
        return problem
    host = host_of(url)
    if not host:
        return None
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        addr = str(info[4][0])
        kind = address_kind(addr)
        if kind is not None:
            return f"{host} resolves to {addr}, {_a(kind)} address"
    return None


class Guard:
    """What a fetch for a network template may reach: public addresses, and `origin` (the template's URL's
    scheme, host and port). `where` names the reference in refusals (`FILE:LINE:COL: field`)."""

    def __init__(self, where: str = "", origin: str | None = None) -> None:
        self.where, self.origin = where, origin

    def _refuse(self, url: str, why: str) -> LocalAddressError:
        where = f"{self.where}: " if self.where else ""
        return LocalAddressError(f"{where}refusing to fetch `{url}`: {why}, and this template came from the "
                                 "network", hint=HINT)  # fmt: skip

    def check_url(self, url: str) -> None:
        """Before a request (and for each redirect): the host as written and as resolved now."""
        if same_origin(url, self.origin):
            return
        why = resolved_problem(url)
        if why is not None:
            raise self._refuse(url, why)

    def check_peer(self, url: str, addr: str) -> None:
        """After connecting directly (no proxy): the address reached."""
        if same_origin(url, self.origin):
            return
        kind = address_kind(addr)
        if kind is not None:
            raise self._refuse(url, f"{host_of(url)} reached {addr}, {_a(kind)} address")


def redirect_problem(old: str, new: str) -> str | None:
    """For every fetch: a redirect from a public host to a non-public one is refused (the user named the
    public URL, not the local address it points at)."""
    if resolved_problem(old) is not None:
        return None  # the user's own local URL may redirect within its network
    why = resolved_problem(new)
    return f"{old} (a public address) redirects to {new}: {why}" if why else None
