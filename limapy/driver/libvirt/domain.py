"""The libvirt domain of an instance, as a pure function: spec + where its volumes are + facts in, XML out.

Built with ElementTree (every name, path and value is escaped by the serializer, never pasted). The devices are
the guest OS's (limapy.guest.GuestOS.devices, a neutral limapy.guest.boot.Devices), as the QEMU driver's command
line has them (limapy.qemu.cmdline; docs/windows.md says why each guest gets what): an NVMe disk is defined as
virtio-blk and its driver replaced through `<qemu:override>` (libvirt 9.0 has no NVMe disk bus). One part
is not in the XML: the user-mode NIC's SSH (and RDP, and static) forwards on 127.0.0.1. libvirt's
`<interface type='user'>` forwards ports only with the passt back end, which Debian 12's libvirt 9.0 rejects
(libvirt issue 462), so the domain starts paused and the forwards are added to its SLIRP netdev through QEMU's
monitor (`hostfwd_add`) before it runs; DESIGN.md ("libvirt driver") says more.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest.boot import CD_DRIVERS, CD_ISO, CD_SEED, Devices
from limapy.qemu import cmdline

LIMAPY_NS = "https://github.com/limapy/limapy/xmlns/domain/1"
ET.register_namespace("limapy", LIMAPY_NS)
#: libvirt's QEMU namespace (`<qemu:override>`: properties of a device libvirt defines, replaced).
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
ET.register_namespace("qemu", QEMU_NS)
#: The user alias of a disk whose QEMU device is overridden (libvirt's user aliases start `ua-`).
DISK_ALIAS = "ua-limapydisk"

NETDEV_ID = "limapynet0"
#: The QEMU netdev libvirt makes for the NIC with alias `ua-limapynet0` ("host" + the alias).
HOSTNET = f"hostua-{NETDEV_ID}"
#: Linux's KEY_ENTER in libvirt's `linux` keycode set (virDomainSendKey).
KEY_ENTER = 28


#: Characters XML 1.0 has no place for (not even as character references).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def domain_name(instance: str) -> str:
    return f"limapy-{instance}"


@dataclass(frozen=True)
class Volume:
    path: str  # on the libvirt host
    format: str = "raw"


@dataclass(frozen=True)
class Firmware:
    """UEFI: libvirt picks the firmware itself (`<os firmware='efi'>`), or the loader and vars template given
    here (their sizes checked by limapy.qemu.firmware as for the QEMU driver)."""

    loader: str | None = None
    nvram_template: str | None = None
    nvram: str | None = None
    secure_boot: bool = False


@dataclass(frozen=True)
class Inputs:
    instance: str
    instance_dir: str
    virt_type: str  # "kvm" | "qemu" (TCG)
    ssh_port: int
    mac: str
    disk: Volume
    cidata: Volume | None = None
    iso: Volume | None = None  # an ISO image, or the install media
    virtio_win: Volume | None = None
    kernel: Volume | None = None
    initrd: Volume | None = None
    kernel_cmdline: str | None = None
    firmware: Firmware | None = None
    stage: str | None = None  # how far an install is (limapy.guest.boot.INSTALL, ...); None: no install
    rdp_port: int | None = None
    host_label: str = ""  # where limapy runs (the metadata says which limapy made the domain)
    extra: dict[str, str] = field(default_factory=dict)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _cpu(root: ET.Element, spec: Spec, virt_type: str, dev: Devices) -> None:
    configured = spec.cpu_type.get(spec.arch)
    if configured:
        name, *features = configured.split(",")
        if name in ("host", "max"):
            el = _sub(root, "cpu", mode="host-passthrough" if name == "host" else "maximum", check="none")
        else:
            el = _sub(root, "cpu", mode="custom", match="exact", check="none")
            _sub(el, "model", name, fallback="allow")
        for f in features:
            flag = f.lstrip("+-")
            if flag and "=" not in flag:
                _sub(el, "feature", policy="disable" if f.startswith("-") else "require", name=flag)
        if name in dev.unsupported_cpus:
            raise LimapyError(
                f"vmOpts.qemu.cpuType {configured!r} lacks {dev.cpu_requirement}", hint="use `host` (with KVM) or `max`"
            )
    else:
        el = _sub(root, "cpu", mode="host-passthrough" if virt_type == "kvm" else "maximum", check="none")
    _sub(el, "topology", sockets="1", dies="1", cores=str(spec.cpus), threads="1")


def _features(root: ET.Element, spec: Spec, virt_type: str, dev: Devices) -> None:
    feats = _sub(root, "features")
    _sub(feats, "acpi")
    if spec.arch == "x86_64":
        _sub(feats, "apic")
        _sub(feats, "vmport", state="off")
        if dev.hyperv and virt_type == "kvm":
            hv = _sub(feats, "hyperv", mode="custom")
            for flag in ("relaxed", "vapic", "vpindex", "runtime", "synic", "stimer", "frequencies"):
                _sub(hv, flag, state="on")
            _sub(hv, "spinlocks", state="on", retries="8191")
    elif dev.gic3:
        _sub(feats, "gic", version="3")


def _os(root: ET.Element, spec: Spec, i: Inputs) -> None:
    machine = "q35" if spec.arch == "x86_64" else "virt"
    attrs = {"firmware": "efi"} if i.firmware is not None and i.firmware.loader is None else {}
    os_el = _sub(root, "os", **attrs)
    _sub(os_el, "type", "hvm", arch=spec.arch, machine=machine)
    fw = i.firmware
    if fw is not None:
        if fw.loader is None:
            fwel = _sub(os_el, "firmware")
            _sub(fwel, "feature", enabled="yes" if fw.secure_boot else "no", name="secure-boot")
            _sub(fwel, "feature", enabled="yes" if fw.secure_boot else "no", name="enrolled-keys")
        else:
            _sub(os_el, "loader", fw.loader, readonly="yes", type="pflash", secure="yes" if fw.secure_boot else "no")
        if fw.nvram is not None or fw.nvram_template is not None:
            nv = _sub(os_el, "nvram", fw.nvram)
            if fw.nvram_template is not None:
                nv.set("template", fw.nvram_template)
    if i.kernel is not None:
        _sub(os_el, "kernel", i.kernel.path)
        if i.initrd is not None:
            _sub(os_el, "initrd", i.initrd.path)
        if i.kernel_cmdline:
            _sub(os_el, "cmdline", i.kernel_cmdline)


def _disk(
    devices: ET.Element, vol: Volume, *, device: str, bus: str, dev: str, boot: int | None, alias: str | None = None
) -> None:
    d = _sub(devices, "disk", type="file", device=device)
    drv = _sub(d, "driver", name="qemu", type=vol.format)
    if device == "disk":
        drv.set("discard", "unmap")
    _sub(d, "source", file=vol.path)
    _sub(d, "target", dev=dev, bus=bus)
    if device == "cdrom":
        _sub(d, "readonly")
    if alias is not None:
        _sub(d, "alias", name=alias)
    if boot is not None:
        _sub(d, "boot", order=str(boot))


def _dev_name(bus: str, n: int) -> str:
    prefix = {"virtio": "vd", "sata": "sd", "scsi": "sd", "usb": "sd"}[bus]
    return prefix + "abcdefghijklmnopqrstuvwxyz"[n]


def _disks(devices: ET.Element, i: Inputs, dev: Devices) -> None:
    """The boot disk and the CDs; the CDs a boot has no volume for are left out, or refused when required."""
    # libvirt 9.0 has no NVMe disk bus (only NVMe host devices): an NVMe disk is defined as virtio-blk, a PCI device
    # like NVMe, and its `-device` driver replaced by QEMU's `nvme` through <qemu:override> (_nvme_override).
    nvme = dev.disk_bus == "nvme"
    disk_bus = "virtio" if nvme else dev.disk_bus
    kernel = i.kernel is not None  # libvirt boots a kernel itself: no boot order
    boot = None if kernel or dev.disk_bootindex is None else dev.disk_bootindex + 1
    _disk(devices, i.disk, device="disk", bus=disk_bus, dev=_dev_name(disk_bus, 0), boot=boot,
          alias=f"{DISK_ALIAS}0" if nvme else None)  # fmt: skip
    if dev.cd_bus == "scsi":
        _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    volumes = {CD_ISO: i.iso, CD_DRIVERS: i.virtio_win, CD_SEED: i.cidata}
    for cd in dev.cds:
        if volumes.get(cd.media) is None and cd.missing:
            raise LimapyError(cd.missing)
    first = 1 if dev.cd_bus == "sata" and disk_bus == "sata" else 0  # AHCI: the disk is on the first port
    n = 0
    for cd in dev.cds:
        vol = volumes.get(cd.media)
        if vol is None:
            continue
        boot = None if kernel or cd.bootindex is None else cd.bootindex + 1
        _disk(devices, vol, device="cdrom", bus=dev.cd_bus, dev=_dev_name(dev.cd_bus, first + n), boot=boot)
        n += 1


def _nvme_override(root: ET.Element, dev: Devices) -> None:
    """An NVMe disk (Windows on aarch64: its inbox stornvme), as the QEMU driver's command line has it; libvirt's
    `<qemu:override>` (libvirt 8.2 and later) replaces the device's driver and adds the serial number an NVMe
    controller needs, keeping libvirt's PCI address, drive and boot index."""
    if dev.disk_bus != "nvme":
        return
    override = ET.SubElement(root, f"{{{QEMU_NS}}}override")
    device = ET.SubElement(override, f"{{{QEMU_NS}}}device", {"alias": f"{DISK_ALIAS}0"})
    frontend = ET.SubElement(device, f"{{{QEMU_NS}}}frontend")
    for name, value in (("driver", "nvme"), ("serial", "limapy0")):
        ET.SubElement(frontend, f"{{{QEMU_NS}}}property", {"name": name, "type": "string", "value": value})


def _display(devices: ET.Element, spec: Spec, dev: Devices) -> None:
    display = cmdline.display_arg(spec)  # refuses what would not stay on this host
    if dev.video_always or display != "none":
        _sub(_sub(devices, "video"), "model", type=dev.video)
        if dev.keyboard:
            _sub(devices, "input", type="keyboard", bus=dev.input_bus)
        _sub(devices, "input", type="tablet", bus=dev.input_bus)
    else:
        _sub(_sub(devices, "video"), "model", type="none")
    if display != "none":
        # a display is served by libvirt as VNC on the libvirt host's loopback only
        g = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
        _sub(g, "listen", type="address", address="127.0.0.1")


def _tpm(devices: ET.Element, spec: Spec) -> None:
    if not spec.tpm:
        return
    tpm = _sub(devices, "tpm", model="tpm-crb" if spec.arch == "x86_64" else "tpm-tis")
    _sub(tpm, "backend", type="emulator", version="2.0")


def hostfwd_rules(spec: Spec, ssh_port: int, rdp_port: int | None) -> list[str]:
    """QEMU's `hostfwd_add` arguments for the user network: SSH, RDP and the static forwards, on 127.0.0.1."""
    rules = [f"tcp:127.0.0.1:{int(ssh_port)}-:22"]
    if rdp_port:
        rules.append(f"tcp:127.0.0.1:{int(rdp_port)}-:{cmdline.RDP_PORT}")
    rules += [r.removeprefix("hostfwd=") for r in cmdline.static_forwards(spec)]
    return rules


def _network(devices: ET.Element, i: Inputs, dev: Devices) -> None:
    """The user-mode NIC (SLIRP, Lima's 192.168.5.0/24: the guest gets .15); its forwards are added through
    the monitor when the domain starts (limapy.driver.libvirt.machine), as libvirt's SLIRP has none."""
    iface = _sub(devices, "interface", type="user")
    _sub(iface, "mac", address=i.mac)
    _sub(iface, "model", type=dev.nic)
    _sub(iface, "ip", family="ipv4", address="192.168.5.0", prefix="24")
    _sub(iface, "alias", name=f"ua-{NETDEV_ID}")


def build(spec: Spec, i: Inputs) -> str:
    """The domain XML of instance `i.instance`."""
    if spec.arch not in ("x86_64", "aarch64"):
        raise LimapyError(f"the libvirt driver does not support arch {spec.arch!r}")
    if spec.arch == "aarch64" and i.firmware is None and i.kernel is None:
        raise LimapyError("an aarch64 guest needs UEFI firmware or a kernel to boot")
    from limapy import guest

    dev = guest.for_spec(spec).devices(spec, i.stage)
    root = ET.Element("domain", {"type": i.virt_type})
    _sub(root, "name", domain_name(i.instance))
    _sub(root, "title", f"limapy instance {i.instance}")
    meta = _sub(root, "metadata")
    m = ET.SubElement(meta, f"{{{LIMAPY_NS}}}instance", {"name": i.instance, "dir": i.instance_dir})
    if i.host_label:
        m.set("host", i.host_label)
    for k, v in sorted(i.extra.items()):
        m.set(k, v)
    _sub(root, "memory", str(max(1, spec.memory // (1 << 20))), unit="MiB")
    _sub(root, "vcpu", str(spec.cpus), placement="static")
    _os(root, spec, i)
    _features(root, spec, i.virt_type, dev)
    _cpu(root, spec, i.virt_type, dev)
    clock = _sub(root, "clock", offset="utc")
    if dev.rtc_catchup:
        _sub(clock, "timer", name="rtc", tickpolicy="catchup")
    if not dev.hpet:
        _sub(clock, "timer", name="hpet", present="no")
    if dev.hyperv and i.virt_type == "kvm":  # hv_time of the QEMU driver's Hyper-V flags (libvirt's Hyper-V clock)
        _sub(clock, "timer", name="hypervclock", present="yes")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    if spec.arch == "x86_64":
        pm = _sub(root, "pm")
        _sub(pm, "suspend-to-mem", enabled="no")
        _sub(pm, "suspend-to-disk", enabled="no")
    devices = _sub(root, "devices")
    _disks(devices, i, dev)
    if dev.usb or spec.arch == "aarch64":
        _sub(devices, "controller", type="usb", index="0", model="qemu-xhci")
    else:
        _sub(devices, "controller", type="usb", index="0", model="none")
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    if dev.rng:
        rng = _sub(devices, "rng", model="virtio")
        _sub(rng, "backend", "/dev/urandom", model="random")
    _tpm(devices, spec)
    _display(devices, spec, dev)
    _network(devices, i, dev)
    _sub(devices, "memballoon", model="none")
    _nvme_override(root, dev)
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode") + "\n"
    bad = _NOT_XML.search(xml)  # ElementTree escapes markup but writes these as they are: no parser reads them
    if bad is not None:
        raise LimapyError(
            f"the domain of `{i.instance}` would carry the character {bad.group()!r}, which XML cannot hold",
            hint="remove control characters from the instance's paths and the kernel command line",
        )
    return xml


def parse(xml: str) -> ET.Element:
    """XML that libvirtd returned. ElementTree resolves no external entities, and the expat it runs on (2.4 and
    later) bounds entity expansion, so a hostile daemon cannot make this read files or exhaust memory."""
    return ET.fromstring(xml)  # noqa: S314 - see above


def as_tcg(xml: str) -> str:
    """The same domain under TCG (domain type `qemu`): the host CPU model becomes QEMU's `max`, and the
    Hyper-V enlightenments and clock (KVM-only) go."""
    root = parse(xml)
    root.set("type", "qemu")
    cpu = root.find("cpu")
    if cpu is not None and cpu.get("mode") == "host-passthrough":
        cpu.set("mode", "maximum")
    feats = root.find("features")
    hv = feats.find("hyperv") if feats is not None else None
    if feats is not None and hv is not None:
        feats.remove(hv)
    clock = root.find("clock")
    for timer in list(clock) if clock is not None else []:
        if timer.get("name") == "hypervclock":
            clock.remove(timer)  # type: ignore[union-attr]
    return ET.tostring(root, encoding="unicode")


def metadata_of(xml: str) -> dict[str, str] | None:
    """limapy's metadata in a domain's XML (None: not a domain limapy made)."""
    try:
        root = parse(xml)
    except ET.ParseError:
        return None
    el = root.find(f"metadata/{{{LIMAPY_NS}}}instance")
    return dict(el.attrib) if el is not None else None


def nvram_path(xml: str) -> str | None:
    root = parse(xml)
    el = root.find("os/nvram")
    return el.text.strip() if el is not None and el.text else None
