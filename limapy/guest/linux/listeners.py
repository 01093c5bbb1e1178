"""The guest's listening TCP sockets, as Linux lists them in /proc/net/tcp and /proc/net/tcp6.

No guest agent: a small shell loop runs in the guest over the host agent's SSH connection and prints the
local addresses of the LISTEN (state 0A) rows whenever they change; this module parses them.
"""

from __future__ import annotations

import ipaddress

from limapy.guest.listeners import INTERVAL, Listener

#: Runs in the guest (POSIX sh + awk, which every Linux guest has). It prints one `LOCAL_ADDRESS` per
#: listening socket, then a `--` line, each time the set changes; checks every INTERVAL seconds.
WATCH_SCRIPT = (
    "prev=; while :; do "
    "cur=$(awk 'FNR > 1 && $4 == \"0A\" { print $2 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u); "
    'if [ "$cur" != "$prev" ]; then printf "%s\\n--\\n" "$cur"; prev=$cur; fi; '
    f"sleep {INTERVAL}; done"
)


def parse_address(text: str) -> Listener | None:
    """`0100007F:1F90` (IPv4, little-endian words) or the 32-hex-digit IPv6 form, to a Listener."""
    try:
        addr, port_hex = text.strip().split(":")
        port = int(port_hex, 16)
        raw = bytes.fromhex(addr)
    except ValueError:
        return None
    if len(raw) == 4:
        ip = str(ipaddress.IPv4Address(raw[::-1]))
    elif len(raw) == 16:  # four 32-bit words, each in host (little-endian) order
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        v6 = ipaddress.IPv6Address(words)
        ip = str(v6.ipv4_mapped) if v6.ipv4_mapped is not None else str(v6)
    else:
        return None
    return Listener(ip, port) if 0 < port < 65536 else None


def parse_snapshot(lines: list[str]) -> set[Listener]:
    return {lst for line in lines if line.strip() and (lst := parse_address(line)) is not None}


class ProcNetQuery:
    """Linux's answer to limapy.guest.ListenerQuery: WATCH_SCRIPT's snapshots, parsed."""

    script = WATCH_SCRIPT
    ignored: frozenset[int] = frozenset()  # sshd's 22 is every guest's (limapy.agent.forwards.rules)

    def parse(self, lines: list[str]) -> set[Listener]:
        return parse_snapshot(lines)


QUERY = ProcNetQuery()
