"""Automatic port forwards: every TCP port the guest listens on, forwarded to the same port on the host's
127.0.0.1 while it listens, following `portForwards` in Lima's order (first matching rule wins).

The guest's listeners come from its OS's query (limapy.guest.GuestOS.listeners: Linux's reads /proc) over the host
agent's SSH connection; the forwards themselves are OpenSSH's (`ssh -O forward -L` on the instance's ControlMaster,
Lima's own SSH forwarder), as are the Unix-socket rules (`guestSocket` -> `hostSocket`, `-R` for `reverse: true`).
Only TCP is forwarded automatically; UDP only by static rules (QEMU's hostfwd). Every host end is on 127.0.0.1 or
a socket under the instance directory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limapy import ssh
from limapy.base import proc
from limapy.config.model import PortForward, Spec
from limapy.guest.listeners import Listener
from limapy.instance import store

if TYPE_CHECKING:
    from limapy.base.records import ForwardRow
    from limapy.guest import ListenerQuery

log = logging.getLogger("limapy.agent.forwards")

PRIVILEGED = 1024
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Decision:
    host_port: int | None  # None: not forwarded
    reason: str = ""  # why not: "ignored", "static", "privileged", "ssh"

    @property
    def forwarded(self) -> bool:
        return self.host_port is not None


def _ip_matches(rule: PortForward, lst: Listener) -> bool:
    import ipaddress

    rule_ip = ipaddress.ip_address(rule.guest_ip)
    if rule.guest_ip_must_be_zero:
        return lst.unspecified
    if rule_ip.is_unspecified:
        return True
    if ipaddress.ip_address(lst.ip) == rule_ip:
        return True
    # A listener on 0.0.0.0 or :: answers on loopback too; ::1 is the loopback rule's as much as 127.0.0.1.
    return rule_ip.is_loopback and (lst.unspecified or lst.loopback)


def rules(spec: Spec, ignored: frozenset[int] = frozenset()) -> list[PortForward]:
    """Lima's rule list: guest port 22 ignored on every address (and the guest OS's `ignored` ports: Windows' RDP),
    the user's rules, then 127.0.0.1 -> same port."""
    fixed = [PortForward(guest_port_range=(p, p), host_port_range=None, guest_ip="0.0.0.0", ignore=True)  # noqa: S104 (a guest address to ignore)
             for p in (22, *sorted(ignored - {22}))]  # fmt: skip
    default = PortForward(guest_port_range=(1, 65535), host_port_range=(1, 65535))
    user = [r for r in spec.port_forwards if not r.guest_socket and not r.host_socket and r.proto in ("tcp", "any")]
    return [*fixed, *user, default]


def decide(rule_list: list[PortForward], lst: Listener, *, reserved: set[int] | None = None) -> Decision:
    for rule in rule_list:
        lo, hi = rule.guest_port_range
        if not lo <= lst.port <= hi or not _ip_matches(rule, lst):
            continue
        if rule.ignore:
            return Decision(None, "ignored")
        if rule.static:
            return Decision(None, "static")  # QEMU forwards it (hostfwd) from the start
        h_lo = (rule.host_port_range or rule.guest_port_range)[0]
        port = h_lo + (lst.port - lo)
        if port < PRIVILEGED:
            return Decision(None, "privileged")
        if reserved and port in reserved:
            return Decision(None, "ssh")
        return Decision(port)
    return Decision(None, "no rule")


def guest_target(lst: Listener) -> str:
    """Where ssh connects in the guest: the listener's own address, loopback for a wildcard one."""
    if lst.unspecified:
        return LOOPBACK if lst.version == 4 else "[::1]"
    return lst.ip if lst.version == 4 else f"[{lst.ip}]"


Emit = Callable[..., None]


class Forwarder:
    """Holds the forwards of one running instance; `watch` runs in the host agent's background thread."""

    def __init__(self, inst: store.Instance, spec: Spec, *, ssh_port: int, emit: Emit,
                 ignored: frozenset[int] = frozenset()) -> None:  # fmt: skip
        self.inst = inst
        self.spec = spec
        self.emit = emit
        self.rules = rules(spec, ignored)
        self.reserved = {ssh_port}
        self.active: dict[Listener, int] = {}  # listener -> host port
        self.sockets: list[ForwardRow] = []
        self.warned: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.master: proc.Process[bytes] | None = None

    # -- OpenSSH multiplexing ------------------------------------------------------------------------------
    def _ssh(self, *args: str) -> proc.Completed[bytes]:
        return proc.run(ssh.config_argv(self.inst, *args), check=False, timeout=15)

    def start_master(self) -> None:
        """A ControlMaster for the forwards (unless one runs already, e.g. started by `limapy shell`)."""
        if self._ssh("-O", "check").returncode == 0:
            return
        self.master = proc.spawn(ssh.config_argv(self.inst, "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-N"))
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._ssh("-O", "check").returncode == 0:
                return
            if self.master.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("the SSH ControlMaster for port forwards did not start")

    def close(self) -> None:
        if self.master is not None and self.master.poll() is None:
            self.master.terminate()
            try:
                self.master.wait(5)
            except proc.TimeoutExpired:
                self.master.kill()
        with self.lock:
            self.active.clear()
            self.sockets.clear()
        self._record()

    # -- sockets -------------------------------------------------------------------------------------------
    def socket_forwards(self) -> None:
        """guestSocket -> hostSocket rules (and `reverse: true`, host -> guest), set up once."""
        for rule in self.spec.port_forwards:
            if not (rule.guest_socket and rule.host_socket) or rule.ignore:
                continue
            host = Path(rule.host_socket)
            if not _inside(host, self.inst.dir):
                self._warn("socket", 0, f"hostSocket {host} is outside the instance directory; not forwarded")
                continue
            host.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if rule.reverse:
                flag, spec_ = "-R", f"{rule.guest_socket}:{host}"
            else:
                flag, spec_ = "-L", f"{host}:{rule.guest_socket}"
            if not rule.reverse:
                if not _replaceable(host):  # a stale socket goes; a file (the instance's disk...) never does
                    self._warn("socket", 0, f"hostSocket {host} exists and is not a socket; not forwarded")
                    continue
                host.unlink(missing_ok=True)
            cp = self._ssh("-O", "forward", flag, spec_)
            entry: ForwardRow = {"type": "reverse" if rule.reverse else "forward", "guestAddr": rule.guest_socket,
                                 "hostAddr": str(host), "protocol": "unix"}  # fmt: skip
            if cp.returncode != 0:
                self._warn("socket", 0, f"forwarding {rule.guest_socket}: {_last(cp)}")
                continue
            with self.lock:
                self.sockets.append(entry)
            self.emit(portForward={"type": "forwarding", "protocol": "unix", "guestAddr": rule.guest_socket,
                                   "hostAddr": str(host)})  # fmt: skip
        self._record()

    # -- TCP -----------------------------------------------------------------------------------------------
    def apply(self, listeners: set[Listener]) -> None:
        """Forward what newly listens, cancel what stopped listening."""
        with self.lock:
            gone = [lst for lst in self.active if lst not in listeners]
        for lst in gone:
            self._cancel(lst)
        for lst in sorted(listeners):
            with self.lock:
                if lst in self.active:
                    continue
            decision = decide(self.rules, lst, reserved=self.reserved)
            if decision.host_port is None:
                if decision.reason == "privileged":
                    self._warn("tcp", lst.port, f"guest port {lst.port} ({lst.ip}) is not forwarded: host ports "
                               f"below {PRIVILEGED} are privileged (add a portForwards rule with a hostPort)")
                continue
            if any(p == decision.host_port for p in self.active.values()):
                continue  # the same port on another guest address (0.0.0.0 and ::): one forward serves both
            self._open(lst, decision.host_port)

    def _open(self, lst: Listener, host_port: int) -> None:
        local = f"{LOOPBACK}:{host_port}:{guest_target(lst)}:{lst.port}"
        cp = self._ssh("-O", "forward", "-L", local)
        guest_addr, host_addr = f"{lst.ip}:{lst.port}", f"{LOOPBACK}:{host_port}"
        if cp.returncode != 0:
            self._warn("tcp", host_port, f"cannot forward guest {guest_addr} to {host_addr}: {_last(cp)}")
            return
        with self.lock:
            self.active[lst] = host_port
        self._record()
        log.info("forwarding %s -> %s", guest_addr, host_addr)
        self.emit(portForward={"type": "forwarding", "protocol": "tcp", "guestAddr": guest_addr, "hostAddr": host_addr})

    def _cancel(self, lst: Listener) -> None:
        with self.lock:
            host_port = self.active.pop(lst, None)
        if host_port is None:
            return
        self._record()  # out of the record before the port closes: whoever finds it closed finds it unlisted
        self._ssh("-O", "cancel", "-L", f"{LOOPBACK}:{host_port}:{guest_target(lst)}:{lst.port}")
        self.warned.discard(("tcp", host_port))
        log.info("stopped forwarding %s:%d", lst.ip, lst.port)
        self.emit(portForward={"type": "stopping", "protocol": "tcp", "guestAddr": f"{lst.ip}:{lst.port}",
                               "hostAddr": f"{LOOPBACK}:{host_port}"})  # fmt: skip

    def _warn(self, kind: str, port: int, text: str) -> None:
        """Once per port (until it is forwarded or stops listening)."""
        if (kind, port) in self.warned:
            return
        self.warned.add((kind, port))
        log.warning("%s", text)
        self.emit(message=f"warning: {text}")

    def _record(self) -> None:
        with self.lock:
            tcp: list[ForwardRow] = [
                {"type": "forward", "protocol": "tcp", "guestAddr": f"{lst.ip}:{lst.port}",
                 "hostAddr": f"{LOOPBACK}:{port}"}
                for lst, port in sorted(self.active.items())
            ]
            data = [*tcp, *self.sockets]
        store.atomic_write(self.inst.forwards_file, (json.dumps(data) + "\n").encode(), 0o600)

    # -- the watcher ---------------------------------------------------------------------------------------
    def watch(self, guest: Any, stop: threading.Event, query: ListenerQuery) -> None:
        """Read the guest's listener snapshots (its OS's `query`: limapy.guest.GuestOS.listeners) until `stop` or
        the channel closes."""
        chan = guest.exec_channel(query.script)
        chan.settimeout(1.0)
        buf = b""
        lines: list[str] = []
        try:
            while not stop.is_set():
                try:
                    data = chan.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.decode(errors="replace").strip()
                    if line == "--":
                        try:
                            found = query.parse(lines)
                        except ValueError as e:  # a snapshot it cannot read changes nothing
                            log.warning("unreadable listener snapshot (%s): %.200r", e, lines)
                        else:
                            self.apply(found)
                        lines = []
                    else:
                        lines.append(line)
        finally:
            chan.close()


def _replaceable(path: Path) -> bool:
    """Nothing is there, or a socket (one a forward left): what `ssh -L` may bind to after removing it."""
    import stat

    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except FileNotFoundError:
        return True


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _last(cp: proc.Completed[bytes]) -> str:
    err = (cp.stderr or b"").decode(errors="replace").strip().splitlines()
    return err[-1] if err else f"ssh exit status {cp.returncode}"


def active(inst: store.Instance) -> list[ForwardRow]:
    """The forwards the instance's host agent holds now (for `list --json` / `info`)."""
    try:
        data = json.loads(inst.forwards_file.read_text())
    except (OSError, ValueError):
        return []
    rows: list[ForwardRow] = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []  # type: ignore[misc]  # the host agent's own file
    return rows
