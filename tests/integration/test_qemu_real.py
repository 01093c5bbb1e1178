"""Real QEMU under TCG, one test per layout, through the QEMU driver's planner and machine: QMP answers, the
promised devices exist, the firmware writes to serial.log, sidecars (swtpm) run beside QEMU, and a graceful
stop (or its kill fallback) ends QEMU and its sidecars.

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

from limapy.config.model import Spec
from limapy.driver.plan import BootPlan
from limapy.driver.qemu import facts, machine, planner
from limapy.guest.boot import INSTALL as WIN_INSTALL
from limapy.guest.boot import INSTALLED as WIN_INSTALLED
from limapy.guest.boot import BootFiles
from limapy.guest.windows.layout import WindowsImage
from limapy.instance import pids, store
from limapy.qemu import firmware
from limapy.qemu.host import HostProbe, detect_host
from limapy.qemu.qmp import QMP

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
def inst(tmp_path: Path) -> Iterator[store.Instance]:
    d = tmp_path / "itest"
    d.mkdir(mode=0o700)
    i = store.Instance("itest", d)
    yield i
    from limapy.driver import load

    load("qemu").force_stop(i)


def prepare(inst: store.Instance, cfg: dict[str, Any], install: bool) -> BootPlan:
    """The driver's plan for a hand-made instance dir (tiny stand-in media); the vars store made as start does."""
    spec = Spec.from_cfg(cfg)
    arch = spec.arch
    need(f"qemu-system-{arch}")
    need("qemu-img")
    host = detect_host(arch, HostProbe(env={}))
    assert host.accel == "tcg", "auto-detection must pick tcg on these machines"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(inst.disk), "1G"], check=True)
    tiny_iso(inst.cidata_iso, "cidata", {"meta-data": b"instance-id: x\n", "user-data": b"#cloud-config\n"})
    files = BootFiles()
    if spec.os.value == "Windows":
        files = BootFiles(
            iso=tiny_iso(inst.iso, "CCCOMA_TEST", {"setup.txt": b"not windows"}),
            virtio_win=tiny_iso(inst.virtio_win, "virtio-win", {"readme.txt": b"drivers"}),
            stage=WIN_INSTALL if install else WIN_INSTALLED,
            install_image=WindowsImage(1, None, False) if install else None,
        )
    vars_plan = None
    if spec.boot_kind.value == "uefi":
        try:
            pair = firmware.find_firmware(arch, spec.firmware_images)
        except Exception as e:
            pytest.skip(f"no firmware: {e}")
        vars_plan = firmware.plan_vars(pair, arch, padded_code=inst.qemu_efi_code, vars_store=inst.qemu_efi_vars)
        firmware.make_vars(vars_plan)
    swtpm = None
    if spec.tpm:
        need("swtpm")
        swtpm = shutil.which("swtpm")
    f = facts.Facts(host=host, ssh_port=0, mac=MAC, iid="iid-1", files=files, vars=vars_plan, swtpm=swtpm)
    return planner.plan(inst, spec, f)


def cfg_for(os_: str, arch: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "os": os_, "arch": arch, "cpus": 1, "memory": "512MiB", "tpm": False, "video": {"display": "none"},
        "firmware": {"legacyBIOS": False, "images": []}, "mounts": [], "portForwards": [],
        "osOpts": {"Windows": {"virtioWin": []}},
    }  # fmt: skip
    cfg.update(over)
    return cfg


def wait_serial(log: Path, timeout: float = 60.0) -> bytes:  # generous: TCG on a loaded host is slow
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.stat().st_size > 0:
            return log.read_bytes()
        time.sleep(0.5)
    return b""


def run_layout(
    inst: store.Instance,
    cfg: dict[str, Any],
    devices: list[str],
    drives: list[str],
    install: bool = True,
    serial: bool = True,
) -> str:
    plan = prepare(inst, cfg, install)
    m = machine.launch(inst, plan)
    swtpm_pid = pids.live(inst.swtpm_pid, pids.swtpm_marks(inst.swtpm_dir)) if cfg.get("tpm") else None
    try:
        assert not cfg.get("tpm") or swtpm_pid, "swtpm runs beside QEMU"
        with QMP.connect(inst.qmp_sock, timeout=20) as qmp:  # free for others while the agent holds its own
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
            assert wait_serial(inst.serial_log), "firmware wrote nothing to serial.log"
        assert m.alive(), m.failure()
        m.check()
    finally:
        m.shutdown(3.0)
    assert not m.alive()
    assert swtpm_pid is None or not pids.alive(swtpm_pid) or pids.wait_gone(swtpm_pid, 5), "swtpm stopped after QEMU"
    assert not inst.qmp_sock.exists() and not inst.qemu_pid.exists() and not inst.swtpm_sock.exists()
    return qtree


@pytest.mark.timeout(90)
def test_linux_x86_64(inst: store.Instance) -> None:
    run_layout(
        inst,
        cfg_for("Linux", "x86_64"),
        ["virtio-blk-pci", "virtio-scsi-pci", "scsi-cd", "virtio-net-pci", "virtio-rng-pci"],
        ["pflash0", "pflash1", "boot-disk", "cdrom0"],
        install=False,
    )
    assert inst.qemu_efi_vars.stat().st_size == 540_672


@pytest.mark.timeout(90)
def test_linux_aarch64(inst: store.Instance) -> None:
    run_layout(
        inst,
        cfg_for("Linux", "aarch64"),
        ["virtio-blk-pci", "scsi-cd", "virtio-net-pci"],
        ["pflash0", "pflash1", "boot-disk", "cdrom0"],
        install=False,
    )
    assert inst.qemu_efi_vars.stat().st_size == 64 * MIB


@pytest.mark.timeout(90)
def test_windows_x86_64_inbox_tpm(inst: store.Instance) -> None:
    qtree = run_layout(
        inst,
        cfg_for("Windows", "x86_64", tpm=True),
        ["ide-hd", "ide-cd", "e1000e", "usb-tablet", "VGA"],
        ["boot-disk", "cd0", "cd2"],
    )
    assert "dev: virtio-blk-pci," not in qtree


@pytest.mark.timeout(90)
def test_windows_x86_64_virtio_win(inst: store.Instance) -> None:
    cfg = cfg_for("Windows", "x86_64", osOpts={"Windows": {"virtioWin": [{"location": "x"}]}})
    run_layout(inst, cfg, ["virtio-blk-pci", "ide-cd", "virtio-net-pci"], ["boot-disk", "cd0", "cd1", "cd2"])


@pytest.mark.timeout(90)
def test_windows_x86_64_legacy_bios_installed(inst: store.Instance) -> None:
    cfg = cfg_for("Windows", "x86_64", firmware={"legacyBIOS": True, "images": []})
    run_layout(inst, cfg, ["ide-hd", "e1000e"], ["boot-disk"], install=False, serial=False)
    assert not inst.qemu_efi_vars.exists()


@pytest.mark.timeout(90)
def test_windows_aarch64_virtio_win_tpm(inst: store.Instance) -> None:
    """Windows on arm64: virtio-net (NetKVM from virtio-win) instead of usb-net, which Windows binds to usbser; the
    disk on NVMe (inbox stornvme)."""
    cfg = cfg_for("Windows", "aarch64", tpm=True, osOpts={"Windows": {"virtioWin": [{"location": "x"}]}})
    qtree = run_layout(
        inst,
        cfg,
        ["nvme", "usb-storage", "virtio-net-pci", "usb-kbd", "usb-tablet", "ramfb", "tpm-tis-device"],
        ["boot-disk", "cd0", "cd1", "cd2"],
    )
    assert qtree.count("dev: qemu-xhci,") == 1
    assert "dev: usb-net," not in qtree
    assert inst.qemu_efi_vars.stat().st_size == 64 * MIB


def test_vars_store_per_instance_and_writable(tmp_path: Path) -> None:
    for arch, size in (("x86_64", 540_672), ("aarch64", 64 * MIB)):
        try:
            pair = firmware.find_firmware(arch)
        except Exception as e:
            pytest.skip(f"no firmware: {e}")
        assert pair is not None
        stores = []
        for name in ("a", "b"):
            d = tmp_path / f"{arch}-{name}"
            d.mkdir()
            plan = firmware.plan_vars(pair, arch, padded_code=d / "code.fd", vars_store=d / "vars.fd")
            firmware.make_vars(plan)
            assert plan.vars.parent == d and plan.vars.stat().st_size == size
            with plan.vars.open("r+b") as f:
                f.write(b"x")
            stores.append(plan.vars)
        assert stores[0] != stores[1]
