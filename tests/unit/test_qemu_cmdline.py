"""Golden argv files for every layout; regenerate with LIMAPY_REGEN_GOLDEN=1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import LimapyError
from limapy.base.names import mount_tag
from limapy.config.model import Spec
from limapy.guest.boot import INSTALL as WIN_INSTALL
from limapy.guest.boot import INSTALLED as WIN_INSTALLED
from limapy.guest.boot import SETUP as WIN_SETUP
from limapy.instance.store import Instance
from limapy.qemu import cmdline
from limapy.qemu.cmdline import Paths
from limapy.qemu.host import HostFacts
from tests.golden import compare

INST = Path("/home/u/.limapy/inst")
MAC = "52:55:55:aa:bb:cc"


def paths_for(directory: Path, **overrides: Any) -> Paths:
    return Paths.for_instance(Instance(directory.name, directory), **overrides)


def build_argv(cfg: dict[str, Any], name: str, paths: Paths, facts: HostFacts, **kw: Any) -> list[str]:
    """cmdline.build_argv on the Spec of a (filled) configuration dict."""
    return cmdline.build_argv(Spec.from_cfg(cfg), name, paths, facts, **kw)


def host(arch: str, accel: str = "tcg") -> HostFacts:
    return HostFacts(
        arch="x86_64",
        qemu_binary=f"qemu-system-{arch}",
        qemu_version=(7, 2, 22),
        accel=accel,
        accel_notice=None,
    )


def base_cfg(os_: str, arch: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "os": os_,
        "arch": arch,
        "cpus": 2,
        "memory": "4GiB",
        "tpm": False,
        "plain": False,
        "firmware": {"legacyBIOS": False, "images": []},
        "video": {"display": "none"},
        "mounts": [],
        "mountType": "9p",
        "portForwards": [],
        "osOpts": {"Windows": {"virtioWin": []}},
    }
    cfg.update(extra)
    return cfg


def fw(arch: str) -> dict[str, Path]:
    code = "/usr/share/OVMF/OVMF_CODE_4M.fd" if arch == "x86_64" else "/usr/share/AAVMF/AAVMF_CODE.fd"
    return {"fw_code": Path(code), "fw_vars": INST / "qemu-efi-vars.fd"}


VIRTIO_WIN = [{"location": "https://example.invalid/virtio-win.iso"}]


def cases() -> dict[str, tuple[dict[str, Any], Paths, bool | str]]:
    linux_x86 = base_cfg(
        "Linux",
        "x86_64",
        mounts=[
            {"location": "/home/u", "mountPoint": "/home/u", "writable": False},
            {
                "location": "/tmp/lima",
                "mountPoint": "/tmp/lima",
                "writable": True,
                "9p": {"securityModel": "mapped-xattr"},
            },
        ],
        portForwards=[
            {
                "guestPort": 80,
                "hostPort": 8080,
                "guestPortRange": [80, 80],
                "hostPortRange": [8080, 8080],
                "hostIP": "127.0.0.1",
                "proto": "tcp",
                "static": True,
            },
            {"guestPortRange": [1, 65535], "hostPortRange": [1, 65535], "proto": "any"},
        ],
    )
    kernel = {
        "kernel": INST / "kernel",
        "initrd": INST / "initrd",
        "cmdline": "root=/dev/vda rw console=ttyS0",
    }
    win = {"iso": INST / "iso", "virtio_win": INST / "virtio-win"}
    out: dict[str, tuple[dict[str, Any], Paths, bool | str]] = {
        "linux-x86_64": (
            linux_x86,
            paths_for(INST, **fw("x86_64"), **kernel, additional_disks=(Path("/d/data"),)),
            False,
        ),
        "linux-aarch64": (
            base_cfg("Linux", "aarch64", video={"display": "default"}),
            paths_for(INST, **fw("aarch64"), disk_format="qcow2"),
            False,
        ),
        "windows-x86_64": (
            base_cfg("Windows", "x86_64"),
            paths_for(INST, **fw("x86_64"), **win),
            True,
        ),
        "windows-x86_64-tpm": (
            base_cfg("Windows", "x86_64", tpm=True),
            paths_for(INST, **fw("x86_64"), **win),
            True,
        ),
        "windows-x86_64-virtiowin": (
            base_cfg("Windows", "x86_64", osOpts={"Windows": {"virtioWin": VIRTIO_WIN}}),
            paths_for(INST, **fw("x86_64"), **win),
            True,
        ),
        "windows-x86_64-virtiowin-tpm": (
            base_cfg("Windows", "x86_64", tpm=True, osOpts={"Windows": {"virtioWin": VIRTIO_WIN}}),
            paths_for(INST, **fw("x86_64"), **win),
            True,
        ),
        "windows-x86_64-legacybios": (
            base_cfg("Windows", "x86_64", firmware={"legacyBIOS": True, "images": []}),
            paths_for(INST, **win),
            True,
        ),
        "windows-x86_64-installed": (
            base_cfg("Windows", "x86_64", tpm=True),
            paths_for(INST, **fw("x86_64"), **win),
            False,
        ),
        "windows-x86_64-setup": (
            base_cfg("Windows", "x86_64", tpm=True),
            paths_for(INST, **fw("x86_64"), **win),
            WIN_SETUP,
        ),
        "windows-aarch64-virtiowin": (
            base_cfg("Windows", "aarch64", osOpts={"Windows": {"virtioWin": VIRTIO_WIN}}),
            paths_for(INST, **fw("aarch64"), **win),
            True,
        ),
        "windows-aarch64-virtiowin-tpm": (
            base_cfg("Windows", "aarch64", tpm=True, osOpts={"Windows": {"virtioWin": VIRTIO_WIN}}),
            paths_for(INST, **fw("aarch64"), **win),
            True,
        ),
        "windows-aarch64-installed": (
            base_cfg("Windows", "aarch64", osOpts={"Windows": {"virtioWin": VIRTIO_WIN}}),
            paths_for(INST, **fw("aarch64"), **win),
            False,
        ),
    }
    return out


RDP = 63389


def boot_args(install: bool | str) -> dict[str, Any]:
    """build_argv's keywords for a case: True/False = first boot of an install / installed, or a WIN_* kind."""
    if isinstance(install, str):
        return {"stage": install}
    return {"stage": WIN_INSTALL if install else WIN_INSTALLED}


CASES = cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    cfg, paths, install = CASES[case]
    rdp = RDP if cfg["os"] == "Windows" else None
    argv = build_argv(
        cfg, "inst", paths, host(cfg["arch"]), ssh_port=60022, mac=MAC, rdp_port=rdp, **boot_args(install)
    )
    compare(f"qemu/{case}.argv", "\n".join(argv) + "\n")


def argv_of(case: str, accel: str = "tcg", **cfg_over: Any) -> list[str]:
    cfg, paths, install = CASES[case]
    return build_argv(
        {**cfg, **cfg_over}, "inst", paths, host(cfg["arch"], accel), ssh_port=60022, mac=MAC, **boot_args(install)
    )


def after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_linux_promises() -> None:
    argv = argv_of("linux-x86_64")
    # with -kernel, QEMU gives bootindex 0 to the kernel itself; the disk must not claim it too
    assert "virtio-blk-pci,drive=boot-disk" in argv
    assert not any("bootindex=0" in a for a in argv)
    assert "scsi-cd,bus=scsi0.0,drive=cdrom0" in argv
    netdev = after(argv, "-netdev")[0]
    assert "hostfwd=tcp:127.0.0.1:60022-:22" in netdev and "hostfwd=tcp:127.0.0.1:8080-:80" in netdev
    assert netdev.count("hostfwd") == 2  # the non-static catch-all rule is the host agent's job
    assert f"virtio-net-pci,netdev=net0,mac={MAC}" in argv
    assert after(argv, "-cpu") == ["max"] and after(argv, "-display") == ["none"]
    assert after(argv, "-kernel") == [str(INST / "kernel")]
    assert any(
        a.startswith(f"local,mount_tag={mount_tag('/home/u', '/home/u')},") and a.endswith("readonly=on")
        for a in after(argv, "-virtfs")
    )


def test_kvm_uses_host_cpu_and_hyperv_for_windows() -> None:
    assert after(argv_of("linux-x86_64", "kvm"), "-cpu") == ["host"]
    cpu = after(argv_of("windows-x86_64", "kvm"), "-cpu")[0]
    assert cpu.startswith("host,") and "hv_relaxed" in cpu
    assert "hv_" not in after(argv_of("windows-x86_64"), "-cpu")[0]
    assert after(argv_of("windows-aarch64-virtiowin", "hvf"), "-cpu") == ["host"]
    assert after(argv_of("windows-aarch64-virtiowin"), "-cpu") == ["max,pauth-impdef=on"]


def test_windows_never_qemu64() -> None:
    with pytest.raises(LimapyError, match=r"SSE4\.2"):
        argv_of("windows-x86_64", vmOpts={"qemu": {"cpuType": {"x86_64": "qemu64"}}})


def test_windows_media_order_and_boot() -> None:
    argv = argv_of("windows-x86_64-virtiowin")
    drives = [d.split(",")[0] for d in after(argv, "-drive") if "media=cdrom" in d]
    assert drives == [f"file={INST / 'iso'}", f"file={INST / 'virtio-win'}", f"file={INST / 'cidata.iso'}"]
    assert "ide-cd,drive=cd0,bus=ide.1,bootindex=0" in argv
    assert "virtio-blk-pci,drive=boot-disk,bootindex=1" in argv
    installed = argv_of("windows-x86_64-installed")
    assert not [d for d in after(installed, "-drive") if "media=cdrom" in d]
    assert "ide-hd,drive=boot-disk,bus=ide.0,bootindex=0" in installed


def test_windows_aarch64_layout() -> None:
    """Windows on arm64 binds QEMU's usb-net (0525:a4a2, CDC class 02/02/ff, no MS OS descriptor) to usbser, not
    to its RNDIS driver, and has no inbox driver for another NIC QEMU offers: virtio-net + NetKVM from virtio-win."""
    argv = argv_of("windows-aarch64-virtiowin-tpm")
    devices = after(argv, "-device")
    assert not [d for d in devices if d.startswith("usb-net")]
    assert f"virtio-net-pci,netdev=net0,mac={MAC}" in devices
    assert devices.count("qemu-xhci,id=usb-bus") == 1
    assert "ramfb" in devices and "usb-kbd,bus=usb-bus.0" in devices and "usb-tablet,bus=usb-bus.0" in devices
    # The disk on NVMe (Windows on Arm's inbox stornvme: WinPE needs no viostor and no drive letter for it),
    # never on virtio-blk (issue 23).
    assert "nvme,drive=boot-disk,serial=limapy0,bootindex=1" in devices
    assert not [d for d in devices if d.startswith("virtio-blk")]
    assert [d for d in devices if d.startswith("usb-storage")] == [
        "usb-storage,drive=cd0,bus=usb-bus.0,bootindex=0",
        "usb-storage,drive=cd1,bus=usb-bus.0",
        "usb-storage,drive=cd2,bus=usb-bus.0",
    ]
    assert any(d.startswith(f"file={INST / 'virtio-win'},") for d in after(argv, "-drive"))
    assert "tpm-tis-device,tpmdev=tpm0" in devices


def test_windows_aarch64_without_virtio_win_refused() -> None:
    cfg = base_cfg("Windows", "aarch64")
    paths = paths_for(INST, **fw("aarch64"), iso=INST / "iso")
    with pytest.raises(LimapyError, match="virtioWin"):
        build_argv(cfg, "n", paths, host("aarch64"), ssh_port=1, mac=MAC, stage=WIN_INSTALL)
    # an x86_64-only entry does not count
    cfg = base_cfg("Windows", "aarch64", osOpts={"Windows": {"virtioWin": [{"location": "x", "arch": "x86_64"}]}})
    with pytest.raises(LimapyError, match="virtioWin"):
        build_argv(cfg, "n", paths, host("aarch64"), ssh_port=1, mac=MAC, stage=WIN_INSTALL)


def test_windows_x86_64_inbox_layout_without_virtio_win() -> None:
    devices = after(argv_of("windows-x86_64"), "-device")
    assert "ide-hd,drive=boot-disk,bus=ide.0,bootindex=1" in devices
    assert f"e1000e,netdev=net0,mac={MAC}" in devices and not [d for d in devices if "virtio" in d]


def test_windows_setup_in_progress_boots_the_disk_with_media() -> None:
    """A restart during Setup: the disk first, the answer media (and the rest) still attached."""
    argv = argv_of("windows-x86_64-setup")
    assert "ide-hd,drive=boot-disk,bus=ide.0,bootindex=0" in argv
    cds = [d for d in after(argv, "-device") if d.startswith("ide-cd")]
    assert cds == ["ide-cd,drive=cd0,bus=ide.1", "ide-cd,drive=cd2,bus=ide.2"]
    assert not [d for d in cds if "bootindex" in d]


def test_windows_clock_is_utc_both_sides() -> None:
    """QEMU's RTC in UTC, the answer file's TimeZone UTC (limapy.guest.windows.answer.TIME_ZONE): Windows reads the
    RTC as local time, so only this pair gives the right clock. `-rtc base=localtime` with UTC was off by the
    host's offset."""
    from limapy.guest.windows.answer import TIME_ZONE

    assert TIME_ZONE == "UTC"
    assert after(argv_of("windows-x86_64"), "-rtc") == ["base=utc,driftfix=slew"]
    assert after(argv_of("windows-aarch64-virtiowin"), "-rtc") == ["base=utc"]


def test_rdp_forward_on_loopback_only() -> None:
    cfg, paths, _ = CASES["windows-x86_64"]
    argv = build_argv(
        cfg, "inst", paths, host("x86_64"), ssh_port=60022, mac=MAC, stage=WIN_INSTALL, rdp_port=RDP
    )
    netdev = after(argv, "-netdev")[0]
    assert f"hostfwd=tcp:127.0.0.1:{RDP}-:3389" in netdev
    assert all(rule.startswith("hostfwd=tcp:127.0.0.1:") for rule in netdev.split(",") if rule.startswith("hostfwd"))
    assert "3389" not in after(argv_of("windows-x86_64"), "-netdev")[0]  # no port, no forward


def test_legacy_bios_has_no_pflash() -> None:
    assert not [d for d in after(argv_of("windows-x86_64-legacybios"), "-drive") if "pflash" in d]


def test_comma_in_path_is_escaped() -> None:
    paths = paths_for(Path("/x/a,b"), **fw("x86_64"))
    argv = build_argv(base_cfg("Linux", "x86_64"), "n", paths, host("x86_64"), ssh_port=1, mac=MAC)
    assert any(a.startswith("file=/x/a,,b/disk,") for a in after(argv, "-drive"))


def test_non_loopback_static_forward_refused() -> None:
    rule = {"guestPortRange": [80, 80], "hostPortRange": [80, 80], "hostIP": "0.0.0.0", "static": True}
    with pytest.raises(LimapyError, match=r"127\.0\.0\.1"):
        argv_of("linux-x86_64", portForwards=[rule])


def test_windows_install_needs_iso() -> None:
    cfg = base_cfg("Windows", "x86_64")
    with pytest.raises(LimapyError, match="install ISO"):
        build_argv(
            cfg,
            "n",
            paths_for(INST, **fw("x86_64")),
            host("x86_64"),
            ssh_port=1,
            mac=MAC,
            stage=WIN_INSTALL,
        )


@pytest.mark.parametrize("case", ["linux-x86_64", "windows-x86_64"])
def test_additional_disks_carry_their_format(case: str) -> None:
    """A raw additional disk is named raw: QEMU would probe it and refuse the guest's writes to block 0."""
    import dataclasses

    cfg, paths, install = CASES[case]
    paths = dataclasses.replace(paths, additional_disks=(Path("/d/raw"), Path("/d/q")),
                                additional_disk_formats=("raw", "qcow2"))  # fmt: skip
    rdp = RDP if cfg["os"] == "Windows" else None
    argv = build_argv(cfg, "inst", paths, host("x86_64"), ssh_port=60022, mac=MAC, rdp_port=rdp,
                      **boot_args(install))  # fmt: skip
    drives = [a for a in argv if a.startswith("file=/d/")]
    assert drives == ["file=/d/raw,if=none,id=disk1,format=raw,discard=on",
                      "file=/d/q,if=none,id=disk2,format=qcow2,discard=on"]  # fmt: skip
