"""`tunnel`: a SOCKS proxy on 127.0.0.1 whose connections leave from the guest (`ssh -N -D`), in the foreground."""

from __future__ import annotations

from collections.abc import Callable

from limapy.base.errors import LimapyError, UsageError
from limapy.instance import store


def tunnel_argv(inst: store.Instance, socks_port: int) -> list[str]:
    """`ssh ... -N -D 127.0.0.1:PORT -p SSHPORT 127.0.0.1` (the instance's own ssh options, no ControlMaster)."""
    from limapy import config, ssh
    from limapy.ops.list import ssh_port
    from limapy.ops.shell import require_running

    require_running(inst)
    port = ssh_port(inst)
    if not port:
        raise LimapyError(f"instance `{inst.name}` has no SSH port yet (still starting?)")
    spec = config.instance_spec(inst)
    opts = ssh.ssh_options(inst, spec, ssh.default_key_path(), control_master=False)
    return [
        *ssh.ssh_command(), *ssh.option_args(opts), "-o", "ExitOnForwardFailure=yes",
        "-N", "-D", f"{ssh.HOST}:{int(socks_port)}", "-p", str(port), ssh.HOST,
    ]  # fmt: skip


def tunnel(inst: store.Instance, *, kind: str, socks_port: int, say: Callable[[str], None]) -> None:
    """Print how to use the proxy, then become ssh (Ctrl-C ends the tunnel)."""
    from limapy.base import netutil, proc

    if kind != "socks":
        raise UsageError(f"--type {kind!r}: only `socks` is supported")
    if not 0 <= socks_port <= 65535:
        raise UsageError(f"--socks-port {socks_port}: not a TCP port")
    port = socks_port or netutil.free_port()
    argv = tunnel_argv(inst, port)
    print(f"export ALL_PROXY=socks5h://{netutil.LOCALHOST}:{port}", flush=True)
    say(f"SOCKS proxy through `{inst.name}` on {netutil.LOCALHOST}:{port}; Ctrl-C stops it")
    proc.exec_replace(argv)
