"""Scripted commands in a guest over one kept-open SSH connection (fabric; imported lazily).

Interactive shells and `copy` use the real OpenSSH client (limapy.ssh); the host agent's readiness
checks use this: one connection instead of an ssh process per probe, so a probe costs milliseconds and
the guest's boot-done marker is seen as soon as it appears.

Guest host keys are not checked, as with Lima's `StrictHostKeyChecking=no` on 127.0.0.1: the guest is
reached only through a port that QEMU forwards on the loopback interface (of this host, or of the remote
libvirt host the `gateway` command reaches, whose own host key policy is the libvirt URI's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limapy.base.errors import LimapyError

log = logging.getLogger("limapy.remote")

HOST = "127.0.0.1"


class RemoteError(LimapyError):
    """The guest could not be reached (yet): connection refused, banner or auth timeout, reset."""


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


class Guest:
    """A lazily (re)connecting SSH session to a guest."""

    def __init__(
        self, port: int, user: str, key: Path, *, connect_timeout: float = 5.0, gateway: str | None = None
    ) -> None:
        self.port = port
        self.gateway = gateway  # a ProxyCommand to the host the port is on (a remote libvirt host)
        self.user = user
        self.key = key
        self.connect_timeout = connect_timeout
        self._conn: Any = None

    def _connect(self) -> Any:
        from fabric import Config, Connection

        config = Config(overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True}})
        conn = Connection(
            HOST,
            user=self.user,
            port=self.port,
            config=config,
            connect_timeout=self.connect_timeout,
            connect_kwargs={
                "key_filename": [str(self.key)],
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": self.connect_timeout,
                "auth_timeout": self.connect_timeout,
                **({"sock": self._proxy()} if self.gateway else {}),
            },
        )
        import paramiko

        conn.client.set_missing_host_key_policy(paramiko.MissingHostKeyPolicy())  # accept, silently
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # banner timeouts are expected early on
        conn.open()
        return conn

    def _proxy(self) -> Any:
        """The gateway command as paramiko runs it, with OpenSSH's %h and %p filled in here (fabric's own
        gateway string would take the port from an ssh_config that has none: 22)."""
        import paramiko

        assert self.gateway is not None
        return paramiko.ProxyCommand(self.gateway.replace("%h", HOST).replace("%p", str(int(self.port))))

    def run(self, command: str, timeout: float = 30.0) -> Result:
        """Run `command`; RemoteError when the guest cannot be reached, else its exit code and output."""
        import paramiko

        try:
            if self._conn is None or not self._conn.is_connected:
                self._conn = self._connect()
            r = self._conn.run(command, timeout=timeout, in_stream=False)
        except (TimeoutError, OSError, EOFError, paramiko.SSHException) as e:
            self.close()
            raise RemoteError(f"guest not reachable over SSH on {HOST}:{self.port}: {type(e).__name__}: {e}") from e
        except Exception as e:  # invoke's CommandTimedOut and friends
            self.close()
            if type(e).__name__ == "CommandTimedOut":
                raise RemoteError(f"command timed out after {timeout:.0f} s in the guest") from e
            raise
        return Result(int(r.exited), str(r.stdout), str(r.stderr))

    def run_input(self, command: str, data: bytes, timeout: float = 30.0) -> Result:
        """Run `command` with `data` on its stdin (a secret that must not be on a command line); RemoteError when
        the guest cannot be reached or it does not finish in time."""

        chan = self.exec_channel(command)
        try:
            chan.settimeout(timeout)
            chan.sendall(data)
            chan.shutdown_write()
            out, err = chan.makefile("rb").read(), chan.makefile_stderr("rb").read()
            status = chan.recv_exit_status()
        except (TimeoutError, OSError, EOFError) as e:
            raise RemoteError(f"the command did not finish in the guest: {type(e).__name__}: {e}") from e
        finally:
            chan.close()
        return Result(int(status), out.decode(errors="replace"), err.decode(errors="replace"))

    def exec_channel(self, command: str) -> Any:
        """A long-running command on its own channel of this connection (paramiko Channel): its stdin and
        stdout are the caller's to drive (reverse-sshfs's SFTP, the listening-socket watcher)."""
        import paramiko

        try:
            if self._conn is None or not self._conn.is_connected:
                self._conn = self._connect()
            chan = self._conn.client.get_transport().open_session()
            chan.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise RemoteError(f"cannot run a command in the guest: {type(e).__name__}: {e}") from e
        return chan

    def get(self, remote_path: str, local_path: Path) -> None:
        """Copy a guest file to `local_path` (SFTP on the same connection), atomically and 0600."""
        import paramiko

        from limapy.base.fsutil import atomic_write

        try:
            if self._conn is None or not self._conn.is_connected:
                self._conn = self._connect()
            sftp = self._conn.sftp()
            with sftp.open(remote_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise RemoteError(f"cannot copy {remote_path} from the guest: {e}") from e
        local_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(local_path, data, 0o600)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a half-open connection must never raise
                log.debug("close failed", exc_info=True)
            self._conn = None

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
