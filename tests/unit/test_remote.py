"""limapy.remote: unreachable guests are RemoteError (the probe loop retries), never another exception."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from limapy.remote import Guest, RemoteError


def test_refused_port_is_remote_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the connect
    key = tmp_path / "key"
    key.write_text("not a key")
    with Guest(port, "lima", key, connect_timeout=1.0) as g, pytest.raises(RemoteError):
        g.run("true")


def test_silent_listener_times_out_as_remote_error(tmp_path: Path) -> None:
    """slirp accepts connections before the guest's sshd is up: no banner ever comes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    conns: list[socket.socket] = []
    t = threading.Thread(target=lambda: conns.append(srv.accept()[0]), daemon=True)
    t.start()
    try:
        with Guest(srv.getsockname()[1], "lima", tmp_path / "none", connect_timeout=1.0) as g:
            with pytest.raises(RemoteError):
                g.run("true")
    finally:
        for c in conns:
            c.close()
        srv.close()
