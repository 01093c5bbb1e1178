"""Mounts and port forwards, host side: the guest's /proc/net/tcp rows, Lima's rule order, the confined SFTP
server of reverse-sshfs, virtiofsd's command lines and its supervision as a sidecar."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from limapy.agent import forwards, sftpjail
from limapy.config.model import PortForward, Spec
from limapy.driver.qemu.planner import virtiofsd_sidecar
from limapy.driver.sidecars import Supervisor, stop_leftovers
from limapy.guest.linux import listeners
from limapy.guest.linux.listeners import Listener
from limapy.instance import pids, store
from limapy.qemu import virtiofsd

# --------------------------------------------------------------------------- listeners


@pytest.mark.parametrize(
    ("row", "ip", "port"),
    [
        ("0100007F:1F90", "127.0.0.1", 8080),
        ("00000000:1F91", "0.0.0.0", 8081),
        ("0F05A8C0:0050", "192.168.5.15", 80),
        ("00000000000000000000000000000000:1F92", "::", 8082),
        ("00000000000000000000000001000000:1F93", "::1", 8083),
        ("0000000000000000FFFF00000100007F:1F94", "127.0.0.1", 8084),  # IPv4-mapped
    ],
)
def test_proc_net_tcp_addresses(row: str, ip: str, port: int) -> None:
    assert listeners.parse_address(row) == Listener(ip, port)


def test_bad_rows_are_skipped() -> None:
    assert listeners.parse_address("zz:1F90") is None
    assert listeners.parse_address("0100007F:0000") is None
    assert listeners.parse_snapshot(["", "0100007F:1F90", "junk"]) == {Listener("127.0.0.1", 8080)}


def test_watch_script_reads_this_hosts_listeners() -> None:
    """The guest-side loop, run by a real sh + awk against this host's /proc: one snapshot that holds a
    socket this test listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.Popen(["sh", "-c", listeners.WATCH_SCRIPT], stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout is not None
            lines = []
            for line in p.stdout:
                if line.strip() == "--":
                    break
                lines.append(line)
        finally:
            p.kill()
            p.wait()
    assert Listener("127.0.0.1", port) in listeners.parse_snapshot(lines)


# --------------------------------------------------------------------------- rules


def spec(*rules: dict[str, object]) -> Spec:
    from limapy.config.defaults import _fill_port_forward

    filled = [_fill_port_forward(dict(r), {}, {}, "/inst") for r in rules]
    return Spec.from_cfg({"arch": "x86_64", "portForwards": filled})


def decide(s: Spec, ip: str, port: int) -> int | None:
    return forwards.decide(forwards.rules(s), Listener(ip, port), reserved={60022}).host_port


def test_default_rule_forwards_loopback_and_wildcard_listeners_to_the_same_port() -> None:
    s = spec()
    for ip in ("0.0.0.0", "127.0.0.1", "::", "::1"):
        assert decide(s, ip, 8080) == 8080
    assert decide(s, "192.168.5.15", 8080) is None  # a specific address needs a rule naming it (or 0.0.0.0)
    assert decide(s, "0.0.0.0", 22) is None  # guest sshd, never
    assert decide(s, "0.0.0.0", 80) is None  # privileged on the host
    assert decide(s, "0.0.0.0", 60022) is None  # the instance's own SSH forward


def test_rules_in_order_first_match_wins() -> None:
    s = spec(
        {"guestPort": 8080, "ignore": True},
        {"guestPortRange": [8000, 8100], "hostPortRange": [18000, 18100]},
        {"guestPort": 80, "hostPort": 8888},
        {"guestIP": "0.0.0.0", "guestPort": 9000},
        {"guestPort": 9001, "guestIPMustBeZero": True},
        {"guestPort": 9002, "static": True},
        {"guestIP": "0.0.0.0", "guestIPMustBeZero": False, "guestPort": 9003},
    )
    assert decide(s, "0.0.0.0", 8080) is None  # ignored before the range rule
    assert decide(s, "127.0.0.1", 8081) == 18081
    assert decide(s, "0.0.0.0", 80) == 8888  # a rule can take a privileged guest port
    # Lima fills guestIPMustBeZero from guestIP (defaults.go line 1003): a rule for 0.0.0.0 matches exactly
    # that address (hostagent/port.go line 102); with guestIPMustBeZero: false it takes any address
    assert decide(s, "192.168.5.15", 9000) is None
    assert decide(s, "0.0.0.0", 9000) == 9000
    assert decide(s, "192.168.5.15", 9003) == 9003
    assert decide(s, "127.0.0.1", 9001) == 9001  # must-be-zero did not match: the default rule did
    assert forwards.decide(forwards.rules(s), Listener("0.0.0.0", 9001)).forwarded
    assert forwards.decide(forwards.rules(s), Listener("0.0.0.0", 9002)).reason == "static"


def test_guest_targets() -> None:
    assert forwards.guest_target(Listener("0.0.0.0", 1)) == "127.0.0.1"
    assert forwards.guest_target(Listener("::", 1)) == "[::1]"
    assert forwards.guest_target(Listener("192.168.5.15", 1)) == "192.168.5.15"
    assert forwards.guest_target(Listener("fe80::1", 1)) == "[fe80::1]"


def test_relative_host_socket_lives_in_the_instance_dir() -> None:
    s = spec({"guestSocket": "/run/docker.sock", "hostSocket": "docker.sock"})
    assert s.port_forwards[0].host_socket == "/inst/sock/docker.sock"
    assert forwards.rules(s)[1:] == [PortForward(guest_port_range=(1, 65535), host_port_range=(1, 65535))]


# --------------------------------------------------------------------------- the confined SFTP server


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (tmp_path / "secret").write_text("host secret")
    (root / "out").symlink_to(tmp_path / "secret")  # absolute, leaves the mount
    (root / "up").symlink_to("../secret")  # relative, leaves the mount
    (root / "in").symlink_to("sub")  # stays inside
    return root


def test_jail_resolves_inside_and_refuses_escapes(tree: Path) -> None:
    jail = sftpjail.Jail(tree)
    assert jail.host("/a.txt") == str(tree / "a.txt")
    assert jail.host("/../../a.txt") == str(tree / "a.txt")  # `..` stops at the mount's root
    assert jail.host("/in") == str(tree / "sub")
    for escape in ("/out", "/up", "/in/../up"):
        with pytest.raises(PermissionError):
            jail.host(escape)
    assert jail.host("/out", follow_last=False) == str(tree / "out")  # the link itself (lstat, unlink)
    assert jail.guest(str(tree / "sub")) == "/sub"


def test_sftp_interface_reads_inside_only(tree: Path) -> None:
    import paramiko

    si = sftpjail.JailedSFTP(None, root=tree, read_only=False)
    names = {a.filename for a in si.list_folder("/")}
    assert names == {"a.txt", "sub", "out", "up", "in"}
    assert si.stat("/out") == paramiko.sftp.SFTP_PERMISSION_DENIED  # following it would leave the mount
    assert isinstance(si.lstat("/out"), paramiko.SFTPAttributes)
    assert si.open("/out", os.O_RDONLY, paramiko.SFTPAttributes()) == paramiko.sftp.SFTP_PERMISSION_DENIED
    h = si.open("/a.txt", os.O_RDONLY, paramiko.SFTPAttributes())
    assert h.read(0, 10) == b"a"
    assert si.canonicalize("/../..") == "/"
    w = si.open("/new.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, paramiko.SFTPAttributes())
    w.write(0, b"written")
    w.close()
    assert (tree / "new.txt").read_text() == "written"
    assert si.rename("/new.txt", "/a.txt") != sftpjail.SFTP_OK  # v3 rename does not replace
    assert si.posix_rename("/new.txt", "/a.txt") == sftpjail.SFTP_OK


def test_read_only_mount_refuses_every_change(tree: Path) -> None:
    import paramiko

    si = sftpjail.JailedSFTP(None, root=tree, read_only=True)
    denied = sftpjail.SFTP_PERMISSION_DENIED
    attr = paramiko.SFTPAttributes()
    assert si.open("/a.txt", os.O_WRONLY, attr) == denied
    assert si.open("/x", os.O_WRONLY | os.O_CREAT, attr) == denied
    assert si.remove("/a.txt") == denied and si.mkdir("/d", attr) == denied and si.rmdir("/sub") == denied
    assert si.rename("/a.txt", "/b") == denied and si.symlink("/etc", "/l") == denied
    assert si.chattr("/a.txt", attr) == denied
    assert sorted(p.name for p in tree.iterdir()) == ["a.txt", "in", "out", "sub", "up"]
    assert (tree / "a.txt").read_text() == "a"


# --------------------------------------------------------------------------- virtiofsd


def test_virtiofsd_argv_per_implementation(tmp_path: Path) -> None:
    c = virtiofsd.Virtiofsd("/usr/lib/qemu/virtiofsd", rust=False)
    rw = virtiofsd.argv(c, source=tmp_path, sock=tmp_path / "v.sock", writable=True, uid=0)
    assert rw == ["/usr/lib/qemu/virtiofsd", f"--socket-path={tmp_path / 'v.sock'}", "-o", f"source={tmp_path}",
                  "-o", "cache=auto"]  # fmt: skip
    ro = virtiofsd.argv(c, source=tmp_path, sock=tmp_path / "v.sock", writable=False, uid=0)
    assert ro[:4] == ["unshare", "--mount", "--propagation", "private"] and ro[-len(rw) :] == rw
    assert ro[ro.index("virtiofsd") + 1 : ro.index("virtiofsd") + 3] == ["ro", str(tmp_path)]
    rust = virtiofsd.Virtiofsd("/usr/libexec/virtiofsd", rust=True)
    user = virtiofsd.argv(rust, source=tmp_path, sock=tmp_path / "v.sock", writable=True, uid=1000)
    assert user[:3] == ["unshare", "--user", "--map-root-user"] and "--sandbox=none" in user


def test_wrapper_takes_the_folder_as_data(tmp_path: Path) -> None:
    """The read-only wrapper's shell never sees the folder's name as code."""
    hostile = tmp_path / 'x"; touch pwned; echo "'
    out = subprocess.run(["sh", "-c", virtiofsd._WRAPPER, "virtiofsd", "rw", str(hostile), "printf", "%s", "ok"],
                         capture_output=True, text=True, cwd=tmp_path, check=True)  # fmt: skip
    assert out.stdout == "ok" and not (tmp_path / "pwned").exists()


def test_virtiofsd_found_through_descriptors(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "virtiofsd-c"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    d = tmp_path / "vhost-user"
    d.mkdir()
    (d / "50-fs.json").write_text(f'{{"type": "fs", "binary": "{binary}"}}')
    (d / "40-gpu.json").write_text('{"type": "gpu", "binary": "/nope"}')
    found = virtiofsd.find(which=lambda _n: None, descriptor_dirs=[d])
    assert found.binary == str(binary) and found.rust  # not QEMU's own path: the standalone flavour


def test_supervisor_writes_the_pid_file_and_leftovers_are_stopped(tmp_path: Path) -> None:
    """A sidecar that does not write its own pid file (virtiofsd) gets one; after a crash of its supervisor
    it is found by that pid file and its marks (its socket path) and stopped."""
    inst = store.Instance("vm", tmp_path)
    sock = inst.virtiofsd_sock(0)
    serve = ("import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen();"
             " time.sleep(60)")  # fmt: skip
    sc = virtiofsd_sidecar(inst, 0, [sys.executable, "-c", serve, str(sock), f"--socket-path={sock}"])
    sup = Supervisor()
    pid = sup.start(sc)
    assert inst.virtiofsd_pid(0).read_text().strip() == str(pid)
    assert pids.live(sc.pidfile, sc.marks) == pid
    sup.running.clear()  # the host agent died: nobody will stop it
    stop_leftovers([sc])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pids.alive(pid) and not pids._zombie(pid):
        time.sleep(0.05)
    assert not pids.alive(pid) or pids._zombie(pid)
    assert not sc.pidfile.exists() and not sock.exists()


# --------------------------------------------------------------------------- stop order (issue 29: stop <= 1.2x)


@pytest.mark.parametrize("mounted", [False, True])
def test_stop_asks_for_the_power_down_as_soon_as_nothing_needs_the_guest(tmp_path: Path, mounted: bool) -> None:
    """With folders mounted in the guest, its power-down is asked right after they are unmounted, before the
    ControlMaster is closed (without any, the host agent asks first and tidies once the guest is off:
    tests/integration/test_stop_waits.py)."""
    import threading

    from limapy.agent.services import Services

    order: list[str] = []

    class Folders:
        def unmount(self, conn: object, live: list[object]) -> None:
            order.append(f"unmount {len(live)}")

    class Forwarder:
        def close(self) -> None:
            order.append("master closed")

    svc = Services(store.Instance("vm", tmp_path), Spec.from_cfg({"arch": "x86_64"}), object(), ssh_port=60022,
                   emit=lambda **ev: None)  # fmt: skip
    svc.folders = Folders()  # type: ignore[assignment]
    svc.forwarder = Forwarder()  # type: ignore[assignment]
    svc.live = ["a mount"] if mounted else []
    svc.thread = threading.Thread(target=lambda: (time.sleep(0.3), order.append("thread ended")))
    svc.thread.start()
    svc.stop(then=lambda: order.append("power-down"))
    assert order == ["thread ended", f"unmount {int(mounted)}", "power-down", "master closed"]
