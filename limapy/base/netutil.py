"""Small network helpers: free TCP ports on 127.0.0.1 and Lima's stable per-instance MAC address."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

LOCALHOST = "127.0.0.1"
_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port the kernel considers free on `host` right now (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True when nothing listens on host:port (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def machine_id() -> str:
    """The host's machine-id as Lima reads it; the hostname when no machine-id file exists."""
    for path in _MACHINE_ID_FILES:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return socket.gethostname()


def mac_from_seed(seed: str) -> str:
    """Lima's locally administered MACs: 52:55:55 + the first 3 bytes of sha256(seed)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "52:55:55:" + ":".join(f"{b:02x}" for b in digest[:3])


def mac_address(instance_dir: str | Path, *, host_id: str | None = None) -> str:
    """The user-network NIC's MAC: seeded by machine-id + instance dir, as Lima (lima-reference §5)."""
    ident = machine_id() if host_id is None else host_id
    return mac_from_seed(ident + str(instance_dir))


def read_port(path: Path) -> int:
    """A TCP port kept in a file (an instance's rdp.port), 0 when there is none or it is not a port."""
    try:
        port = int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
    return port if 0 < port < 65536 else 0
