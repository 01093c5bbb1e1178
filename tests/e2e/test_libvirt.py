"""The libvirt driver end to end (issue 16): the test image booted by a real libvirtd through qemu:///system
(domain type `qemu`, TCG), and again through a "remote" qemu+ssh:// URI against an sshd this test starts on
127.0.0.1 with a throwaway key, so the volume uploads and the SSH hop to the guest run for real.

Local: create -> start (ready) -> shell exit codes, provisioning, a reverse-sshfs mount, a static forward ->
suspend (managedsave) -> start resumes (memory kept) -> graceful stop -> start (data kept) -> delete leaves no
domain, volume or NVRAM. Remote: create -> start -> shell and copy through the host -> delete leaves nothing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from limapy.base.netutil import free_port
from tests.e2e.conftest import LIBVIRT_SYSTEM as SYSTEM
from tests.e2e.conftest import RunLimapy, make_runner
from tests.e2e.guest import START_TIMEOUT, list_json, template_with
from tests.e2e.lvrig import nothing_left, virsh

PROVISION = """\
provision:
- mode: data
  path: /etc/limapy-e2e/data.txt
  content: |
    hello through libvirt
- mode: system
  script: |
    #!/bin/sh
    test -f /etc/limapy-e2e/data.txt && echo after-data >/var/tmp/prov-system
"""


@pytest.mark.timeout(4 * START_TIMEOUT + 600)
@pytest.mark.usefixtures("libvirtd")
def test_local_lifecycle(test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "from-host.txt").write_text("host file\n")
    port = free_port()
    extra = PROVISION + (
        f"portForwards:\n- guestPort: 8080\n  hostPort: {port}\n  static: true\n"
        f"mountType: virtiofs\n"  # the libvirt driver mounts over reverse-sshfs whatever is asked
    )
    tmpl = template_with(test_image_template, tmp_path / "lv.yaml", extra)
    tmpl.write_text(tmpl.read_text().replace("mounts: []", f"mounts:\n- location: {share}\n  writable: true"))
    name = "lv"
    cp = run_limapy("create", "--driver", "libvirt", "--connect", SYSTEM, "--name", name, tmpl)
    assert cp.returncode == 0, cp.stderr
    try:
        cp = run_limapy("start", name, timeout=START_TIMEOUT)
        assert cp.returncode == 0, cp.stderr
        assert "reverse-sshfs" in cp.stderr, cp.stderr
        rec = list_json(run_limapy)[name]
        assert rec["status"] == "Running" and rec["driver"] == "libvirt" and rec["vmType"] == "qemu"
        assert virsh("domstate", f"limapy-{name}").strip() == "running"
        from limapy.driver.libvirt.domain import metadata_of

        meta = metadata_of(virsh("dumpxml", f"limapy-{name}"))
        assert meta is not None and meta["name"] == name and meta["dir"] == str(limapy_home / name), meta
        cp = run_limapy("list", "--connect", SYSTEM, "--json")  # the host's limapy domains, this one here
        assert cp.returncode == 0, cp.stderr
        rows = {r["domain"]: r for r in map(json.loads, cp.stdout.splitlines())}
        assert rows[f"limapy-{name}"]["status"] == "Running" and rows[f"limapy-{name}"]["here"] is True, rows

        # shell: exit codes pass through; provisioning ran in order; the mount is the host folder
        assert run_limapy("shell", name, "--", "sh", "-c", "exit 7").returncode == 7
        cp = run_limapy("shell", name, "cat", "/var/tmp/prov-system", "/etc/limapy-e2e/data.txt")
        assert cp.returncode == 0 and cp.stdout == "after-data\nhello through libvirt\n", cp.stderr
        cp = run_limapy("shell", name, "cat", f"{share}/from-host.txt")
        assert cp.returncode == 0 and cp.stdout == "host file\n", cp.stderr
        cp = run_limapy("shell", name, "--", "sh", "-c", f"echo guest >{share}/from-guest.txt")
        assert cp.returncode == 0, cp.stderr
        assert (share / "from-guest.txt").read_text() == "guest\n"

        # the static forward: 127.0.0.1:port on this host reaches the guest's 8080
        serve = "nohup python3 -m http.server 8080 </dev/null >/dev/null 2>&1 & "
        serve += "until python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8080))' 2>/dev/null; "
        serve += "do sleep 1; done"
        assert run_limapy("shell", name, "--", "sh", "-c", f"cd /etc/limapy-e2e && {serve}").returncode == 0
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET /data.txt HTTP/1.0\r\n\r\n")
            body = b""
            while chunk := s.recv(4096):
                body += chunk
        assert body.endswith(b"hello through libvirt\n"), body

        # suspend through managedsave; start resumes the very guest (tmpfs content survives)
        assert run_limapy("shell", name, "touch", "/dev/shm/mark").returncode == 0
        cp = run_limapy("suspend", name, timeout=600)
        assert cp.returncode == 0, cp.stderr
        assert list_json(run_limapy)[name]["status"] == "Suspended"
        assert virsh("domstate", f"limapy-{name}").strip() == "shut off"
        cp = run_limapy("start", name, timeout=START_TIMEOUT)
        assert cp.returncode == 0 and "[resuming]" in cp.stderr, cp.stderr
        assert run_limapy("shell", name, "ls", "/dev/shm/mark").returncode == 0

        # graceful stop: the guest powers down by ACPI (no destroy), data written before is kept
        assert run_limapy("shell", name, "--", "sh", "-c", "echo kept >~/data; sync").returncode == 0
        t0 = time.monotonic()
        cp = run_limapy("stop", name, timeout=300)
        assert cp.returncode == 0, cp.stderr
        assert virsh("domstate", f"limapy-{name}").strip() == "shut off"
        assert time.monotonic() - t0 < 180
        assert list_json(run_limapy)[name]["status"] == "Stopped"
        cp = run_limapy("start", name, timeout=START_TIMEOUT)
        assert cp.returncode == 0 and "[resuming]" not in cp.stderr, cp.stderr
        cp = run_limapy("shell", name, "cat", "data")
        assert (cp.returncode, cp.stdout) == (0, "kept\n"), cp.stderr
        assert run_limapy("shell", name, "ls", "/dev/shm/mark").returncode != 0  # a boot, not a resume
    finally:
        cp = run_limapy("delete", "-f", name, timeout=300)
    assert cp.returncode == 0, cp.stderr
    nothing_left(name)


# -- a "remote" libvirt host: this machine, reached over SSH -------------------------------------------------


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[str]:
    """An sshd on 127.0.0.1 that lets root in with a throwaway key; the qemu+ssh:// URI that uses it."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists():
        pytest.skip("sshd is not installed (openssh-server)")
    d = tmp_path / "sshd"
    d.mkdir()
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = free_port()
    (d / "config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\nPidFile {d / 'pid'}\nAllowTcpForwarding yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    p = subprocess.Popen([binary, "-D", "-e", "-f", str(d / "config")], stderr=open(d / "log", "wb"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert p.poll() is None and time.monotonic() < deadline, (d / "log").read_text()
                time.sleep(0.2)
        yield f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={d / 'client'}&no_verify=1"
    finally:
        p.terminate()
        p.wait(10)


@pytest.mark.timeout(2 * START_TIMEOUT + 300)
@pytest.mark.usefixtures("libvirtd")
def test_remote_host(test_image_template: Path, limapy_home: Path, sshd: str, tmp_path: Path) -> None:
    run = make_runner(limapy_home)
    name = "rv"
    cp = run("create", "--driver", "libvirt", "--connect", sshd, "--name", name, test_image_template)
    assert cp.returncode == 0, cp.stderr
    inst = limapy_home / name
    assert (inst / "driver.uri").read_text().strip() == sshd
    try:
        cp = run("start", name, timeout=START_TIMEOUT)
        assert cp.returncode == 0, cp.stderr
        config = (inst / "ssh.config").read_text()
        assert "ProxyCommand" in config and "-W" in config, config  # the guest is reached through the host
        # A remote host's KVM is taken when its libvirt offers it; here (nested) it fails once the guest runs,
        # and the domain is run again under TCG, which `start` says.
        kvm = subprocess.run(["virsh", "-c", sshd, "domcapabilities", "--virttype", "kvm"], capture_output=True,
                             timeout=60, check=False).returncode == 0  # fmt: skip
        dtype = ET.fromstring(virsh("dumpxml", f"limapy-{name}", uri=sshd)).get("type")
        if kvm and dtype == "qemu":
            assert "KVM failed on the libvirt host" in cp.stderr and "runs emulated (TCG)" in cp.stderr, cp.stderr
        cp = run("shell", name, "uname", "-n")
        assert (cp.returncode, cp.stdout) == (0, f"lima-{name}\n"), cp.stderr
        assert run("shell", name, "--", "sh", "-c", "exit 3").returncode == 3
        src = tmp_path / "up.txt"
        src.write_text("through the hop\n")
        assert run("copy", src, f"{name}:/tmp/up.txt").returncode == 0
        cp = run("shell", name, "cat", "/tmp/up.txt")
        assert cp.stdout == "through the hop\n", cp.stderr
        back = tmp_path / "down.txt"
        assert run("copy", f"{name}:/tmp/up.txt", back).returncode == 0
        assert back.read_text() == "through the hop\n"
        assert list_json(run)[name]["driver"] == "libvirt"
    finally:
        cp = run("delete", "-f", name, timeout=300)
    assert cp.returncode == 0, cp.stderr
    nothing_left(name, sshd)
