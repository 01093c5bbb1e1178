"""Which libvirt host an instance lives on, and how its guest is reached from here.

The connection URI is libvirt's own (`qemu:///system`, `qemu:///session`, `qemu+ssh://user@host:port/system
?keyfile=K&no_verify=1`, ...). It is chosen at create (`--connect`, else $LIBVIRT_DEFAULT_URI, else libvirt's
default) and kept in the instance's `driver.uri`, so every later command talks to the same host.

A local URI runs the guest on this machine: its SSH port forward is on this machine's 127.0.0.1. A remote
one (a `+ssh` transport with a host) runs it there: the forward is on that host's 127.0.0.1, and OpenSSH and
the host agent reach it through the host (`ssh -W`, as ProxyJump does), with the key and host-key policy the
URI itself names so the guest is reached exactly as libvirt reaches the host.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from limapy.base.errors import LimapyError
from limapy.instance import store

URI_FILE = "driver.uri"
#: The hop to a remote libvirt host, as one ssh_config line (ProxyJump or ProxyCommand); limapy.ssh adds it.
PROXY_FILE = "ssh.proxy"


@dataclass(frozen=True)
class Jump:
    """The libvirt host as an SSH hop to the guest's forwarded port."""

    host: str
    user: str | None = None
    port: int | None = None
    keyfile: str | None = None
    no_verify: bool = False

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def proxy_jump(self) -> str:
        """OpenSSH's `ProxyJump` value: enough when the URI names no key and no host-key policy (an IPv6
        address is bracketed, as ProxyJump requires)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"

    def proxy_command(self, ssh_binary: str = "ssh") -> str:
        """`ProxyCommand`: the same hop as ProxyJump, carrying the URI's key and host-key options. Every word
        is shell-quoted: OpenSSH runs the command through the user's shell."""
        argv = [ssh_binary, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
        if self.keyfile:
            argv += ["-i", self.keyfile, "-o", "IdentitiesOnly=yes"]
        if self.no_verify:
            argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        if self.port:
            argv += ["-p", str(self.port)]
        argv += ["-W", "[%h]:%p", self.destination]
        # %h and %p are OpenSSH's tokens; quote everything else
        return " ".join(a if a == "[%h]:%p" else shlex.quote(a) for a in argv)

    @property
    def needs_command(self) -> bool:
        """A ProxyCommand rather than ProxyJump: for the URI's key or host-key policy, and for an IPv6 host
        (limapy.ssh turns a ProxyJump into a command by splitting at its one colon)."""
        return bool(self.keyfile or self.no_verify or ":" in self.host)


#: What a user or host name in an SSH hop may be: it becomes one word of an ssh_config line and of a shell
#: command, so no spaces, quotes, `%` (OpenSSH's tokens) or a leading `-` (an ssh option).
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def _refuse_control(uri: str, what: str, value: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise LimapyError(f"libvirt URI {uri!r}: its {what} has a control character", hint="remove it")


def parse(uri: str) -> Jump | None:
    """None for a URI whose guests run on this machine; the SSH hop for a remote one."""
    _refuse_control(uri, "text", uri)
    parts = urlsplit(uri)
    scheme = parts.scheme
    if not scheme:
        raise LimapyError(f"libvirt URI {uri!r} has no scheme", hint="e.g. qemu:///system or qemu+ssh://host/system")
    driver, _, transport = scheme.partition("+")
    if driver not in ("qemu", "kvm"):
        raise LimapyError(f"libvirt URI {uri!r}: limapy drives QEMU domains only (qemu:// or qemu+ssh://)")
    host = parts.hostname
    if not host or (not transport and host in ("localhost", "127.0.0.1", "::1")):
        return None
    if transport not in ("ssh", "libssh", "libssh2"):
        raise LimapyError(
            f"libvirt URI {uri!r}: a remote host is reached over SSH only (qemu+ssh://)",
            hint="the guest's SSH goes through the same host: use qemu+ssh://USER@HOST/system",
        )
    try:
        port = parts.port
    except ValueError as e:  # not a number, or out of range
        raise LimapyError(f"libvirt URI {uri!r}: bad port ({e})") from None
    if not _HOST.fullmatch(host):
        raise LimapyError(f"libvirt URI {uri!r}: limapy cannot use host name {host!r} in an SSH hop")
    user = parts.username or None
    if user is not None and not _USER.fullmatch(user):
        raise LimapyError(f"libvirt URI {uri!r}: limapy cannot use user name {user!r} in an SSH hop")
    query = parse_qs(parts.query)
    keyfile = (query.get("keyfile") or [""])[0] or None
    if keyfile is not None:
        _refuse_control(uri, "keyfile", keyfile)
        if "%" in keyfile:  # OpenSSH reads `%` in a ProxyCommand as a token, paramiko does not read `%%`
            raise LimapyError(
                f"libvirt URI {uri!r}: keyfile {keyfile!r} has a `%`, which an SSH ProxyCommand cannot carry",
                hint="rename the key file (or link it) to a path without `%`",
            )
    no_verify = (query.get("no_verify") or ["0"])[0] not in ("", "0")
    return Jump(host=host, user=user, port=port, keyfile=keyfile, no_verify=no_verify)


def uri_of(inst: store.Instance) -> str:
    path = inst.dir / URI_FILE
    try:
        uri = path.read_text().strip()
    except FileNotFoundError:
        raise LimapyError(
            f"instance `{inst.name}` has no libvirt URI ({path} is missing)",
            hint=f"write the URI into {path}, or delete and re-create the instance",
        ) from None
    if not uri:
        raise LimapyError(f"{path} is empty", hint="write the instance's libvirt URI into it")
    return uri


def record_uri(directory: Path, uri: str) -> None:
    store.atomic_write(directory / URI_FILE, (uri + "\n").encode(), 0o600)


def read_requested(directory: Path) -> str | None:
    """The URI `create --connect` asked for (limapy.driver.record wrote it), if any."""
    try:
        return (directory / URI_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None
