"""The QEMU command line, as a pure function: config + instance paths + host facts in, argv out.

No I/O here (no file checks, no environment): the caller decides which files exist and passes them
in `Paths`, so the same inputs always give the same argv and golden tests can pin it.

The devices are the guest OS's (limapy.guest.GuestOS.devices, a neutral limapy.guest.boot.Devices): this module
translates them into QEMU's, with what depends on the arch only (q35 or virt, the GPU model, the TPM model).
docs/windows.md, "Devices and drivers", says why each guest gets what it gets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limapy.base.errors import LimapyError
from limapy.base.names import mount_tag
from limapy.config.model import Spec
from limapy.guest import smb
from limapy.guest.boot import CD, CD_DRIVERS, CD_ISO, CD_SEED, Devices
from limapy.qemu.host import HostFacts

if TYPE_CHECKING:
    from limapy.instance.store import Instance

#: Remote Desktop's port in a Windows guest.
RDP_PORT = 3389

#: Hyper-V enlightenments under KVM (an explicit list; hv_passthrough needs a matching host).
HYPERV_FLAGS = (
    "hv_relaxed",
    "hv_vapic",
    "hv_spinlocks=0x1fff",
    "hv_vpindex",
    "hv_runtime",
    "hv_synic",
    "hv_stimer",
    "hv_time",
    "hv_frequencies",
)
#: Lima's user-mode network.
SLIRP_NET = "net=192.168.5.0/24,dhcpstart=192.168.5.15"
MAX_STATIC_PORTS = 64


@dataclass(frozen=True)
class Paths:
    """The files of one instance that appear on the command line; None = not attached."""

    dir: Path
    disk: Path
    cidata: Path
    serial_log: Path
    serial_sock: Path
    qmp_sock: Path
    pidfile: Path
    swtpm_sock: Path
    ha_qmp_sock: Path | None = None  # the host agent's own monitor (events), beside qmp.sock
    iso: Path | None = None
    virtio_win: Path | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None  # the kernel command line itself (content of <inst>/kernel.cmdline)
    fw_code: Path | None = None
    fw_vars: Path | None = None
    disk_format: str | None = None  # "qcow2" | "raw"; None lets QEMU probe (as Lima does)
    additional_disks: tuple[Path, ...] = field(default_factory=tuple)
    #: each additional disk's format ("qcow2" | "raw"), so QEMU never probes a raw one (it would then refuse
    #: the guest writes to block 0); missing entries are probed
    additional_disk_formats: tuple[str, ...] = field(default_factory=tuple)
    virtiofs_socks: tuple[Path, ...] = field(default_factory=tuple)  # one per mount, in `mounts` order
    smb_script: Path | None = None  # `mountType: smb`: what each guest connection to 192.168.5.4:445 runs

    @classmethod
    def for_instance(cls, inst: Instance, **overrides: Any) -> Paths:
        """The instance's own files (store.Instance names them); optional members come from `overrides`."""
        base = cls(
            dir=inst.dir,
            disk=inst.disk,
            cidata=inst.cidata_iso,
            serial_log=inst.serial_log,
            serial_sock=inst.serial_sock,
            qmp_sock=inst.qmp_sock,
            ha_qmp_sock=inst.ha_qmp_sock,
            pidfile=inst.qemu_pid,
            swtpm_sock=inst.swtpm_sock,
        )
        return replace(base, **overrides)


def qemu_opt(value: str | Path) -> str:
    """Escape a value inside a QEMU option list (a comma is written twice)."""
    return str(value).replace(",", ",,")


def _memory_mib(spec: Spec) -> int:
    return max(1, spec.memory // (1024 * 1024))


def _cpu_model(spec: Spec, host: HostFacts, dev: Devices) -> str:
    configured = spec.cpu_type.get(spec.arch)
    accelerated = host.accel in ("kvm", "hvf")
    if configured:
        model = configured
    elif accelerated:
        model = "host"
    else:
        model = dev.tcg_cpu
    if model.split(",")[0] in dev.unsupported_cpus:
        raise LimapyError(
            f"vmOpts.qemu.cpuType {model!r} lacks {dev.cpu_requirement}", hint="use `host` (with KVM) or `max`"
        )
    if dev.hyperv and host.accel == "kvm":
        model = ",".join([model, *HYPERV_FLAGS])
    return model


def _machine(arch: str, host: HostFacts, dev: Devices) -> list[str]:
    accel = ["-accel", "tcg,thread=multi,tb-size=512"] if host.accel == "tcg" else ["-accel", host.accel]
    if arch == "x86_64":
        machine = "q35,vmport=off" if dev.hpet else "q35,vmport=off,hpet=off"
        return [
            "-machine", machine, *accel,
            "-global", "ICH9-LPC.disable_s3=1",
            "-global", "ICH9-LPC.disable_s4=1",
        ]  # fmt: skip
    if arch == "aarch64":
        return ["-machine", "virt,gic-version=max" if dev.gic3 else "virt", *accel]
    raise LimapyError(f"the QEMU driver does not support arch {arch!r} yet")


def _drive(file: Path, drive_id: str, *, cdrom: bool = False, fmt: str | None = None) -> list[str]:
    opts = [f"file={qemu_opt(file)}", "if=none", f"id={drive_id}"]
    if cdrom:
        opts += ["format=raw", "media=cdrom", "readonly=on"]
    else:
        if fmt:
            opts.append(f"format={fmt}")
        opts.append("discard=on")
    return ["-drive", ",".join(opts)]


def _extra_format(paths: Paths, i: int) -> str | None:
    """The format of additional disk `i` (1-based), when known."""
    formats = paths.additional_disk_formats
    return formats[i - 1] if i <= len(formats) else None


def _with_bootindex(device: str, bootindex: int | None) -> str:
    return device if bootindex is None else f"{device},bootindex={bootindex}"


def _firmware(paths: Paths) -> list[str]:
    out: list[str] = []
    if paths.fw_code is not None:
        out += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={qemu_opt(paths.fw_code)}"]
        if paths.fw_vars is not None:
            out += ["-drive", f"if=pflash,format=raw,unit=1,file={qemu_opt(paths.fw_vars)}"]
    return out


def static_forwards(spec: Spec) -> list[str]:
    """`portForwards` rules with `static: true` as QEMU hostfwd rules, on 127.0.0.1 only."""
    rules: list[str] = []
    for rule in spec.port_forwards:
        if not rule.static or rule.ignore or rule.guest_socket or rule.host_socket:
            continue
        if rule.host_ip not in ("127.0.0.1", "localhost"):
            raise LimapyError(
                f"static port forward to hostIP {rule.host_ip} refused: limapy binds forwards to 127.0.0.1 only"
            )
        g_lo, g_hi = rule.guest_port_range
        h_lo, h_hi = rule.host_port_range or rule.guest_port_range
        count = g_hi - g_lo + 1
        if count != h_hi - h_lo + 1 or count < 1 or count > MAX_STATIC_PORTS:
            raise LimapyError(
                f"static port forward {g_lo}-{g_hi} -> {h_lo}-{h_hi}: ranges must match and span at most "
                f"{MAX_STATIC_PORTS} ports"
            )
        protos = ["tcp", "udp"] if rule.proto == "any" else [rule.proto]
        for i in range(count):
            for p in protos:
                rules.append(f"hostfwd={p}:127.0.0.1:{h_lo + i}-:{g_lo + i}")
    return rules


@dataclass(frozen=True)
class Forwards:
    """The guest ports limapy itself forwards on 127.0.0.1: SSH always, Remote Desktop for Windows."""

    ssh: int
    rdp: int | None = None


def _network(spec: Spec, forwards: Forwards, mac: str, nic: str, smb_script: Path | None = None) -> list[str]:
    rules = [f"hostfwd=tcp:127.0.0.1:{int(forwards.ssh)}-:22"]
    if forwards.rdp:
        rules.append(f"hostfwd=tcp:127.0.0.1:{int(forwards.rdp)}-:{RDP_PORT}")
    if smb_script is not None:  # limapy's smbd, reached by the guest only (limapy.guest.smb)
        rules.append(smb.guestfwd(smb_script))
    netdev = ",".join(["user", "id=net0", SLIRP_NET, *rules, *static_forwards(spec)])
    return ["-netdev", netdev, "-device", f"{nic},netdev=net0,mac={mac}"]


def _serial_qmp_pid(name: str, paths: Paths) -> list[str]:
    argv = [
        "-chardev",
        f"socket,id=char-serial,path={qemu_opt(paths.serial_sock)},server=on,wait=off,"
        f"logfile={qemu_opt(paths.serial_log)}",
        "-serial", "chardev:char-serial",
        "-chardev", f"socket,id=char-qmp,path={qemu_opt(paths.qmp_sock)},server=on,wait=off",
        "-qmp", "chardev:char-qmp",
    ]  # fmt: skip
    if paths.ha_qmp_sock is not None:
        argv += [
            "-chardev", f"socket,id=char-qmp-ha,path={qemu_opt(paths.ha_qmp_sock)},server=on,wait=off",
            "-qmp", "chardev:char-qmp-ha",
        ]  # fmt: skip
    return [*argv, "-name", f"limapy-{name}", "-pidfile", str(paths.pidfile)]


def _tpm(spec: Spec, paths: Paths) -> list[str]:
    if not spec.tpm:
        return []
    device = "tpm-crb" if spec.arch == "x86_64" else "tpm-tis-device"
    return [
        "-chardev", f"socket,id=chrtpm,path={qemu_opt(paths.swtpm_sock)}",
        "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
        "-device", f"{device},tpmdev=tpm0",
    ]  # fmt: skip


#: QEMU display back ends a window or nothing is shown with (`-display NAME[,options]`); VNC goes through
#: `video.vnc.display`, checked to stay on 127.0.0.1.
LOCAL_DISPLAYS = ("none", "default", "gtk", "sdl", "cocoa", "curses", "egl-headless", "dbus")
_VNC = re.compile(r"(?:127\.0\.0\.1|localhost):\d{1,5}(?:,to=\d{1,5})?")


def display_arg(spec: Spec) -> str:
    display = spec.display
    if display == "vnc":
        vnc = spec.vnc_display
        if not _VNC.fullmatch(vnc):
            raise LimapyError(
                f"video.vnc.display {vnc!r}: limapy serves VNC on 127.0.0.1 only (HOST:DISPLAY[,to=N])"
            )
        return f"vnc={vnc}"
    if display.split(",", 1)[0] not in LOCAL_DISPLAYS:
        raise LimapyError(
            f"video.display {display!r} is not a local display",
            hint=f"use one of {', '.join(LOCAL_DISPLAYS)}, or `vnc` with video.vnc.display on 127.0.0.1",
        )
    return display


def _virtiofs(spec: Spec, paths: Paths) -> list[str]:
    """vhost-user-fs devices, one per mount, each on its virtiofsd's socket (limapy.qemu.virtiofsd)."""
    mounts = spec.mounts_of("virtiofs")
    if not mounts:
        return []
    if len(paths.virtiofs_socks) != len(mounts):
        raise LimapyError("virtiofs: one virtiofsd socket per mount is needed")
    out: list[str] = []
    for i, (m, sock) in enumerate(zip(mounts, paths.virtiofs_socks, strict=True)):
        tag = mount_tag(m.location, m.mount_point)
        out += [
            "-chardev", f"socket,id=char-virtiofs-{i},path={qemu_opt(sock)}",
            "-device", f"vhost-user-fs-pci,queue-size={m.virtiofs_queue_size},chardev=char-virtiofs-{i},tag={tag}",
        ]  # fmt: skip
    return out


def _shared_memory(spec: Spec) -> list[str]:
    """vhost-user needs the guest RAM shared with its back ends: a memfd of the whole `-m` size, as its one
    NUMA node."""
    if not spec.mounts_of("virtiofs"):
        return []
    return [
        "-object", f"memory-backend-memfd,id=mem,size={_memory_mib(spec)}M,share=on",
        "-numa", "node,memdev=mem",
    ]  # fmt: skip


def _mounts(spec: Spec, mount_tags: Mapping[str, str] | None) -> list[str]:
    out: list[str] = []
    for i, m in enumerate(spec.mounts_of("9p")):
        if m.location.startswith("~"):
            raise LimapyError(f"mounts[{i}].location {m.location!r} must be expanded before build_argv")
        tag = (mount_tags or {}).get(m.location) or mount_tag(m.location, m.mount_point)
        opts = [
            "local",
            f"mount_tag={qemu_opt(tag)}",
            f"path={qemu_opt(m.location)}",
            f"security_model={qemu_opt(m.ninep.security_model)}",
            f"id=fsdev{i}",
        ]
        if not m.writable:
            opts.append("readonly=on")
        out += ["-virtfs", ",".join(opts)]
    return out


def _common_head(spec: Spec, host: HostFacts, dev: Devices) -> list[str]:
    argv = [host.qemu_binary, "-nodefaults", *_machine(spec.arch, host, dev)]
    argv += ["-cpu", _cpu_model(spec, host, dev)]
    argv += ["-smp", f"{spec.cpus},sockets=1,cores={spec.cpus},threads=1", "-m", str(_memory_mib(spec))]
    return argv + _shared_memory(spec)


def _disk_device(bus: str, drive: str, index: int) -> str:
    """Disk `index` (0: the boot disk) on `bus`; AHCI's port 0 is the boot disk's, 1-2 its CDs', 4-5 more disks."""
    if bus == "nvme":
        return f"nvme,drive={drive},serial=limapy{index}"
    if bus == "sata":
        return f"ide-hd,drive={drive},bus=ide.{index + 3 if index else 0}"
    return f"virtio-blk-pci,drive={drive}"


def _cd_device(bus: str, drive: str, n: int) -> str:
    """The `n`th CD (from 1) on `bus`."""
    if bus == "sata":
        return f"ide-cd,drive={drive},bus=ide.{n}"
    if bus == "usb":
        return f"usb-storage,drive={drive},bus=usb-bus.0"
    return f"scsi-cd,bus=scsi0.0,drive={drive}"


def _cds(dev: Devices, paths: Paths) -> list[tuple[CD, Path]]:
    """The CDs with their files; a required one without a file is an error, an optional one is left out."""
    files = {CD_ISO: paths.iso, CD_DRIVERS: paths.virtio_win, CD_SEED: paths.cidata}
    out = []
    for cd in dev.cds:
        path = files.get(cd.media)
        if path is None:
            if cd.missing:
                raise LimapyError(cd.missing)
            continue
        out.append((cd, path))
    return out


def _display_devices(dev: Devices, arch: str, display: str) -> list[str]:
    if not dev.video_always and display == "none":
        return []
    video = {"vga": "VGA", "ramfb": "ramfb"}.get(dev.video) or ("virtio-vga" if arch == "x86_64" else "virtio-gpu-pci")
    usb = dev.input_bus == "usb"
    out = ["-device", video]
    if dev.keyboard:
        out += ["-device", "usb-kbd,bus=usb-bus.0" if usb else "virtio-keyboard-pci"]
    return [*out, "-device", "usb-tablet,bus=usb-bus.0" if usb else "virtio-tablet-pci"]


def _guest_machine(
    spec: Spec,
    paths: Paths,
    host: HostFacts,
    forwards: Forwards,
    mac: str,
    dev: Devices,
    mount_tags: Mapping[str, str] | None,
) -> list[str]:
    arch = spec.arch
    if dev.needs_firmware and paths.fw_code is None:
        raise LimapyError(dev.needs_firmware)
    if arch == "aarch64" and paths.fw_code is None and paths.kernel is None:
        raise LimapyError("an aarch64 guest needs UEFI firmware or a kernel to boot")
    argv = _common_head(spec, host, dev)
    if dev.rtc_utc:
        # driftfix=slew catches up lost ticks (the x86 RTC only)
        argv += ["-rtc", "base=utc,driftfix=slew" if dev.rtc_catchup else "base=utc"]
    argv += _firmware(paths)
    if dev.usb:
        argv += ["-device", "qemu-xhci,id=usb-bus"]
    argv += _drive(paths.disk, "boot-disk", fmt=paths.disk_format)
    # QEMU gives a direct kernel (-kernel) bootindex 0 itself; the disk then must not claim it.
    disk_boot = None if paths.kernel is not None and dev.disk_bootindex == 0 else dev.disk_bootindex
    argv += ["-device", _with_bootindex(_disk_device(dev.disk_bus, "boot-disk", 0), disk_boot)]
    for i, extra in enumerate(paths.additional_disks, start=1):
        argv += _drive(extra, f"disk{i}", fmt=_extra_format(paths, i))
        argv += ["-device", _disk_device(dev.disk_bus, f"disk{i}", i)]
    cds = _cds(dev, paths)
    if dev.cd_bus == "scsi":
        argv += ["-device", "virtio-scsi-pci,id=scsi0"]
    for n, (cd, path) in enumerate(cds, start=1):
        argv += _drive(path, cd.drive, cdrom=True)
        argv += ["-device", _with_bootindex(_cd_device(dev.cd_bus, cd.drive, n), cd.bootindex)]
    if paths.kernel is not None:
        argv += ["-kernel", str(paths.kernel)]
        if paths.initrd is not None:
            argv += ["-initrd", str(paths.initrd)]
        if paths.cmdline:
            argv += ["-append", paths.cmdline]
    argv += _network(spec, forwards, mac, "e1000e" if dev.nic == "e1000e" else "virtio-net-pci", paths.smb_script)
    if dev.rng:
        argv += ["-device", "virtio-rng-pci"]
    argv += _tpm(spec, paths)
    display = display_arg(spec)
    argv += [*_display_devices(dev, arch, display), "-display", display]
    argv += _mounts(spec, mount_tags)
    argv += _virtiofs(spec, paths)
    return argv


def build_argv(
    spec: Spec,
    name: str,
    paths: Paths,
    host: HostFacts,
    *,
    ssh_port: int,
    mac: str,
    stage: str | None = None,
    rdp_port: int | None = None,
    mount_tags: Mapping[str, str] | None = None,
) -> list[str]:
    """The full QEMU argv for instance `name` (argv[0] is the binary).

    `stage` is the install stage of a guest that installs itself (limapy.guest.boot.INSTALL, SETUP, INSTALLED):
    its OS decides the devices for it. `rdp_port` forwards 127.0.0.1:rdp_port to the guest's Remote Desktop port."""
    from limapy import guest

    forwards = Forwards(ssh_port, rdp_port)
    if spec.arch not in ("x86_64", "aarch64"):
        raise LimapyError(f"the QEMU driver does not support arch {spec.arch!r} yet")
    dev = guest.for_spec(spec).devices(spec, stage)
    argv = _guest_machine(spec, paths, host, forwards, mac, dev, mount_tags)
    argv += _serial_qmp_pid(name, paths)
    return argv
