"""limapy's private smbd (limapy.guest.smb) with the real samba, run as QEMU's slirp runs a guestfwd `cmd:`
(libslirp 4.x misc.c fork_exec: the command split by g_shell_parse_argv, no shell; a session of its own; the
connection as stdin, stdout and stderr). A small acceptor here plays slirp's part on a loopback port, and the
real smbclient plays the guest: the account and its password get in, a wrong password and anonymous do not, a
read-only share refuses a write from the server's side, a writable one round-trips a file, and no smbd is left
once the connection closes. tests/e2e/test_smb.py does the same through QEMU from the Linux test guest.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from limapy.guest import smb

pytestmark = pytest.mark.skipif(
    smb.find_smbd() is None or shutil.which("smbclient") is None, reason="needs samba and smbclient (hack/setup.sh)"
)


class Slirp:
    """Accept connections on 127.0.0.1 and run the guestfwd command for each, as libslirp does."""

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)  # g_shell_parse_argv: tokenization only, like shlex
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.children: list[subprocess.Popen[bytes]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.children.append(subprocess.Popen(self.argv, stdin=conn, stdout=conn, stderr=conn,
                                                      start_new_session=True))  # fmt: skip

    def close(self) -> None:
        self.sock.close()


def guestfwd_command(rule: str) -> str:
    """The command of a `guestfwd=...-cmd:COMMAND` rule as QEMU hands it to slirp (commas undoubled)."""
    return rule.split("-cmd:", 1)[1].replace(",,", ",")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Slirp, Path, Path, str]]:
    # an instance dir with a space, a quote and a comma: the command must still reach the script
    inst = tmp_path / "inst, it's"
    inst.mkdir()
    ro, rw = tmp_path / "ro %u", tmp_path / "rw"
    ro.mkdir()
    (ro / "hello.txt").write_text("from the host\n")
    smbd = smb.find_smbd()
    assert smbd is not None
    shares = [smb.Share("m0", str(ro), False), smb.Share("m1", str(rw), True)]
    smb.write(inst / "smb", shares, smbd)
    slirp = Slirp(guestfwd_command(smb.guestfwd(inst / "smb" / smb.SCRIPT)))
    yield slirp, inst / "smb", rw, (inst / "smb" / smb.PASSWORD).read_text().strip()
    slirp.close()
    for child in slirp.children:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def client(port: int, share: str, auth: list[str], commands: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # smbclient takes the password from $PASSWD, never from its command line
    user, _, password = (auth or [""])[0].partition("%")
    env = {**os.environ, "USER": user, "PASSWD": password} if auth else dict(os.environ)
    args = ["-U", user] if auth else ["-N"]
    return subprocess.run(["smbclient", "-p", str(port), f"//127.0.0.1/{share}", *args, "-m", "SMB3", "-c", commands],
                          capture_output=True, text=True, timeout=60, cwd=cwd, env=env, check=False)  # fmt: skip


def test_the_instance_files_are_private_and_hold_no_secret_or_location(server: tuple[Slirp, Path, Path, str]) -> None:
    _, d, rw, secret = server
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in smb.STATE_DIRS:
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o700, name
    assert stat.S_IMODE((d / smb.CONF).stat().st_mode) == 0o600
    assert stat.S_IMODE((d / smb.PASSWORD).stat().st_mode) == 0o600
    assert stat.S_IMODE((d / smb.SCRIPT).stat().st_mode) == 0o700
    conf, script = (d / smb.CONF).read_text(), (d / smb.SCRIPT).read_text()
    assert secret not in conf and secret not in script
    assert str(rw) not in conf, "mount locations reach smb.conf only as links"
    assert str(d) not in script, "the script names no instance path"
    assert (d / "shares" / "m1").resolve() == rw.resolve()
    assert (d / smb.PASSDB).is_file()


def test_only_the_account_gets_in(server: tuple[Slirp, Path, Path, str], tmp_path: Path) -> None:
    slirp, _, _, secret = server
    user = smb.account()
    ok = client(slirp.port, "m0", [f"{user}%{secret}"], "get hello.txt got.txt", tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tmp_path / "got.txt").read_text() == "from the host\n"
    bad = client(slirp.port, "m0", [f"{user}%not-{secret}"], "ls", tmp_path)
    assert bad.returncode != 0 and "NT_STATUS_LOGON_FAILURE" in bad.stdout + bad.stderr
    anon = client(slirp.port, "m0", [], "ls", tmp_path)
    assert anon.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in anon.stdout + anon.stderr


def test_read_only_is_the_servers_and_writable_round_trips(server: tuple[Slirp, Path, Path, str],
                                                           tmp_path: Path) -> None:  # fmt: skip
    slirp, _, rw, secret = server
    auth = [f"{smb.account()}%{secret}"]
    (tmp_path / "up.txt").write_text("from the guest\n")
    refused = client(slirp.port, "m0", auth, "put up.txt hello.txt; put up.txt new.txt; mkdir d", tmp_path)
    assert "NT_STATUS_ACCESS_DENIED" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    ro = Path(str(rw).replace("/rw", "/ro %u"))
    assert (ro / "hello.txt").read_text() == "from the host\n" and sorted(os.listdir(ro)) == ["hello.txt"]
    wrote = client(slirp.port, "m1", auth, "put up.txt up.txt", tmp_path)
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    assert (rw / "up.txt").read_text() == "from the guest\n"
    assert stat.S_IMODE((rw / "up.txt").stat().st_mode) == 0o644, "no archive bit turned into an execute bit"
    (rw / "down.txt").write_text("from the host\n")
    back = client(slirp.port, "m1", auth, "get down.txt down.txt", tmp_path)
    assert back.returncode == 0 and (tmp_path / "down.txt").read_text() == "from the host\n"


def test_smbd_ends_with_its_connection(server: tuple[Slirp, Path, Path, str], tmp_path: Path) -> None:
    slirp, _, _, secret = server
    assert client(slirp.port, "m1", [f"{smb.account()}%{secret}"], "ls", tmp_path).returncode == 0
    deadline = time.monotonic() + 20
    sids = {c.pid for c in slirp.children}
    while time.monotonic() < deadline and _sessions(sids):
        time.sleep(0.1)
    assert slirp.children and all(c.poll() is not None for c in slirp.children)
    assert _sessions(sids) == [], "no smbd (nor its notifyd/cleanupd) outlives the connection"


def _sessions(sids: set[int]) -> list[int]:
    """Live processes (zombies excluded) in the sessions `sids`: smbd and whatever it forked (notifyd, cleanupd)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) in sids:
            out.append(int(entry.name))
    return out
