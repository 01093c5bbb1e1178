"""Boot the test image straight with QEMU, without limapy: the floor the e2e suite and the benchmark
compare limapy against, and the proof that the image itself works.

Public helpers:
    load_image(template_yaml) -> TestImage
    write_minimal_seed(path, user, public_key, hostname="lima-test") -> Path
    direct_argv(image, overlay, seed_iso, ssh_port, workdir, accel="tcg") -> list[str]
    boot_direct(template_yaml, workdir, seed_iso, ssh_port, key) -> subprocess.Popen[bytes]
    wait_ssh(port, key, user, timeout, command="true", proc=None) -> subprocess.CompletedProcess[str]
    stop_direct(proc, timeout=10.0) -> None
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from limapy.base.units import parse_size

QEMU = "qemu-system-x86_64"
DEFAULT_USER = "limatest"


@dataclass(frozen=True)
class TestImage:
    """What a hack/build-test-image.sh template points at."""

    __test__ = False  # not a pytest test class

    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str
    disk_size: int
    memory: int
    cpus: int


def load_image(template_yaml: Path) -> TestImage:
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load(Path(template_yaml).read_text())
    image = next(i for i in doc["images"] if i.get("arch", "x86_64") == "x86_64")
    return TestImage(
        disk=Path(image["location"]),
        kernel=Path(image["kernel"]["location"]),
        initrd=Path(image["initrd"]["location"]),
        cmdline=str(image["kernel"].get("cmdline", "root=LABEL=rootfs rw console=ttyS0")),
        disk_size=parse_size(doc.get("disk", "4GiB")),
        memory=parse_size(doc.get("memory", "1GiB")),
        cpus=int(doc.get("cpus", 2)),
    )


def write_minimal_seed(
    path: Path, user: str, public_key: str, hostname: str = "lima-test", instance_id: str | None = None
) -> Path:
    """A NoCloud seed (label cidata, Joliet + Rock Ridge) with one passwordless-sudo user and a key.

    user-data is written as JSON (valid YAML) so nothing needs escaping by hand.
    """
    import pycdlib

    user_data = (
        "#cloud-config\n"
        + json.dumps(
            {
                "users": [
                    {
                        "name": user,
                        "shell": "/bin/bash",
                        "sudo": "ALL=(ALL) NOPASSWD:ALL",
                        "lock_passwd": True,
                        "ssh_authorized_keys": [public_key.strip()],
                    }
                ],
                # Without it sudo says "unable to resolve host".
                "manage_etc_hosts": "localhost",
            },
            indent=2,
        )
        + "\n"
    )
    meta_data = (
        json.dumps({"instance-id": instance_id or f"iid-{uuid.uuid4().hex[:12]}", "local-hostname": hostname}) + "\n"
    )

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, iso_name, text in (
        ("user-data", "/USERDATA.;1", user_data),
        ("meta-data", "/METADATA.;1", meta_data),
    ):
        data = text.encode()
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path=f"/{name}")
    tmp = path.with_name(path.name + ".tmp")
    iso.write(str(tmp))
    iso.close()
    os.replace(tmp, path)
    return path


def direct_argv(
    image: TestImage, overlay: Path, seed_iso: Path, ssh_port: int, workdir: Path, accel: str = "tcg"
) -> list[str]:
    """q35, direct kernel boot, virtio disk and NIC, the seed as a virtio-scsi CD (the Debian cloud
    kernel has no AHCI driver), SSH forwarded on 127.0.0.1 only, serial console to workdir/serial.log,
    QMP on workdir/qmp.sock."""
    cpu = "max" if accel == "tcg" else "host"
    return [
        QEMU,
        "-machine", "q35",
        "-accel", accel,
        "-cpu", cpu,
        "-smp", str(image.cpus),
        "-m", str(image.memory // (1024 * 1024)),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", image.cmdline,
        "-drive", f"if=none,id=disk0,file={overlay},format=qcow2,discard=unmap",
        "-device", "virtio-blk-pci,drive=disk0",
        "-device", "virtio-scsi-pci,id=scsi0",
        "-drive", f"if=none,id=seed,file={seed_iso},format=raw,media=cdrom,readonly=on",
        "-device", "scsi-cd,bus=scsi0.0,drive=seed",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device", "virtio-net-pci,netdev=net0",
        "-device", "virtio-rng-pci",
        "-chardev", f"file,id=serial0,path={workdir / 'serial.log'}",
        "-serial", "chardev:serial0",
        "-qmp", f"unix:{workdir / 'qmp.sock'},server=on,wait=off",
        "-pidfile", str(workdir / "qemu.pid"),
    ]  # fmt: skip


def boot_direct(
    template_yaml: Path, workdir: Path, seed_iso: Path | None, ssh_port: int, key: Path
) -> subprocess.Popen[bytes]:
    """Start QEMU on a fresh overlay of the template's image; returns at once (the guest is booting).

    With seed_iso None a minimal seed is written to workdir/cidata.iso for user `limatest` and the
    public half of `key` (key.pub). QEMU's stdout/stderr go to workdir/qemu.log.
    """
    image = load_image(template_yaml)
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.disk),
         str(overlay), str(image.disk_size)],
        check=True, capture_output=True,
    )  # fmt: skip
    if seed_iso is None:
        public_key = Path(str(key) + ".pub").read_text()
        seed_iso = write_minimal_seed(workdir / "cidata.iso", DEFAULT_USER, public_key)
    argv = direct_argv(image, overlay, seed_iso, ssh_port, workdir)
    with open(workdir / "qemu.log", "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def ssh_argv(port: int, key: Path, user: str, connect_timeout: int = 5) -> list[str]:
    return [
        "ssh",
        "-F", "/dev/null",
        "-p", str(port),
        "-i", str(key),
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
        f"{user}@127.0.0.1",
    ]  # fmt: skip


def wait_ssh(
    port: int,
    key: Path,
    user: str = DEFAULT_USER,
    timeout: float = 180.0,
    command: str = "true",
    proc: subprocess.Popen[bytes] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Retry `ssh ... command` until SSH itself succeeds (exit status other than 255); return that run.

    Each probe has ConnectTimeout plus an outer timeout: while slirp accepts connections before the guest
    is up, a probe can hang in the banner exchange. Raises TimeoutError, or RuntimeError when `proc`
    (the QEMU process) exits first.
    """
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"QEMU exited with status {proc.returncode} before SSH came up")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no SSH login on 127.0.0.1:{port} within {timeout:.0f} s; last error: {last}")
        probe_timeout = min(remaining, 20.0)
        try:
            cp = subprocess.run(
                [*ssh_argv(port, key, user), command],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=probe_timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            last = f"probe hung for {probe_timeout:.0f} s"
            continue
        if cp.returncode != 255:
            return cp
        last = cp.stderr.strip().splitlines()[-1] if cp.stderr.strip() else "exit status 255"
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def stop_direct(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM (QEMU exits at once, no guest shutdown), then SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
