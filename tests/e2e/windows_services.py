"""Issue 26 on the Windows stand-in (tests/e2e/test_windows_standin.py runs it on a ready guest): automatic port
forwards from the listener query (its PowerShell.exe answers from the guest's real sockets in
Get-NetTCPConnection's JSON shape) opened for a listener, none for RDP's 3389, shown by `list --json` and `info`,
released when the listener stops; `limapy copy` both ways with drive-letter paths (drive C: is /C: in the
stand-in, as Win32-OpenSSH's sftp-server names it), `-r`, and scp's exit code."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

Run = Callable[..., subprocess.CompletedProcess[str]]

#: A listener in the guest: accepts and answers one line, until killed. perl-base is in every Debian.
SERVE = (
    'perl -MIO::Socket::INET -e \'$s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => {port}, '
    'Listen => 5, ReuseAddr => 1) or die "$!"; while ($c = $s->accept) {{ print $c "hello from the guest\\n"; '
    "close $c }}' </dev/null >/dev/null 2>&1 & echo $!"
)


def ssh(inst: Path, command: str) -> subprocess.CompletedProcess[str]:
    """A command in the stand-in through its ssh.config (bash there: the stand-in user's login shell)."""
    argv = ["ssh", "-F", str(inst / "ssh.config"), f"lima-{inst.name}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def answer(port: int) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            return c.makefile().readline().strip()
    except OSError:
        return None


def forwards(inst: Path) -> list[str]:
    try:
        return [f"{f['guestAddr']}>{f['hostAddr']}" for f in json.loads((inst / "forwards.json").read_text())]
    except (OSError, ValueError):
        return []


def wait(what: str, check: Callable[[], bool], timeout: float = 90) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.5)
    return time.monotonic() - began


def check_forwards(inst: Path, limapy: Run) -> None:
    port = free_port()
    started = ssh(inst, SERVE.format(port=port) + "; " + SERVE.format(port=3389))
    assert started.returncode == 0, started.stderr
    pids = started.stdout.split()
    took = wait("the guest's listener forwarded", lambda: answer(port) == "hello from the guest")
    print(f"guest 0.0.0.0:{port} answered on the host's 127.0.0.1:{port} {took:.1f} s after it started")
    assert f"0.0.0.0:{port}>127.0.0.1:{port}" in forwards(inst), forwards(inst)
    assert not [f for f in forwards(inst) if ":3389>" in f or f.startswith(("0.0.0.0:22>", ":::22>"))]
    listed = limapy("list", "--json", "windows")
    assert listed.returncode == 0, listed.stderr
    row = json.loads(listed.stdout.splitlines()[0])
    assert {"type": "forward", "protocol": "tcp", "guestAddr": f"0.0.0.0:{port}",
            "hostAddr": f"127.0.0.1:{port}"} in row["portForwards"], row.get("portForwards")  # fmt: skip
    info = limapy("info", "win")
    assert info.returncode == 0 and json.loads(info.stdout)["portForwards"] == row["portForwards"], info.stderr

    assert ssh(inst, "kill " + " ".join(pids)).returncode == 0
    took = wait("the forward released", lambda: answer(port) is None and not forwards(inst))
    print(f"the forward of {port} was released {took:.1f} s after the listener stopped")
    listed = limapy("list", "--json", "windows")
    assert "portForwards" not in json.loads(listed.stdout.splitlines()[0])
    events = [json.loads(line) for line in (inst / "ha.stdout.log").read_text().splitlines() if line.strip()]
    seen = [(f["type"], f["guestAddr"]) for e in events if (f := e["status"].get("portForward"))]
    assert ("forwarding", f"0.0.0.0:{port}") in seen and ("stopping", f"0.0.0.0:{port}") in seen, seen


def check_copies(inst: Path, limapy: Run, tmp_path: Path) -> None:
    user = ssh(inst, "whoami").stdout.strip()
    assert user, "whoami"
    home = f"C:\\Users\\{user}"
    src = tmp_path / "to-guest.txt"
    src.write_text("from the host\n")
    cp = limapy("copy", src, f"win:{home}\\to-guest.txt")
    assert cp.returncode == 0, cp.stderr
    assert ssh(inst, f"cat /C:/Users/{user}/to-guest.txt").stdout == "from the host\n"

    back = tmp_path / "back"
    back.mkdir()
    cp = limapy("copy", "win:C:/Windows/win.ini", back)
    assert cp.returncode == 0, cp.stderr
    assert (back / "win.ini").read_bytes().startswith(b"; for 16-bit app support\r\n")

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    cp = limapy("copy", "-r", tree, f"win:{home}\\tree")
    assert cp.returncode == 0, cp.stderr
    assert ssh(inst, f"cat /C:/Users/{user}/tree/sub/b.txt").stdout == "b\n"
    cp = limapy("copy", "-r", f"win:C:/Users/{user}/tree", back / "tree")
    assert cp.returncode == 0, cp.stderr
    assert (back / "tree" / "a.txt").read_text() == "a\n" and (back / "tree" / "sub" / "b.txt").read_text() == "b\n"

    cp = limapy("copy", "win:C:\\no-such-file.txt", back)
    assert cp.returncode == 1, (cp.returncode, cp.stderr)  # scp's
    cp = limapy("copy", "win:C:no-such-file.txt", back)
    assert cp.returncode == 1 and "relative to the current directory of drive C:" in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr


def folder_args(tmp_path: Path) -> tuple[list[str], Path, Path]:
    """`limapy create` arguments for two host folders (read-only, then writable): Z: and Y: in the guest."""
    ro, rw = tmp_path / "host-ro", tmp_path / "host-rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "hello.txt").write_text("from the host folder\n")
    mounts = f'.mounts = [{{location: "{ro}"}}, {{location: "{rw}", writable: true}}]'
    return ["--set", mounts], ro, rw


def check_folders(inst: Path, limapy: Run, tmp_path: Path, ro: Path, rw: Path, start_err: str) -> None:
    """Issue 26 item 1 through the Windows path: the host agent ran the mapping script (its password on stdin),
    the stand-in's answer mounted each share with the kernel's cifs client at /Z: and /Y: (its drives), served
    by the instance's private smbd: the guest reads the host's file, the read-only share refuses a write (from
    the server), the writable one takes a file the host then sees."""
    assert f"mounted {ro} at Z: (\\\\192.168.5.4\\m0)" in start_err, start_err
    assert f"mounted {rw} at Y: (\\\\192.168.5.4\\m1)" in start_err, start_err
    assert ssh(inst, "cat /Z:/hello.txt").stdout == "from the host folder\n"
    denied = ssh(inst, "echo x > /Z:/written.txt")
    assert denied.returncode != 0 and not (ro / "written.txt").exists(), denied.stderr
    assert "Permission denied" in denied.stderr or "Read-only" in denied.stderr, denied.stderr
    back = tmp_path / "from-z"
    back.mkdir(exist_ok=True)
    cp = limapy("copy", "win:Z:\\hello.txt", back)  # the host's file, out through the guest's drive
    assert cp.returncode == 0 and (back / "hello.txt").read_text() == "from the host folder\n", cp.stderr
    src = tmp_path / "to-y.txt"
    src.write_text("into the writable folder\n")
    cp = limapy("copy", src, "win:Y:/to-y.txt")
    assert cp.returncode == 0, cp.stderr
    assert (rw / "to-y.txt").read_text() == "into the writable folder\n"
