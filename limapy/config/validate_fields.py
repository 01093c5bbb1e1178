"""limapy's rules for values that end up in the first-boot media, in a host socket path or in a guest file,
checked with every other problem (so `validate` names the field) instead of when the seed is written.

Lima accepts some of these and fails later (a newline in an `env` value splits `/etc/environment`; a
`hostSocket` with `..` leaves the instance's `sock/` directory); where Lima has a rule it is followed:
`dns` entries are IP addresses (Lima's type is `[]net.IP`, which refuses anything else while reading).
`hostResolver.hosts` values are IP addresses too, or names limapy can turn into one: Lima's host agent
answers a name there with a CNAME, but limapy has no DNS server of its own and writes the entries into the
guest's /etc/hosts, which takes addresses. So a value may be `host.lima.internal` (the host, at the user-mode
network's gateway: Lima's `docker` template maps `host.docker.internal` to it) or another entry's name.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath
from typing import Any

from limapy.config.validate import Problem

#: What `export "$line"` takes as a name (POSIX: letters, digits, `_`, not starting with a digit).
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A host name for /etc/hosts (what limapy.guest.linux.seed writes there).
HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Names Lima's host agent answers that a hostResolver.hosts value may point at: the host, as the guest sees it
#: on the user-mode network (Lima's SlirpGateway; limapy's QEMU and libvirt NICs use the same 192.168.5.0/24).
KNOWN_HOSTS = {"host.lima.internal": "192.168.5.2"}


def resolve_host(value: Any, hosts: dict[str, Any]) -> str | None:
    """The IP address a hostResolver.hosts value stands for: itself, a name in KNOWN_HOSTS, or another entry's
    (followed a few steps, as a CNAME chain); None when it is none of those."""
    seen: set[str] = set()
    while isinstance(value, str) and value not in seen and len(seen) < 8:
        if _ip(value):
            return str(ipaddress.ip_address(value))
        seen.add(value)
        value = KNOWN_HOSTS.get(value, hosts.get(value))
    return None


def _m(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _line(value: Any) -> bool:
    """A value that stays one line in a KEY=VALUE file (no newline, carriage return or other control character
    but a tab)."""
    return not isinstance(value, str) or not _CONTROL.search(value.replace("\t", ""))


def field_problems(cfg: dict[str, Any]) -> list[Problem]:
    return [*_env(cfg), *_dns(cfg), *_hosts(cfg), *_data_files(cfg), *_host_sockets(cfg)]


def _env(cfg: dict[str, Any]) -> list[Problem]:
    out = []
    for key, value in _m(cfg.get("env")).items():
        if not ENV_KEY.fullmatch(str(key)):
            out.append(Problem(("env", key), f"field `env` key {str(key)!r} is not an environment variable name "
                               "(letters, digits and `_`, not starting with a digit)"))  # fmt: skip
        elif not _line(value):
            out.append(Problem(("env", key), f"field `env.{key}` holds a newline or another control character: "
                               "an environment value is one line"))  # fmt: skip
    return out


def _ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _dns(cfg: dict[str, Any]) -> list[Problem]:
    return [Problem(("dns", i), f"field `dns[{i}]` must be an IP address, got {str(d)!r}")
            for i, d in enumerate(cfg.get("dns") or []) if not _ip(d)]  # fmt: skip


def _hosts(cfg: dict[str, Any]) -> list[Problem]:
    out = []
    hosts = _m(_m(cfg.get("hostResolver")).get("hosts"))
    for name, addr in hosts.items():
        at = ("hostResolver", "hosts", name)
        if not HOSTNAME.fullmatch(str(name)):
            out.append(Problem(at, f"field `hostResolver.hosts` key {str(name)!r} is not a host name"))
        elif resolve_host(addr, hosts) is None:
            out.append(Problem(at, f"field `hostResolver.hosts.{name}` must be an IP address (or host.lima.internal, "
                               f"or another entry's name), got {str(addr)!r}: limapy writes these entries into the "
                               "guest's /etc/hosts"))  # fmt: skip
    return out


def _data_files(cfg: dict[str, Any]) -> list[Problem]:
    out = []
    for i, p in enumerate(cfg.get("provision") or []):
        if not isinstance(p, dict):
            continue
        for key in ("owner", "path", "permissions"):
            if not _line(p.get(key)):
                out.append(Problem(("provision", i, key), f"field `provision[{i}].{key}` holds a newline or another "
                                   "control character"))  # fmt: skip
    return out


def _host_sockets(cfg: dict[str, Any]) -> list[Problem]:
    out = []
    for i, pf in enumerate(cfg.get("portForwards") or []):
        sock = pf.get("hostSocket") if isinstance(pf, dict) else None
        if isinstance(sock, str) and ".." in PurePosixPath(sock).parts:
            out.append(Problem(("portForwards", i, "hostSocket"), f"field `portForwards[{i}].hostSocket` must "
                               f"not contain `..` (got {sock!r}): a host socket stays inside the instance "
                               "directory"))  # fmt: skip
    return out
