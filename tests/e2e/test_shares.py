"""Host folders and ports in a real guest (issue 12 acceptance), under TCG:

- virtiofs (QEMU's virtiofsd sidecars) and reverse-sshfs (sshfs -o slave in the guest, limapy's confined
  SFTP server on the host): a host file is read in the guest; a guest write in a writable mount lands on
  the host; a write in a read-only mount fails and the host file is unchanged; nothing of the instance runs
  after `stop`, nor after QEMU is killed with -9.
- 9p: the test image's Debian cloud kernel has no 9p, so the mount falls back to reverse-sshfs with one
  warning (and native 9p is skipped, saying why).
- Automatic port forwards on the reverse-sshfs guest: 0.0.0.0 and 127.0.0.1 listeners answer on the host's
  127.0.0.1 within 3 s and stop within 3 s of closing; `ignore: true` keeps a port closed; a port already
  taken on the host is reported once and other forwards go on; a guestSocket reaches its hostSocket;
  nothing of the instance listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from limapy.netutil import free_port
from tests.e2e.conftest import RunLimapy
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


def processes_of(inst: Path) -> list[str]:
    """Command lines naming the instance dir (virtiofsd, swtpm, QEMU, ssh masters): none after a stop."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(inst) in cmd and "pytest" not in cmd:
                out.append(cmd)
    return out


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
    inst = limapy_home / "vf"
    start(run_limapy, "vf")
    code, out = sh(run_limapy, "vf", f"findmnt -n -o FSTYPE,OPTIONS --mountpoint {ro}")
    assert code == 0 and out.startswith("virtiofs ro"), out
    assert [p for p in processes_of(inst) if "virtiofsd" in p], "a virtiofsd per mount runs beside QEMU"
    # virtiofs passes the guest's own uid through (Lima's default guest user has the host user's uid)
    check_shares(run_limapy, "vf", ro, rw, owner=os.getuid() if os.getuid() else GUEST_UID)
    assert run_limapy("stop", "vf", timeout=300).returncode == 0
    assert processes_of(inst) == []

    start(run_limapy, "vf")
    qemu = int((inst / "qemu.pid").read_text())
    agent = int((inst / "ha.pid").read_text())
    os.kill(qemu, signal.SIGKILL)
    wait_until(lambda: not alive(agent), 60, "the host agent to notice QEMU's death")
    wait_until(lambda: processes_of(inst) == [], 30, "virtiofsd to be gone after QEMU was killed")


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


@pytest.mark.timeout(START_TIMEOUT + 400)
def test_reverse_sshfs_and_port_forwards(
    test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    ro, rw = folders(tmp_path / "share")
    ignored, taken = free_port(), free_port()
    forwards = (f'[{{guestPort: {ignored}, ignore: true}}, '
                f'{{guestSocket: "/tmp/limapy-e2e.sock", hostSocket: "e2e.sock"}}]')  # fmt: skip
    cp = run_limapy("create", "--name", "rs", *mount_sets("reverse-sshfs", ro, rw),
                    "--set", f".portForwards = {forwards}", test_image_template)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    inst = limapy_home / "rs"
    out = start(run_limapy, "rs")
    assert "(reverse-sshfs)" in out
    _, mnt = sh(run_limapy, "rs", f"findmnt -n -o FSTYPE --mountpoint {rw}")
    assert mnt.strip() == "fuse.sshfs", mnt
    check_shares(run_limapy, "rs", ro, rw, owner=os.getuid())  # sftp runs as the host user: files are theirs

    # 0.0.0.0 and 127.0.0.1 listeners: forwarded within 3 s, gone within 3 s of closing
    wildcard, loopback = 18080, 18081
    listen(run_limapy, "rs", "0.0.0.0", wildcard, 25)
    listen(run_limapy, "rs", "127.0.0.1", loopback, 25)
    assert within(3.0, lambda: answers(wildcard) and answers(loopback)) <= 3.0
    rec = list_json(run_limapy, "rs")["rs"]
    hosts = {f["hostAddr"] for f in rec.get("portForwards", [])}
    assert {f"127.0.0.1:{wildcard}", f"127.0.0.1:{loopback}"} <= hosts, rec.get("portForwards")
    wait_until(lambda: not answers(wildcard), 25 + 3.0, "the forward to close after the listener ended")

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

    # nothing of this instance listens beyond 127.0.0.1
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _names(int(p), inst)]
    for pid in pids:
        for addr in listening_addresses(pid):
            assert addr.startswith(("127.0.0.1:", "[::1]:")), (pid, addr)
    events = [json.loads(line) for line in (inst / "ha.stdout.log").read_text().splitlines() if line.strip()]
    assert any((e.get("status") or {}).get("portForward", {}).get("type") == "forwarding" for e in events)

    assert run_limapy("stop", "rs", timeout=300).returncode == 0
    assert processes_of(inst) == []


def _names(pid: int, inst: Path) -> bool:
    try:
        return str(inst) in (Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
    except OSError:
        return False


# --------------------------------------------------------------------------- 9p


@pytest.mark.timeout(START_TIMEOUT + 180)
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
    if has9p.strip() == "yes":  # a kernel with 9p: the mounts are native
        _, mnt = sh(run_limapy, "p9", f"findmnt -n -o FSTYPE --mountpoint {ro}")
        assert mnt.strip() == "9p", mnt
        check_shares(run_limapy, "p9", ro, rw, owner=os.getuid() if os.getuid() else GUEST_UID)
        return
    assert out.count("the guest kernel has no 9p") == 2, out  # one warning per mount, naming the fix
    assert "mountType: reverse-sshfs" in out
    check_shares(run_limapy, "p9", ro, rw, owner=os.getuid())
    assert run_limapy("stop", "p9", timeout=300).returncode == 0
    pytest.skip("the test image's kernel (Debian's cloud kernel) has no 9p: the fallback was checked, native "
                "9p mounts were not")
