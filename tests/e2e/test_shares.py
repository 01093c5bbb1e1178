"""Host folders and ports in a real guest (issue 12 acceptance), under TCG:

- virtiofs (QEMU's virtiofsd sidecars) and reverse-sshfs (sshfs -o slave in the guest, limapy's confined
  SFTP server on the host): a host file is read in the guest; a guest write in a writable mount lands on
  the host; a write in a read-only mount fails and the host file is unchanged (virtiofs: even after root in
  the guest remounts it rw, the host side enforces it); no process of the instance (host agent, ssh masters,
  virtiofsd) runs after `stop`, nor after QEMU is killed with -9.
- 9p: the test image's Debian cloud kernel has no 9p, so the mount falls back to reverse-sshfs with one
  warning, with the same checks, `stop` and kill -9 included (native 9p is skipped, saying why).
- Automatic port forwards on the reverse-sshfs guest: 0.0.0.0 and 127.0.0.1 listeners answer on the host's
  127.0.0.1 within 3 s of opening, and the host port is released (connection refused, gone from
  forwards.json, a `stopping` event) within 3 s of the listener's end; `ignore: true` keeps a port closed; a
  port already taken on the host is reported once and other forwards go on; a guestSocket reaches its
  hostSocket, and a `reverse: true` guestSocket reaches a server on its hostSocket; nothing of the instance
  listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from limapy.base.netutil import free_port
from tests.e2e.conftest import RunLimapy, limapy_env, pids_belonging_to
from tests.e2e.guest import START_TIMEOUT, alive, list_json, listening_addresses, wait_until

GUEST_UID = 1000  # the template's `lima` user when the host user is root


def folders(base: Path) -> tuple[Path, Path]:
    ro, rw = base / "ro", base / "rw"
    ro.mkdir(parents=True)
    rw.mkdir(parents=True)
    rw.chmod(0o777)  # the guest user (uid 1000) writes here through virtiofs as itself
    (ro / "hello.txt").write_text("from the host\n")
    return ro, rw


def mount_sets(kind: str, ro: Path, rw: Path) -> list[str]:
    mounts = f'[{{location: "{ro}"}}, {{location: "{rw}", writable: true}}]'
    return ["--set", f'.mountType = "{kind}"', "--set", f".mounts = {mounts}"]


def sh(run: RunLimapy, name: str, script: str) -> tuple[int, str]:
    cp = run("shell", name, "--", "sh", "-c", script, timeout=120)
    return cp.returncode, cp.stdout + cp.stderr


def processes_of(home: Path) -> list[str]:
    """Live processes of the test's LIMAPY_HOME (it holds one instance): the host agent (its argv names only
    the instance, its environment the home), QEMU, virtiofsd, swtpm, the ssh masters of the forwards and of
    reverse-sshfs (the SFTP servers are threads of the host agent). None after a stop or QEMU's death."""
    return [_cmdline_text(pid) for pid in pids_belonging_to(home) if alive(pid)]


def _cmdline_text(pid: int) -> str:
    try:
        return f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid}: (gone)"


def nothing_left_after_kill9(run: RunLimapy, name: str, home: Path) -> None:
    """Start the instance, check its host agent counts as one of its processes, SIGKILL QEMU: every process
    of the instance (host agent, ssh masters, sidecars) is gone soon after."""
    start(run, name)
    inst = home / name
    qemu = int((inst / "qemu.pid").read_text())
    agent = int((inst / "ha.pid").read_text())
    running = processes_of(home)
    assert any(p.startswith(f"{agent}: ") for p in running), running  # the check sees the host agent
    assert any(p.startswith(f"{qemu}: ") for p in running), running
    os.kill(qemu, signal.SIGKILL)
    wait_until(lambda: not alive(agent), 60, "the host agent to notice QEMU's death")
    wait_until(lambda: processes_of(home) == [], 30, "every process of the instance to end after QEMU was killed")


def check_shares(run: RunLimapy, name: str, ro: Path, rw: Path, *, owner: int) -> None:
    code, out = sh(run, name, f"cat {ro}/hello.txt")
    assert (code, out) == (0, "from the host\n"), out
    code, out = sh(run, name, f"echo from-the-guest > {rw}/guest.txt && cat {rw}/guest.txt")
    assert code == 0, out
    assert (rw / "guest.txt").read_text() == "from-the-guest\n"
    assert (rw / "guest.txt").stat().st_uid == owner
    code, out = sh(run, name, f"echo overwritten > {ro}/hello.txt")
    assert code != 0 and "Read-only file system" in out, out
    code, out = sh(run, name, f"touch {ro}/new.txt")
    assert code != 0
    assert (ro / "hello.txt").read_text() == "from the host\n" and not (ro / "new.txt").exists()


def start(run: RunLimapy, name: str) -> str:
    cp = run("start", name, timeout=START_TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    return cp.stderr


# --------------------------------------------------------------------------- virtiofs


@pytest.mark.timeout(2 * START_TIMEOUT + 180)
def test_virtiofs(test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path) -> None:
    ro, rw = folders(tmp_path / "share")
    cp = run_limapy("create", "--name", "vf", *mount_sets("virtiofs", ro, rw), test_image_template)
    assert cp.returncode == 0, cp.stderr
    start(run_limapy, "vf")
    code, out = sh(run_limapy, "vf", f"findmnt -n -o FSTYPE,OPTIONS --mountpoint {ro}")
    assert code == 0 and out.startswith("virtiofs ro"), out
    assert [p for p in processes_of(limapy_home) if "virtiofsd" in p], "a virtiofsd per mount runs beside QEMU"
    # virtiofs passes the guest's own uid through (Lima's default guest user has the host user's uid)
    check_shares(run_limapy, "vf", ro, rw, owner=os.getuid() if os.getuid() else GUEST_UID)
    check_read_only_on_the_host(run_limapy, "vf", ro)
    assert run_limapy("stop", "vf", timeout=300).returncode == 0
    assert processes_of(limapy_home) == []
    nothing_left_after_kill9(run_limapy, "vf", limapy_home)


def check_read_only_on_the_host(run: RunLimapy, name: str, ro: Path) -> None:
    """The guest's `ro` is only a promise: root in the guest remounts the share read-write, and virtiofsd
    (behind its read-only bind) still refuses every write."""
    code, out = sh(run, name, f"sudo mount -o remount,rw {ro} && findmnt -n -o OPTIONS --mountpoint {ro}")
    assert code == 0 and out.startswith("rw"), f"the guest could not remount {ro} rw, so nothing is tested: {out}"
    code, out = sh(run, name, f"sudo sh -c 'echo overwritten > {ro}/hello.txt'")
    assert code != 0 and "Read-only file system" in out, out
    code, out = sh(run, name, f"sudo touch {ro}/root-new.txt")
    assert code != 0, out
    code, out = sh(run, name, f"sudo rm {ro}/hello.txt")
    assert code != 0, out
    assert (ro / "hello.txt").read_text() == "from the host\n"
    assert sorted(p.name for p in ro.iterdir()) == ["hello.txt"]


# --------------------------------------------------------------------------- reverse-sshfs + port forwards


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(3)
            return s.recv(64).startswith(b"hi")
    except OSError:
        return False


def listen(run: RunLimapy, name: str, addr: str, port: int, seconds: int) -> None:
    """A guest TCP listener (socat) on addr:port for `seconds`, started in the background."""
    script = (f"nohup timeout {seconds} socat TCP-LISTEN:{port},bind={addr},fork,reuseaddr "
              f"SYSTEM:'echo hi' >/dev/null 2>&1 &")  # fmt: skip
    code, out = sh(run, name, script)
    assert code == 0, out


def within(seconds: float, cond: object) -> float:
    t0 = time.monotonic()
    wait_until(cond, seconds, "the forward")  # type: ignore[arg-type]
    return time.monotonic() - t0


def refused(port: int) -> bool:
    """The host port is released: nothing listens on it (a forward whose guest end is gone would still
    accept, then close; that is not refused)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


class GuestListener:
    """A socat listener in the guest, run by a `limapy shell` kept open, that the test closes when it
    chooses: `close()` returns the time the close was asked for, which is before the listener ends."""

    def __init__(self, home: Path, name: str, addr: str, port: int) -> None:
        script = (f"socat TCP-LISTEN:{port},bind={addr},fork,reuseaddr SYSTEM:'echo hi' & pid=$!; "
                  'echo ready; read _; kill "$pid"; wait "$pid"; echo closed')  # fmt: skip
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "limapy", "shell", name, "--", "sh", "-c", script],
            env=limapy_env(home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "ready\n"
        self.opened = time.monotonic()

    def close(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        asked = time.monotonic()
        self.proc.stdin.write("close\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "closed\n"  # the listener's process has exited
        return asked

    def __del__(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def answers_within(seconds: float, lst: GuestListener) -> None:
    wait_until(lambda: answers(lst.port), 10, f"guest port {lst.port} to answer on the host")
    took = time.monotonic() - lst.opened
    print(f"guest port {lst.port} answered on the host {took:.2f} s after it opened")  # shown by -rP
    assert took <= seconds, f"guest port {lst.port} answered on the host {took:.2f} s after it opened"


def released_within(seconds: float, lst: GuestListener, inst: Path) -> None:
    """Closing the guest listener releases the host port within `seconds` of the close (timed from before
    the close, so never less than the real delay); the forward also leaves the host agent's records."""
    asked = lst.close()
    wait_until(lambda: refused(lst.port), 10, f"host port {lst.port} to be released", interval=0.05)
    took = time.monotonic() - asked
    lst.proc.communicate(timeout=60)  # the shell that ran it ends too
    print(f"host port {lst.port} released {took:.2f} s after the guest listener was closed")  # shown by -rP
    assert took <= seconds, f"host port {lst.port} was released {took:.2f} s after the guest listener closed"
    host = f"127.0.0.1:{lst.port}"
    forwards = json.loads((inst / "forwards.json").read_text())
    assert host not in {f["hostAddr"] for f in forwards}, forwards
    stopping = [e["status"]["portForward"] for e in events(inst)
                if e["status"].get("portForward", {}).get("type") == "stopping"]  # fmt: skip
    assert any(pf["hostAddr"] == host for pf in stopping), stopping


def events(inst: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (inst / "ha.stdout.log").read_text().splitlines() if line.strip()]


@pytest.mark.timeout(2 * START_TIMEOUT + 400)
def test_reverse_sshfs_and_port_forwards(
    test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    ro, rw = folders(tmp_path / "share")
    ignored, taken = free_port(), free_port()
    forwards = (f'[{{guestPort: {ignored}, ignore: true}}, '
                f'{{guestSocket: "/tmp/limapy-e2e.sock", hostSocket: "e2e.sock"}}, '
                f'{{guestSocket: "/tmp/limapy-rev.sock", hostSocket: "rev.sock", reverse: true}}]')  # fmt: skip
    cp = run_limapy("create", "--name", "rs", *mount_sets("reverse-sshfs", ro, rw),
                    "--set", f".portForwards = {forwards}", test_image_template)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    inst = limapy_home / "rs"
    out = start(run_limapy, "rs")
    assert "(reverse-sshfs)" in out
    _, mnt = sh(run_limapy, "rs", f"findmnt -n -o FSTYPE --mountpoint {rw}")
    assert mnt.strip() == "fuse.sshfs", mnt
    check_shares(run_limapy, "rs", ro, rw, owner=os.getuid())  # sftp runs as the host user: files are theirs

    # 0.0.0.0 and 127.0.0.1 listeners: forwarded within 3 s of opening, the host port released within 3 s of
    # the listener's end
    wildcard = GuestListener(limapy_home, "rs", "0.0.0.0", 18080)
    answers_within(3.0, wildcard)
    loopback = GuestListener(limapy_home, "rs", "127.0.0.1", 18081)
    answers_within(3.0, loopback)
    rec = list_json(run_limapy, "rs")["rs"]
    hosts = {f["hostAddr"] for f in rec.get("portForwards", [])}
    assert {"127.0.0.1:18080", "127.0.0.1:18081"} <= hosts, rec.get("portForwards")
    released_within(3.0, wildcard, inst)
    assert answers(18081)  # the other forward goes on
    released_within(3.0, loopback, inst)
    rec = list_json(run_limapy, "rs")["rs"]
    assert not {"127.0.0.1:18080", "127.0.0.1:18081"} & {f["hostAddr"] for f in rec.get("portForwards", [])}

    # ignore: true, and a host port already taken: reported once, the next forward still works
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        listen(run_limapy, "rs", "0.0.0.0", ignored, 20)
        listen(run_limapy, "rs", "0.0.0.0", taken, 20)
        listen(run_limapy, "rs", "0.0.0.0", 18082, 20)
        within(3.0, lambda: answers(18082))
        assert not answers(ignored)
        log = (inst / "ha.stdout.log").read_text()
        assert sum(f"cannot forward guest 0.0.0.0:{taken}" in line for line in log.splitlines()) == 1, log[-2000:]

    # a guest Unix socket on the host, under the instance dir
    code, out = sh(run_limapy, "rs", "nohup timeout 30 socat UNIX-LISTEN:/tmp/limapy-e2e.sock,fork "
                                   "SYSTEM:'echo hi-socket' >/dev/null 2>&1 & sleep 1")
    assert code == 0, out
    host_sock = inst / "sock" / "e2e.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(host_sock))
        assert s.recv(64).startswith(b"hi-socket")

    # reverse: true, a host Unix socket reached from the guest
    reverse_socket_reaches_the_host(run_limapy, "rs", inst / "sock" / "rev.sock", "/tmp/limapy-rev.sock")

    # nothing of this instance listens beyond 127.0.0.1
    for pid in pids_belonging_to(limapy_home):
        for addr in listening_addresses(pid):
            assert addr.startswith(("127.0.0.1:", "[::1]:")), (pid, addr)
    assert any(e["status"].get("portForward", {}).get("type") == "forwarding" for e in events(inst))

    assert run_limapy("stop", "rs", timeout=300).returncode == 0
    assert processes_of(limapy_home) == []
    nothing_left_after_kill9(run_limapy, "rs", limapy_home)


def reverse_socket_reaches_the_host(run: RunLimapy, name: str, host_sock: Path, guest_sock: str) -> None:
    """A `reverse: true` rule: the guest connects to guestSocket and talks to the server on hostSocket."""
    code, out = sh(run, name, f"test -S {guest_sock} && stat -c %U {guest_sock}")
    assert code == 0, f"no socket {guest_sock} in the guest: {out}"
    got: list[bytes] = []
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(host_sock))
        server.listen()
        server.settimeout(60)

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"hi-reverse\n")
                conn.settimeout(10)
                got.append(conn.recv(64))

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        code, out = sh(run, name, f"echo from-guest | socat -t 5 - UNIX-CONNECT:{guest_sock}")
        t.join(30)
    assert code == 0 and out.strip() == "hi-reverse", out
    assert got and got[0].startswith(b"from-guest"), got


# --------------------------------------------------------------------------- 9p


@pytest.mark.timeout(2 * START_TIMEOUT + 180)
def test_9p_falls_back_when_the_kernel_lacks_it(
    test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    ro, rw = folders(tmp_path / "share")
    cp = run_limapy("create", "--name", "p9", *mount_sets("9p", ro, rw), test_image_template)
    assert cp.returncode == 0, cp.stderr
    assert "-virtfs" in run_limapy("start", "--dry-run", "p9").stdout
    out = start(run_limapy, "p9")
    _, has9p = sh(run_limapy, "p9", "grep -qw 9p /proc/filesystems || sudo modprobe 9p 2>/dev/null; "
                                       "grep -qw 9p /proc/filesystems && echo yes || echo no")
    native = has9p.strip() == "yes"
    if native:  # a kernel with 9p: the mounts are native
        _, mnt = sh(run_limapy, "p9", f"findmnt -n -o FSTYPE --mountpoint {ro}")
        assert mnt.strip() == "9p", mnt
        check_shares(run_limapy, "p9", ro, rw, owner=os.getuid() if os.getuid() else GUEST_UID)
    else:
        assert out.count("the guest kernel has no 9p") == 2, out  # one warning per mount, naming the fix
        assert "mountType: reverse-sshfs" in out
        _, mnt = sh(run_limapy, "p9", f"findmnt -n -o FSTYPE --mountpoint {rw}")
        assert mnt.strip() == "fuse.sshfs", mnt
        check_shares(run_limapy, "p9", ro, rw, owner=os.getuid())
    assert run_limapy("stop", "p9", timeout=300).returncode == 0
    assert processes_of(limapy_home) == []
    nothing_left_after_kill9(run_limapy, "p9", limapy_home)
    if not native:
        pytest.skip("the test image's kernel (Debian's cloud kernel) has no 9p: the fallback was checked, native "
                    "9p mounts were not")
