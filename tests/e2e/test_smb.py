"""`mountType: smb` with real parts (issue 26 item 1's host-side acceptance), under TCG: the Linux test guest
with `mountType: smb` gets the very server a Windows guest gets (limapy.guest.smb: QEMU's user network runs
limapy's smbd.sh for each connection to 192.168.5.4:445), and mounts its shares with the kernel's cifs client,
`mount -t cifs //192.168.5.4/m0`, as the generated account (its password read from the instance dir, given to
the guest on stdin):

- the read-only share refuses a write (EACCES from the server: its `read only = yes`; the guest mounted it
  read-write) and the host file is unchanged; the writable share round-trips a file both ways;
- nothing new listens on the host: no port 445 of the instance's, its processes (QEMU, smbd) listen
  on 127.0.0.1 only (SSH's forward), and no listener appeared outside loopback meanwhile;
- an smbd serves while the guest holds a mount, and none is left after `limapy stop`, nor after QEMU is
  killed with -9 (smbd runs in QEMU's guestfwd connection, in a session of its own: it ends with it).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from limapy.guest import smb
from tests.e2e.conftest import RunLimapy
from tests.e2e.guest import START_TIMEOUT, alive, wait_until
from tests.e2e.test_shares import folders, mount_sets, processes_of, sh, start

pytestmark = pytest.mark.skipif(smb.find_smbd() is None, reason="needs samba on the host (hack/setup.sh)")


def listeners() -> set[str]:
    """Every listening TCP socket on the host (local address:port, with its process when ss shows it)."""
    cp = subprocess.run(["ss", "-H", "-ltnp"], capture_output=True, text=True, check=True, timeout=30)
    return {" ".join(line.split()[3:]) for line in cp.stdout.splitlines()}


def smbd_sessions(conf: Path) -> list[int]:
    """Live processes (zombies aside) in the sessions of the smbds started with `conf`: smbd and its forks."""
    leaders = set()
    procs: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        procs[int(entry.name)] = int(fields[3])
        if str(conf).encode() in cmd:
            leaders.add(int(fields[3]))
    return sorted(pid for pid, sid in procs.items() if sid in leaders)


def mount(run: RunLimapy, name: str, index: int, secret: str, at: str = "") -> tuple[int, str]:
    """Mount share `index` at /mnt/mN (or /mnt/AT) as the account, the password on stdin (cifs-utils is not in
    the test image: util-linux hands the options to the kernel's cifs, which needs no helper for an IP address)."""
    ip, user, i = smb.SERVER, smb.account(), index
    options = f"ip={ip},username={user},password=$p,vers=3.1.1,uid=$(id -u),gid=$(id -g),file_mode=0644,dir_mode=0755"
    mp = f"/mnt/{at or f'm{i}'}"
    script = (f"IFS= read -r p; sudo -n modprobe cifs 2>/dev/null; sudo -n mkdir -p {mp} && "
              f'sudo -n mount -t cifs //{ip}/m{i} {mp} -o "{options}"')  # fmt: skip
    cp = run("shell", name, "--", "sh", "-c", script, timeout=180, input=secret + "\n")
    return cp.returncode, cp.stdout + cp.stderr


@pytest.mark.timeout(3 * START_TIMEOUT + 300)
def test_smb_from_the_linux_guest(test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy,
                                  tmp_path: Path) -> None:  # fmt: skip
    ro, rw = folders(tmp_path / "share")
    before = listeners()
    cp = run_limapy("create", "--name", "smb", *mount_sets("smb", ro, rw), test_image_template)
    assert cp.returncode == 0, cp.stderr
    start(run_limapy, "smb")
    inst = limapy_home / "smb"
    conf = inst / "smb" / smb.CONF
    secret = (inst / "smb" / smb.PASSWORD).read_text().strip()

    code, out = sh(run_limapy, "smb", "sudo -n modprobe cifs; grep -qw cifs /proc/filesystems")
    assert code == 0, f"the test guest's kernel has no cifs: {out}"
    assert smbd_sessions(conf) == [], "no smbd runs before the guest connects"
    for i in (0, 1):
        code, out = mount(run_limapy, "smb", i, secret)
        assert code == 0, out
    assert smbd_sessions(conf), "an smbd serves the guest's connection"

    # read-only: the guest mounted it read-write; the server refuses
    code, out = sh(run_limapy, "smb", "cat /mnt/m0/hello.txt && echo overwritten > /mnt/m0/hello.txt")
    assert code != 0 and out.startswith("from the host\n") and "Permission denied" in out, out
    code, out = sh(run_limapy, "smb", "touch /mnt/m0/new.txt")
    assert code != 0 and "Permission denied" in out, out
    assert (ro / "hello.txt").read_text() == "from the host\n" and sorted(os.listdir(ro)) == ["hello.txt"]
    # writable: both ways
    code, out = sh(run_limapy, "smb", "echo from-the-guest > /mnt/m1/guest.txt && cat /mnt/m1/guest.txt")
    assert code == 0, out
    assert (rw / "guest.txt").read_text() == "from-the-guest\n"
    (rw / "host.txt").write_text("from-the-host\n")
    code, out = sh(run_limapy, "smb", "cat /mnt/m1/host.txt")
    assert (code, out) == (0, "from-the-host\n"), out
    # a wrong password does not get in
    code, out = mount(run_limapy, "smb", 1, "not-" + secret, at="wrong")
    assert code != 0, out

    # nothing listens for SMB on the host; the instance listens on loopback only
    during = listeners()
    qemu = int((inst / "qemu.pid").read_text())
    ours = {qemu, *smbd_sessions(conf), *(int(p.split(":")[0]) for p in processes_of(limapy_home))}
    mine = [sock for sock in during if any(f"pid={pid}," in sock for pid in ours)]
    # no SMB port of the instance's own (a host's system smbd, if samba's package started one, is not limapy's)
    assert not [sock for sock in mine if sock.split()[0].endswith(":445")], mine
    assert mine and all(sock.split()[0].startswith("127.0.0.1:") for sock in mine), mine
    # compared with before the instance existed: what it added listens on loopback only
    new = [sock for sock in during - before if any(f"pid={pid}," in sock for pid in ours)]
    assert new and all(sock.split()[0].startswith("127.0.0.1:") for sock in new), new

    # gone after stop
    cp = run_limapy("stop", "smb", timeout=300)
    assert cp.returncode == 0, cp.stderr
    wait_until(lambda: smbd_sessions(conf) == [], 30, "every smbd to end after stop")
    wait_until(lambda: processes_of(limapy_home) == [], 30, "every process of the instance to end after stop")

    # gone after QEMU is killed with -9
    start(run_limapy, "smb")
    code, out = mount(run_limapy, "smb", 1, secret)
    assert code == 0, out
    served = smbd_sessions(conf)
    assert served
    qemu = int((inst / "qemu.pid").read_text())
    os.kill(qemu, signal.SIGKILL)
    wait_until(lambda: not any(alive(p) for p in served) and smbd_sessions(conf) == [], 30,
               "every smbd to end after QEMU was killed")  # fmt: skip
    wait_until(lambda: processes_of(limapy_home) == [], 60, "every process of the instance to end")
