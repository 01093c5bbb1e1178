"""The test image boots on its own: QEMU directly (no limapy), SSH login with the seeded key, passwordless
sudo, cloud-init done from the NoCloud seed. This proves the image and is the floor of the benchmark."""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from limapy.base.netutil import free_port
from tests.e2e.qemu_direct import (
    DEFAULT_USER,
    boot_direct,
    load_image,
    stop_direct,
    wait_ssh,
    write_minimal_seed,
)

BOOT_TIMEOUT = 300.0


def test_template_points_at_existing_files(test_image_template: Path) -> None:
    image = load_image(test_image_template)
    for path in (image.disk, image.kernel, image.initrd):
        assert path.is_absolute() and path.is_file(), path
    assert "console=ttyS0" in image.cmdline
    assert image.disk_size == 4 * 1024**3


def test_minimal_seed_is_a_nocloud_seed(short_tmp: Path) -> None:
    import pycdlib

    seed = write_minimal_seed(short_tmp / "cidata.iso", "alice", "ssh-ed25519 AAAAC3Nza test\n", "h1")
    iso = pycdlib.PyCdlib()
    iso.open(str(seed))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert iso.has_joliet() and iso.has_rock_ridge()
        files = {}
        for name in ("user-data", "meta-data"):
            via_rr, via_joliet = io.BytesIO(), io.BytesIO()
            iso.get_file_from_iso_fp(via_rr, rr_path=f"/{name}")
            iso.get_file_from_iso_fp(via_joliet, joliet_path=f"/{name}")
            assert via_rr.getvalue() == via_joliet.getvalue()
            files[name] = via_rr.getvalue().decode()
    finally:
        iso.close()
    assert files["user-data"].startswith("#cloud-config\n")
    user_data = json.loads(files["user-data"].split("\n", 1)[1])
    assert user_data["users"][0]["name"] == "alice"
    assert user_data["users"][0]["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3Nza test"]
    assert user_data["manage_etc_hosts"] == "localhost"
    assert json.loads(files["meta-data"])["local-hostname"] == "h1"


def _ssh(port: int, key: Path, command: str, proc: subprocess.Popen[bytes]) -> subprocess.CompletedProcess[str]:
    return wait_ssh(port, key, DEFAULT_USER, timeout=60, command=command, proc=proc)


def test_direct_boot_ssh_and_cloud_init(
    test_image_template: Path, short_tmp: Path, record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    key = short_tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = free_port()

    start = time.monotonic()
    proc = boot_direct(test_image_template, short_tmp, None, port, key)
    try:
        cp = wait_ssh(port, key, DEFAULT_USER, BOOT_TIMEOUT, "id -un && sudo -n true && echo sudo-ok", proc)
        to_ssh = time.monotonic() - start
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.split() == [DEFAULT_USER, "sudo-ok"]

        cp = wait_ssh(port, key, DEFAULT_USER, BOOT_TIMEOUT, "cloud-init status --wait --long", proc)
        to_cloud_init = time.monotonic() - start
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "status: done" in cp.stdout

        # The seed was read (NoCloud, not the DataSourceNone fallback), the root is the virtio disk, and
        # cloud-init grew the 2 GiB file system to the template's disk size.
        cp = _ssh(port, key, "cloud-init query platform; findmnt -no SOURCE /; findmnt -bno SIZE /", proc)
        assert cp.returncode == 0, cp.stderr
        platform, root_dev, fs_size = cp.stdout.split()
        assert platform == "nocloud"
        assert root_dev == "/dev/vda"
        assert int(fs_size) > 0.9 * load_image(test_image_template).disk_size
    finally:
        stop_direct(proc)

    record_property("launch_to_ssh_s", round(to_ssh, 1))
    record_property("launch_to_cloud_init_done_s", round(to_cloud_init, 1))
    with capsys.disabled():
        print(f"\n[direct boot] launch to SSH {to_ssh:.1f} s, to cloud-init done {to_cloud_init:.1f} s")
