"""A Windows guest's listening TCP sockets, for automatic port forwards: `Get-NetTCPConnection -State Listen` as JSON.

No guest agent, as on Linux (limapy.guest.linux.listeners): one PowerShell runs in the guest over the host agent's
SSH connection for the instance's life, calls Get-NetTCPConnection once per poll (the Linux interval), and prints the
listeners as one JSON array, then a `--` line, whenever they change; this module builds that script and parses its
snapshots. What the JSON looks like, and why the parser reads it as it does (docs/windows.md, "Ports"):

- Get-NetTCPConnection returns MSFT_NetTCPConnection CIM objects (Microsoft, "MSFT_NetTCPConnection class":
  `string LocalAddress; uint16 LocalPort; uint8 State; uint32 OwningProcess; ...`). ConvertTo-Json writes an enum
  as its number unless told otherwise, and State is a number in the CIM object itself: Listen is 2 (Microsoft,
  MIB_TCP_STATE / the NetTCPIP State enum: Closed 1, Listen 2, SynSent 3, ..., Bound 100). The script converts it
  to its name (`[string]$_.State`); the parser takes the name or the number.
- ConvertTo-Json writes one object as an object and nothing at all for an empty pipeline: the script serialises an
  array (`-InputObject @(...)`, `[]` when empty), and the parser still takes a lone object and empty output.
- Wildcards are `0.0.0.0` and `::`; a dual-stack socket is listed once, as `::`. IPv4-mapped `::ffff:a.b.c.d`
  reads as the IPv4 address (as on Linux); a link-local address keeps its `%zone`.
- OwningProcess 4 is System: kernel-mode listeners, chiefly http.sys, which also serves user programs (IIS,
  .NET's HttpListener, WinRM). They are forwarded like any other listener (an `ignore` rule turns one off).
- RDP (3389) is not forwarded automatically: `limapy rdp` reaches it already through its own forward (IGNORED);
  sshd's port 22 is ignored for every guest (limapy.agent.forwards.rules).
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

from limapy.guest.listeners import INTERVAL, Listener

#: Guest ports never forwarded automatically: Remote Desktop has its own forward (`limapy rdp`, rdp.port).
IGNORED = frozenset({3389})
#: MSFT_NetTCPConnection.State for a listening socket, as a number and as its name.
LISTEN = (2, "listen")

#: The PowerShell that runs in the guest (Windows PowerShell 5.1 and PowerShell 7 alike): one Get-NetTCPConnection
#: per poll; the listeners sorted, so that the same set prints the same text; printed only when it changed.
WATCH_POWERSHELL = f"""$ErrorActionPreference = 'Continue'
$state = @{{Name = 'State'; Expression = {{ [string]$_.State }}}}
$previous = $null
while ($true) {{
    $rows = @(Get-NetTCPConnection -State Listen -ErrorAction SilentlyContinue |
        Sort-Object -Property 'LocalAddress', 'LocalPort' |
        Select-Object -Property 'LocalAddress', 'LocalPort', 'OwningProcess', $state)
    $json = ConvertTo-Json -Compress -Depth 2 -InputObject $rows
    if ($json -ne $previous) {{
        [Console]::Out.Write($json + "`n--`n")
        [Console]::Out.Flush()
        $previous = $json
    }}
    Start-Sleep -Seconds {INTERVAL}
}}
"""


def encoded(script: str) -> str:
    """`script` as PowerShell's -EncodedCommand takes it (base64 of UTF-16LE): nothing in it for cmd.exe, sshd's
    DefaultShell, to interpret."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


#: The command the host agent runs (through the user's DefaultShell, cmd.exe by default).
WATCH_COMMAND = f"PowerShell.exe -NoProfile -NonInteractive -EncodedCommand {encoded(WATCH_POWERSHELL)}"


def _address(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _listening(state: Any) -> bool:
    """No State (a projection without it), Listen by number, or by name."""
    if state is None:
        return True
    if isinstance(state, bool):
        return False
    if isinstance(state, int):
        return state == LISTEN[0]
    return isinstance(state, str) and state.strip().lower() == LISTEN[1]


def _listener(row: Any) -> Listener | None:
    if not isinstance(row, dict) or not _listening(row.get("State")):
        return None
    ip = _address(row.get("LocalAddress"))
    port = row.get("LocalPort")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if ip is None or isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        return None
    return Listener(ip, port)


def parse_json(text: str) -> set[Listener]:
    """One snapshot: a JSON array of listeners (or one object, or nothing: none). ValueError when it is not JSON
    (the host agent then keeps the forwards it has)."""
    text = text.strip().lstrip("\ufeff")
    if not text:
        return set()
    data = json.loads(text)
    rows = data if isinstance(data, list) else [data]
    return {lst for row in rows if (lst := _listener(row)) is not None}


class NetTCPConnectionQuery:
    """Windows' answer to limapy.guest.ListenerQuery."""

    script = WATCH_COMMAND
    ignored = IGNORED

    def parse(self, lines: list[str]) -> set[Listener]:
        return parse_json("\n".join(lines))


QUERY = NetTCPConnectionQuery()
