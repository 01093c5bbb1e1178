"""Real QEMU under TCG, one test per layout: start from build_argv, QMP answers, the promised devices
exist, the firmware writes to serial.log, and a graceful stop (or its kill fallback) ends QEMU.

Skips when qemu-system-*, qemu-img or the firmware are missing. Run one at a time: each takes ~10-30 s.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from limapy.qemu import firmware, process, tpm
from limapy.qemu.cmdline import Paths, build_argv
from limapy.qemu.host import HostProbe, detect_host

MAC = "52:55:55:01:02:03"
MIB = 1024 * 1024


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")


def tiny_iso(path: Path, label: str, files: dict[str, bytes]) -> Path:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, vol_ident=label)
    for i, (name, data) in enumerate(files.items()):
        iso.add_fp(io.BytesIO(data), len(data), f"/F{i}.;1", joliet_path=f"/{name}")
    iso.write(str(path))
    iso.close()
    return path


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "inst"
    d.mkdir(mode=0o700)
    yield d
    pid = process.qemu_pid(d)
    if pid and process.is_running(pid):
        process.kill(pid)
    tpm.stop_swtpm(d)


def prepare(inst: Path, cfg: dict[str, Any], install: bool) -> tuple[list[str], Paths]:
    arch = cfg["arch"]
    need(f"qemu-system-{arch}")
    need("qemu-img")
    host = detect_host(arch, HostProbe(env={}))
    assert host.accel == "tcg", "auto-detection must pick tcg on these machines"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(inst / "disk"), "1G"], check=True)
    tiny_iso(inst / "cidata.iso", "cidata", {"meta-data": b"instance-id: x\n", "user-data": b"#cloud-config\n"})
    extra: dict[str, Any] = {}
    if cfg["os"] == "Windows":
        extra["iso"] = tiny_iso(inst / "iso", "CCCOMA_TEST", {"setup.txt": b"not windows"})
        extra["virtio_win"] = tiny_iso(inst / "virtio-win", "virtio-win", {"readme.txt": b"drivers"})
    try:
        pair = firmware.find_firmware(arch, cfg)
    except Exception as e:
        pytest.skip(f"no firmware: {e}")
    if pair is not None:
        extra["fw_code"], extra["fw_vars"] = firmware.prepare_vars(pair, arch, inst)
    paths = Paths.for_instance(inst, disk_format="qcow2", **extra)
    return build_argv(cfg, "itest", paths, host, ssh_port=0, mac=MAC, install=install), paths


def cfg_for(os_: str, arch: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "os": os_, "arch": arch, "cpus": 1, "memory": "512MiB", "tpm": False, "video": {"display": "none"},
        "firmware": {"legacyBIOS": False, "images": []}, "mounts": [], "portForwards": [],
        "osOpts": {"Windows": {"virtioWin": []}},
    }  # fmt: skip
    cfg.update(over)
    return cfg


def wait_serial(log: Path, timeout: float = 25.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.stat().st_size > 0:
            return log.read_bytes()
        time.sleep(0.5)
    return b""


def run_layout(
    inst: Path,
    cfg: dict[str, Any],
    devices: list[str],
    drives: list[str],
    install: bool = True,
    serial: bool = True,
) -> str:
    argv, paths = prepare(inst, cfg, install)
    if cfg.get("tpm"):
        need("swtpm")
        tpm.start_swtpm(inst)
    pid = process.launch(argv, inst)
    try:
        with process.wait_qmp(paths.qmp_sock, timeout=20, pid=pid) as qmp:
            assert qmp.query_status() == "running"
            qtree = qmp.hmp("info qtree")
            for dev in devices:
                assert f"dev: {dev}," in qtree, f"{dev} missing from info qtree"
            block = {b["device"] for b in qmp.query_block()}
            assert set(drives) <= block, block
            if cfg.get("tpm"):
                want = "tpm-crb" if cfg["arch"] == "x86_64" else "tpm-tis"
                assert [(t["id"], t["model"]) for t in qmp.query_tpm()] == [("tpm0", want)]
            qmp.execute("query-pci")  # answers on every layout with PCI
        if serial:
            assert wait_serial(paths.serial_log), "firmware wrote nothing to serial.log"
        assert process.is_running(pid), process.stderr_tail(inst)
        process.watch_internal_error(inst)
    finally:
        process.graceful_stop(inst, timeout=3.0, pid=pid)
    assert not process.is_running(pid)
    assert not (inst / "qmp.sock").exists() and not (inst / "qemu.pid").exists()
    return qtree


@pytest.mark.timeout(90)
def test_linux_x86_64(inst: Path) -> None:
    run_layout(
        inst,
        cfg_for("Linux", "x86_64"),
        ["virtio-blk-pci", "virtio-scsi-pci", "scsi-cd", "virtio-net-pci", "virtio-rng-pci"],
        ["pflash0", "pflash1", "boot-disk", "cdrom0"],
        install=False,
    )
    assert (inst / "qemu-efi-vars.fd").stat().st_size == 540_672


@pytest.mark.timeout(90)
def test_linux_aarch64(inst: Path) -> None:
    run_layout(
        inst,
        cfg_for("Linux", "aarch64"),
        ["virtio-blk-pci", "scsi-cd", "virtio-net-pci"],
        ["pflash0", "pflash1", "boot-disk", "cdrom0"],
        install=False,
    )
    assert (inst / "qemu-efi-vars.fd").stat().st_size == 64 * MIB


@pytest.mark.timeout(90)
def test_windows_x86_64_inbox_tpm(inst: Path) -> None:
    qtree = run_layout(
        inst,
        cfg_for("Windows", "x86_64", tpm=True),
        ["ide-hd", "ide-cd", "e1000e", "usb-tablet", "VGA"],
        ["boot-disk", "cd0", "cd2"],
    )
    assert "dev: virtio-blk-pci," not in qtree


@pytest.mark.timeout(90)
def test_windows_x86_64_virtio_win(inst: Path) -> None:
    cfg = cfg_for("Windows", "x86_64", osOpts={"Windows": {"virtioWin": [{"location": "x"}]}})
    run_layout(inst, cfg, ["virtio-blk-pci", "ide-cd", "virtio-net-pci"], ["boot-disk", "cd0", "cd1", "cd2"])


@pytest.mark.timeout(90)
def test_windows_x86_64_legacy_bios_installed(inst: Path) -> None:
    cfg = cfg_for("Windows", "x86_64", firmware={"legacyBIOS": True, "images": []})
    run_layout(inst, cfg, ["ide-hd", "e1000e"], ["boot-disk"], install=False, serial=False)
    assert not (inst / "qemu-efi-vars.fd").exists()


@pytest.mark.timeout(90)
def test_windows_aarch64_virtio_win_tpm(inst: Path) -> None:
    """Windows on arm64: virtio-net (NetKVM from virtio-win) instead of usb-net, which Windows binds to usbser."""
    cfg = cfg_for("Windows", "aarch64", tpm=True, osOpts={"Windows": {"virtioWin": [{"location": "x"}]}})
    qtree = run_layout(
        inst,
        cfg,
        ["virtio-blk-pci", "usb-storage", "virtio-net-pci", "usb-kbd", "usb-tablet", "ramfb", "tpm-tis-device"],
        ["boot-disk", "cd0", "cd1", "cd2"],
    )
    assert qtree.count("dev: qemu-xhci,") == 1
    assert "dev: usb-net," not in qtree
    assert (inst / "qemu-efi-vars.fd").stat().st_size == 64 * MIB


def test_vars_store_per_instance_and_writable(tmp_path: Path) -> None:
    for arch, size in (("x86_64", 540_672), ("aarch64", 64 * MIB)):
        try:
            pair = firmware.find_firmware(arch, {})
        except Exception as e:
            pytest.skip(f"no firmware: {e}")
        assert pair is not None
        stores = []
        for name in ("a", "b"):
            d = tmp_path / f"{arch}-{name}"
            d.mkdir()
            _code, store = firmware.prepare_vars(pair, arch, d)
            assert store.parent == d and store.stat().st_size == size
            with store.open("r+b") as f:
                f.write(b"x")
            stores.append(store)
        assert stores[0] != stores[1]
