"""`limapy rdp NAME`: Remote Desktop into a Windows guest through its 127.0.0.1 forward.

FreeRDP (xfreerdp, wlfreerdp; the 3.x names first) gets the password on its standard input
(`/from-stdin:force`), so it appears on no command line, in no `ps` output and in no log. Remmina, or no
client at all, gets a `.rdp` file (0600) naming the address and user; the password stays in the instance's
`windows-password` file (0600), which limapy names but never prints.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from limapy.base import proc
from limapy.base.errors import LimapyError
from limapy.instance import store

FREERDP_X11 = ("xfreerdp3", "xfreerdp")
FREERDP_WAYLAND = ("wlfreerdp3", "wlfreerdp")
REMMINA = "remmina"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    user: str

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


def rdp_port(inst: store.Instance) -> int:
    from limapy.base.netutil import read_port

    return read_port(inst.rdp_port_file)


def target(inst: store.Instance) -> Target:
    """Where the running Windows guest's Remote Desktop answers, or a LimapyError saying why not."""
    from limapy import driver, guest
    from limapy.instance import summary

    spec = summary.spec(inst)
    if not guest.for_spec(spec).remote_desktop:
        raise LimapyError(f"instance `{inst.name}` is not a Windows guest", hint=f"`limapy shell {inst.name}`")
    if not spec.windows.rdp:
        raise LimapyError(
            f"Remote Desktop is off for `{inst.name}` (osOpts.Windows.rdp: false)",
            hint="it is set when Windows is installed: enable it in the guest, or re-create the instance",
        )
    st = driver.status(inst)
    port = rdp_port(inst)
    if st != store.RUNNING or not port:
        raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
    return Target(inst.name, port, spec.user.name)


def rdp_file_text(t: Target) -> str:
    """A minimal .rdp file (the format mstsc and Remmina read): address and user, no password."""
    lines = [
        f"full address:s:{t.address}", f"username:s:{t.user}", "prompt for credentials:i:1", "screen mode id:i:1",
    ]  # fmt: skip
    return "\r\n".join(lines) + "\r\n"


def write_rdp_file(inst: store.Instance, t: Target, path: Path | None = None) -> Path:
    path = path or inst.rdp_file
    store.atomic_write(path, rdp_file_text(t).encode(), 0o600)
    return path


def find_client(which: Callable[[str], str | None] = shutil.which) -> tuple[str, str] | None:
    """(kind, path): "freerdp" or "remmina", preferring the client for the session's display server."""
    wayland_only = bool(os.environ.get("WAYLAND_DISPLAY")) and not os.environ.get("DISPLAY")
    order = (*FREERDP_WAYLAND, *FREERDP_X11) if wayland_only else (*FREERDP_X11, *FREERDP_WAYLAND)
    for name in order:
        found = which(name)
        if found:
            return "freerdp", found
    found = which(REMMINA)
    return ("remmina", found) if found else None


def freerdp_argv(binary: str, t: Target) -> list[str]:
    # The guest's certificate is its own self-signed one, reached through 127.0.0.1 only (as SSH's
    # StrictHostKeyChecking=no); /from-stdin:force reads the password from stdin before connecting.
    return [
        binary, f"/v:{t.address}", f"/u:{t.user}", "/from-stdin:force", "/cert:ignore", "+clipboard",
        "/dynamic-resolution",
    ]  # fmt: skip


def connect(
    inst: store.Instance, *, say: Callable[[str], None], file: Path | None = None, print_only: bool = False
) -> int:
    """Start a client (FreeRDP with the password on stdin, else Remmina with a .rdp file), or write the file."""
    t = target(inst)
    if print_only:
        print(t.address)
        return 0
    client = None if file is not None else find_client()
    if client is None or client[0] == "remmina":
        path = write_rdp_file(inst, t, file)
        if client is not None:
            say(f"opening {path} with Remmina (user {t.user}; the password is in {inst.password_file})")
            return proc.run([client[1], "-c", path], check=False, capture=False).returncode
        say(
            f"wrote {path}: open it with an RDP client (address {t.address}, user {t.user}; "
            f"the password is in {inst.password_file})"
        )
        if file is None:
            say("no RDP client found: install FreeRDP (apt install freerdp2-x11) or Remmina to connect directly")
        return 0
    try:
        password = inst.password_file.read_text().strip()
    except OSError as e:
        raise LimapyError(f"cannot read the Windows password of `{inst.name}`: {e.strerror}") from None
    say(f"connecting to {t.address} as {t.user} ({Path(client[1]).name})")
    cp = proc.run(freerdp_argv(client[1], t), check=False, capture=False, input=(password + "\n").encode())
    return cp.returncode
