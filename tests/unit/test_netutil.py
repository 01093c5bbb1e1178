from __future__ import annotations

import hashlib
import re
import socket

from limapy.base import netutil


def test_mac_address_is_lima_derivation() -> None:
    digest = hashlib.sha256(b"0123abcd/home/u/.limapy/vm").digest()
    expected = "52:55:55:" + ":".join(f"{b:02x}" for b in digest[:3])
    assert netutil.mac_address("/home/u/.limapy/vm", host_id="0123abcd") == expected
    assert netutil.mac_address("/home/u/.limapy/vm2", host_id="0123abcd") != expected
    assert re.fullmatch(r"52:55:55(:[0-9a-f]{2}){3}", netutil.mac_address("/x"))
    assert netutil.mac_address("/x") == netutil.mac_address("/x")


def test_free_port_and_port_is_free() -> None:
    port = netutil.free_port()
    assert 0 < port < 65536
    assert netutil.port_is_free(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not netutil.port_is_free(s.getsockname()[1])
