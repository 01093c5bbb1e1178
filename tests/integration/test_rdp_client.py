"""`limapy rdp` with the real FreeRDP client (xfreerdp under Xvfb) against a listener on 127.0.0.1.

It proves the contract limapy relies on: with `/u:` and `/from-stdin:force`, FreeRDP reads the password from
its standard input before it connects (so it reaches the forwarded port, here a listener that reads the
client's first RDP packet: a TPKT header, 03 00), and the password is on no command line and in no
environment while it runs. The listener then ends the client (it is no RDP server).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from limapy import driver
from limapy.instance import store
from limapy.ops import rdp

PASSWORD = "Rdp-Secret-0123456789"


@pytest.mark.timeout(120)
def test_xfreerdp_reads_the_password_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xfreerdp = shutil.which("xfreerdp3") or shutil.which("xfreerdp")
    xvfb = shutil.which("Xvfb")
    if not xfreerdp or not xvfb:
        pytest.skip("needs xfreerdp and Xvfb (hack/setup.sh installs freerdp2-x11 and xvfb)")
    display = f":{90 + os.getpid() % 100}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)
    port = listener.getsockname()[1]
    received: list[bytes] = []
    pids: list[str] = []

    def accept() -> None:
        conn, _ = listener.accept()
        with conn:
            received.append(conn.recv(64))
            for pid in os.listdir("/proc"):  # the client, while it is connected
                if pid.isdigit():
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if b"/from-stdin:force" in cmdline:
                        pids.append(pid)
                        assert PASSWORD.encode() not in cmdline
                        assert PASSWORD.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
                        os.kill(int(pid), signal.SIGTERM)  # the session is over: no RDP server here

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        time.sleep(1)  # Xvfb up
        home = tmp_path / "home"
        monkeypatch.setenv("LIMAPY_HOME", str(home))
        monkeypatch.setenv("DISPLAY", display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        d = home / "win"
        d.mkdir(parents=True)
        (d / "lima.yaml").write_text("os: Windows\narch: x86_64\nimages: [{location: /x.iso}]\nplain: true\n"
                                     "user: {name: alice}\n")
        store.atomic_write(d / "windows-password", (PASSWORD + "\n").encode(), 0o600)
        (d / "rdp.port").write_text(f"{port}\n")
        monkeypatch.setattr(driver, "status", lambda _i: store.RUNNING)
        said: list[str] = []
        rc = rdp.connect(store.Instance("win", d), say=said.append)
        thread.join(30)
    finally:
        listener.close()
        server.terminate()
        server.wait(10)
    assert received and received[0][:2] == b"\x03\x00", received  # TPKT: it got past the password prompt
    assert pids, "the client was not seen while connected"
    assert rc != 0  # ended by the test
    assert not [s for s in said if PASSWORD in s]
