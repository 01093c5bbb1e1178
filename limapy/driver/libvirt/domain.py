"""The libvirt domain of an instance, as a pure function: spec + where its volumes are + facts in, XML out.

Built with ElementTree (every name, path and value is escaped by the serializer, never pasted). The device
layouts are the QEMU driver's (limapy.qemu.cmdline; docs/windows.md says why each): Linux on virtio with the
NoCloud seed as a virtio-scsi CD; Windows on AHCI + e1000e (x86_64, inbox drivers) or on virtio with the
virtio-win CD; on aarch64 the disk on NVMe (through `<qemu:override>`) and the CDs on USB storage. One part
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
from limapy.qemu import cmdline

LIMAPY_NS = "https://github.com/limapy/limapy/xmlns/domain/1"
ET.register_namespace("limapy", LIMAPY_NS)
#: libvirt's QEMU namespace (`<qemu:override>`: properties of a device libvirt defines, replaced).
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
ET.register_namespace("qemu", QEMU_NS)
#: The user alias of a Windows guest's disks (libvirt's user aliases start `ua-`).
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
    iso: Volume | None = None  # a Linux ISO, or the Windows install ISO
    virtio_win: Volume | None = None
    kernel: Volume | None = None
    initrd: Volume | None = None
    kernel_cmdline: str | None = None
    firmware: Firmware | None = None
    windows_boot: str = cmdline.WIN_INSTALLED
    rdp_port: int | None = None
    host_label: str = ""  # where limapy runs (the metadata says which limapy made the domain)
    extra: dict[str, str] = field(default_factory=dict)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _cpu(root: ET.Element, spec: Spec, virt_type: str) -> None:
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
        if spec.is_windows and spec.arch == "x86_64" and name in cmdline.WINDOWS_BAD_CPUS:
            raise LimapyError(
                f"vmOpts.qemu.cpuType {configured!r} lacks SSE4.2/POPCNT, which Windows 11 24H2 requires",
                hint="use `host` (with KVM) or `max`",
            )
    else:
        el = _sub(root, "cpu", mode="host-passthrough" if virt_type == "kvm" else "maximum", check="none")
    _sub(el, "topology", sockets="1", dies="1", cores=str(spec.cpus), threads="1")


def _features(root: ET.Element, spec: Spec, virt_type: str) -> None:
    feats = _sub(root, "features")
    _sub(feats, "acpi")
    if spec.arch == "x86_64":
        _sub(feats, "apic")
        _sub(feats, "vmport", state="off")
        if spec.is_windows and virt_type == "kvm":
            hv = _sub(feats, "hyperv", mode="custom")
            for flag in ("relaxed", "vapic", "vpindex", "runtime", "synic", "stimer", "frequencies"):
                _sub(hv, flag, state="on")
            _sub(hv, "spinlocks", state="on", retries="8191")
    elif spec.is_windows:
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


def _linux_devices(devices: ET.Element, spec: Spec, i: Inputs) -> None:
    _disk(devices, i.disk, device="disk", bus="virtio", dev="vda", boot=None if i.kernel else 1)
    _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    n = 0
    if i.iso is not None:
        _disk(devices, i.iso, device="cdrom", bus="scsi", dev=_dev_name("scsi", n), boot=None if i.kernel else 2)
        n += 1
    if i.cidata is not None:
        _disk(devices, i.cidata, device="cdrom", bus="scsi", dev=_dev_name("scsi", n), boot=None)


def _windows_devices(devices: ET.Element, spec: Spec, i: Inputs) -> None:
    virtio = spec.windows_virtio
    if spec.arch == "aarch64" and not virtio:
        raise LimapyError("an aarch64 Windows guest needs osOpts.Windows.virtioWin (NetKVM for its network)")
    install = i.windows_boot == cmdline.WIN_INSTALL
    media: list[Volume] = []
    if i.windows_boot != cmdline.WIN_INSTALLED:
        if i.iso is None or i.cidata is None:
            raise LimapyError("a Windows install needs the install ISO and the answer ISO")
        media.append(i.iso)
        if virtio:
            if i.virtio_win is None:
                raise LimapyError("osOpts.Windows.virtioWin is set but no virtio-win ISO was given")
            media.append(i.virtio_win)
        media.append(i.cidata)
    nvme = cmdline.windows_disk_bus(spec) == "nvme"
    # libvirt 9.0 has no NVMe disk bus (only NVMe host devices): an aarch64 disk is defined as virtio-blk, a PCI
    # device like NVMe, and its `-device` driver replaced by QEMU's `nvme` through <qemu:override> (_nvme_override).
    disk_bus = "virtio" if virtio or nvme else "sata"
    _disk(devices, i.disk, device="disk", bus=disk_bus, dev=_dev_name(disk_bus, 0), boot=2 if install else 1,
          alias=f"{DISK_ALIAS}0" if nvme else None)  # fmt: skip
    cd_bus = "sata" if spec.arch == "x86_64" else "usb"
    first = 1 if cd_bus == "sata" and disk_bus == "sata" else 0
    for n, vol in enumerate(media):
        boot = 1 if n == 0 and install else None
        _disk(devices, vol, device="cdrom", bus=cd_bus, dev=_dev_name(cd_bus, first + n), boot=boot)


def _nvme_override(root: ET.Element, spec: Spec) -> None:
    """Windows on aarch64: the disk on QEMU's `nvme` (Windows on Arm's inbox stornvme), as the QEMU driver's
    command line has it; libvirt's `<qemu:override>` (libvirt 8.2 and later) replaces the device's driver and adds
    the serial number an NVMe controller needs, keeping libvirt's PCI address, drive and boot index."""
    if not spec.is_windows or cmdline.windows_disk_bus(spec) != "nvme":
        return
    override = ET.SubElement(root, f"{{{QEMU_NS}}}override")
    device = ET.SubElement(override, f"{{{QEMU_NS}}}device", {"alias": f"{DISK_ALIAS}0"})
    frontend = ET.SubElement(device, f"{{{QEMU_NS}}}frontend")
    for name, value in (("driver", "nvme"), ("serial", "limapy0")):
        ET.SubElement(frontend, f"{{{QEMU_NS}}}property", {"name": name, "type": "string", "value": value})


def _display(devices: ET.Element, spec: Spec) -> None:
    display = cmdline.display_arg(spec)  # refuses what would not stay on this host
    if spec.is_windows:
        model = "vga" if spec.arch == "x86_64" else "ramfb"
        _sub(_sub(devices, "video"), "model", type=model)
        if spec.arch == "aarch64":
            _sub(devices, "input", type="keyboard", bus="usb")
        _sub(devices, "input", type="tablet", bus="usb")
    elif display != "none":
        _sub(_sub(devices, "video"), "model", type="virtio")
        _sub(devices, "input", type="keyboard", bus="virtio")
        _sub(devices, "input", type="tablet", bus="virtio")
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


def _network(devices: ET.Element, spec: Spec, i: Inputs) -> None:
    """The user-mode NIC (SLIRP, Lima's 192.168.5.0/24: the guest gets .15); its forwards are added through
    the monitor when the domain starts (limapy.driver.libvirt.machine), as libvirt's SLIRP has none."""
    nic = "virtio" if (not spec.is_windows or spec.windows_virtio) else "e1000e"
    iface = _sub(devices, "interface", type="user")
    _sub(iface, "mac", address=i.mac)
    _sub(iface, "model", type=nic)
    _sub(iface, "ip", family="ipv4", address="192.168.5.0", prefix="24")
    _sub(iface, "alias", name=f"ua-{NETDEV_ID}")


def build(spec: Spec, i: Inputs) -> str:
    """The domain XML of instance `i.instance`."""
    if spec.arch not in ("x86_64", "aarch64"):
        raise LimapyError(f"the libvirt driver does not support arch {spec.arch!r}")
    if spec.arch == "aarch64" and i.firmware is None and i.kernel is None:
        raise LimapyError("an aarch64 guest needs UEFI firmware or a kernel to boot")
    if spec.is_windows and i.windows_boot not in (cmdline.WIN_INSTALL, cmdline.WIN_SETUP, cmdline.WIN_INSTALLED):
        raise ValueError(f"windows_boot {i.windows_boot!r}")
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
    _features(root, spec, i.virt_type)
    _cpu(root, spec, i.virt_type)
    clock = _sub(root, "clock", offset="utc")
    if spec.is_windows and spec.arch == "x86_64":
        _sub(clock, "timer", name="rtc", tickpolicy="catchup")
        _sub(clock, "timer", name="hpet", present="no")
        if i.virt_type == "kvm":  # hv_time of the QEMU driver's Hyper-V flags (libvirt's Hyper-V clock)
            _sub(clock, "timer", name="hypervclock", present="yes")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    if spec.arch == "x86_64":
        pm = _sub(root, "pm")
        _sub(pm, "suspend-to-mem", enabled="no")
        _sub(pm, "suspend-to-disk", enabled="no")
    devices = _sub(root, "devices")
    if spec.is_windows:
        _windows_devices(devices, spec, i)
    else:
        _linux_devices(devices, spec, i)
    if spec.is_windows or spec.arch == "aarch64":
        _sub(devices, "controller", type="usb", index="0", model="qemu-xhci")
    else:
        _sub(devices, "controller", type="usb", index="0", model="none")
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    if not spec.is_windows or spec.windows_virtio:
        rng = _sub(devices, "rng", model="virtio")
        _sub(rng, "backend", "/dev/urandom", model="random")
    _tpm(devices, spec)
    _display(devices, spec)
    _network(devices, spec, i)
    _sub(devices, "memballoon", model="none")
    _nvme_override(root, spec)
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
