"""A listening socket in the guest, as every guest OS reports it (limapy.guest.ListenerQuery parses to these) and
the host agent's automatic port forwards (limapy.agent.forwards) decide on."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

#: Seconds between two looks at the guest's listeners (every guest OS's query): a forward opens or closes within
#: about this long of the listener.
INTERVAL = 1


@dataclass(frozen=True, order=True)
class Listener:
    ip: str  # "0.0.0.0", "127.0.0.1", "::", "::1", ...
    port: int

    @property
    def unspecified(self) -> bool:
        return ipaddress.ip_address(self.ip).is_unspecified

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.ip).is_loopback

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version
