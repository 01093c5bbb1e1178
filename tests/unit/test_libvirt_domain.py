"""The libvirt driver's pure parts: the domain XML (limapy.driver.libvirt.domain.build) must carry the QEMU
driver's device layouts (limapy.qemu.cmdline, docs/windows.md "Devices and drivers"), keep every string data,
and put every forward on 127.0.0.1; libvirt URIs (target.parse) and the screenshot converter (volumes.to_png)
live in tests/unit/test_libvirt_target.py."""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from limapy import config
from limapy.base.errors import LimapyError
from limapy.config.load import load, load_bytes
from limapy.config.model import Spec
from limapy.driver.libvirt import domain
from limapy.driver.libvirt.domain import Firmware, Inputs, Volume
from limapy.expr import edits
from limapy.guest.boot import INSTALL as WIN_INSTALL
from limapy.guest.boot import INSTALLED as WIN_INSTALLED
from limapy.guest.boot import SETUP as WIN_SETUP

REPO = Path(__file__).resolve().parents[2]
WINDOWS = REPO / "templates" / "experimental" / "windows.yaml"
POOL = "/var/lib/libvirt/images/limapy"
OVMF = Firmware(loader="/usr/share/OVMF/OVMF_CODE_4M.fd", nvram_template="/usr/share/OVMF/OVMF_VARS_4M.fd")
AAVMF = Firmware(loader="/usr/share/AAVMF/AAVMF_CODE.fd", nvram_template="/usr/share/AAVMF/AAVMF_VARS.fd")
VIRTIO_WIN_X86 = (
    '.osOpts.Windows.virtioWin += [{"location": "https://example.invalid/virtio-win.iso", "arch": "x86_64"}]'
)
KERNEL_YAML = b"""
arch: x86_64
images:
- location: /srv/img/disk.qcow2
  arch: x86_64
  kernel: {location: /srv/img/vmlinuz, cmdline: "root=/dev/vda console=ttyS0"}
  initrd: {location: /srv/img/initrd}
portForwards:
- {guestPort: 8080, hostPort: 18080, static: true}
- {guestPort: 53, hostPort: 10053, proto: udp, static: true}
- {guestPort: 9000, hostPort: 19000}
"""


@pytest.fixture(autouse=True, scope="module")
def _home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No `_config/default.yaml` of the user's own home changes the specs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIMAPY_HOME", str(tmp_path_factory.mktemp("home")))
        yield


@functools.cache
def windows_spec(arch: str, *sets: str) -> Spec:
    """The shipped Windows template for `arch` (its install ISO need not exist: build does no I/O)."""
    doc = load(str(WINDOWS))
    for expr in (f'.arch = "{arch}"', *sets):
        edits.apply(doc.data, expr)
    return config.check(doc, name="win").spec


@functools.cache
def linux_spec(kind: str, *sets: str) -> Spec:
    """`kernel`: an image with its own kernel (direct kernel boot); `uefi`: the default template on x86_64."""
    doc = load_bytes(KERNEL_YAML, "/tmp/k.yaml") if kind == "kernel" else load(str(REPO / "templates/default.yaml"))
    for expr in ('.arch = "x86_64"', *sets):
        edits.apply(doc.data, expr)
    return config.check(doc, name="lin").spec


def inputs(spec: Spec, **kw: Any) -> Inputs:
    vol = f"{POOL}/limapy-inst"
    base: dict[str, Any] = {
        "instance": "inst",
        "instance_dir": "/home/u/.limapy/inst",
        "virt_type": "qemu",
        "ssh_port": 60022,
        "mac": "52:55:55:12:34:56",
        "disk": Volume(f"{vol}.qcow2", "qcow2"),
        "cidata": Volume(f"{vol}-cidata.iso"),
    }
    if spec.os.value == "Windows":
        base |= {"iso": Volume(f"{vol}-install.iso"), "firmware": AAVMF if spec.arch == "aarch64" else OVMF}
        if spec.virtio_win is not None:
            base["virtio_win"] = Volume(f"{vol}-virtio-win.iso")
    base.update(kw)
    return Inputs(**base)


def build(spec: Spec, **kw: Any) -> ET.Element:
    return ET.fromstring(domain.build(spec, inputs(spec, **kw)))


def disks(root: ET.Element) -> list[tuple[str, str, str, str | None]]:
    """(device, bus, source file, boot order) of every disk, in document order (= QEMU's order)."""
    out = []
    for d in root.iterfind("devices/disk"):
        target, source, boot = d.find("target"), d.find("source"), d.find("boot")
        assert target is not None and source is not None
        order = boot.get("order") if boot is not None else None
        out.append((d.get("device", ""), target.get("bus", ""), source.get("file", ""), order))
    return out


def nic_model(root: ET.Element) -> str | None:
    (iface,) = root.iterfind("devices/interface")
    return iface.find("model").get("type")  # type: ignore[union-attr]


def all_models(root: ET.Element) -> set[str]:
    return {m.get("type", "") for m in root.iter("model")} | {el.get("model", "") for el in root.iter()}


# -- Linux -----------------------------------------------------------------------------------------------------


def test_linux_kernel_boot_x86_64() -> None:
    spec = linux_spec("kernel")
    k = f"{POOL}/limapy-inst-kernel"
    root = build(spec, kernel=Volume(k), initrd=Volume(k + "-initrd"), kernel_cmdline="root=/dev/vda console=ttyS0")
    assert root.get("type") == "qemu" and root.findtext("name") == "limapy-inst"
    os_el = root.find("os")
    assert os_el is not None and os_el.get("firmware") is None and os_el.find("loader") is None
    assert (os_el.findtext("type"), os_el.find("type").get("machine")) == ("hvm", "q35")  # type: ignore[union-attr]
    assert (os_el.findtext("kernel"), os_el.findtext("initrd")) == (k, k + "-initrd")
    assert os_el.findtext("cmdline") == "root=/dev/vda console=ttyS0"
    # virtio disk, the seed as a CD on virtio-scsi; QEMU's kernel loader boots, so no device claims a boot order
    assert disks(root) == [
        ("disk", "virtio", f"{POOL}/limapy-inst.qcow2", None),
        ("cdrom", "scsi", f"{POOL}/limapy-inst-cidata.iso", None),
    ]
    assert root.find("devices/controller[@type='scsi']").get("model") == "virtio-scsi"  # type: ignore[union-attr]
    assert root.find("devices/disk[@device='cdrom']/readonly") is not None
    assert nic_model(root) == "virtio" and root.find("devices/rng").get("model") == "virtio"  # type: ignore[union-attr]
    assert root.find("devices/controller[@type='usb']").get("model") == "none"  # type: ignore[union-attr]
    assert root.find("devices/tpm") is None and root.find("devices/graphics") is None  # tpm false, display none
    assert root.find("devices/video/model").get("type") == "none"  # type: ignore[union-attr]
    assert not {"sata", "e1000e", "usb"} & ({t.get("bus") for t in root.iter("target")} | {nic_model(root)})


def test_linux_uefi_x86_64_boots_the_disk_with_this_hosts_pair() -> None:
    spec = linux_spec("uefi")
    root = build(spec, firmware=OVMF)
    os_el = root.find("os")
    assert os_el is not None and os_el.get("firmware") is None and os_el.find("kernel") is None
    loader = os_el.find("loader")
    assert loader is not None and loader.text == OVMF.loader
    assert (loader.get("readonly"), loader.get("type"), loader.get("secure")) == ("yes", "pflash", "no")
    assert os_el.find("nvram").get("template") == OVMF.nvram_template  # type: ignore[union-attr]
    assert disks(root)[0] == ("disk", "virtio", f"{POOL}/limapy-inst.qcow2", "1")
    # a Linux ISO boots after the disk (QEMU: disk bootindex 0, ISO 1), the seed never boots
    root = build(spec, firmware=OVMF, iso=Volume(f"{POOL}/limapy-inst-install.iso"))
    assert [(b, o) for _, b, _, o in disks(root)] == [("virtio", "1"), ("scsi", "2"), ("scsi", None)]


def test_firmware_efi_without_a_loader_lets_libvirt_choose() -> None:
    os_el = build(linux_spec("uefi"), firmware=Firmware()).find("os")
    assert os_el is not None and os_el.get("firmware") == "efi"
    assert os_el.find("loader") is None and os_el.find("nvram") is None
    feats = {f.get("name"): f.get("enabled") for f in os_el.iterfind("firmware/feature")}
    assert feats == {"secure-boot": "no", "enrolled-keys": "no"}
    os_el = build(linux_spec("uefi"), firmware=Firmware(secure_boot=True)).find("os")
    assert {f.get("enabled") for f in os_el.iterfind("firmware/feature")} == {"yes"}  # type: ignore[union-attr]


def test_aarch64_without_firmware_or_kernel_refused() -> None:
    with pytest.raises(LimapyError, match="aarch64 guest needs UEFI firmware"):
        domain.build(linux_spec("uefi", '.arch = "aarch64"'), inputs(linux_spec("uefi")))


# -- Windows ---------------------------------------------------------------------------------------------------

MEDIA = {
    "install": f"{POOL}/limapy-inst-install.iso",
    "virtio": f"{POOL}/limapy-inst-virtio-win.iso",
    "answer": f"{POOL}/limapy-inst-cidata.iso",
}
DISK = f"{POOL}/limapy-inst.qcow2"


@pytest.mark.parametrize(
    ("boot", "want"),
    [
        # the first boot of an install: the install ISO boots, the disk after it
        (WIN_INSTALL, [("disk", DISK, "2"), ("cdrom", MEDIA["install"], "1"), ("cdrom", MEDIA["answer"], None)]),
        # Setup has written the disk: the disk boots first, the media stay attached
        (WIN_SETUP, [("disk", DISK, "1"), ("cdrom", MEDIA["install"], None), ("cdrom", MEDIA["answer"], None)]),
        (WIN_INSTALLED, [("disk", DISK, "1")]),  # installed: no media
    ],
)
def test_windows_x86_64_inbox_layout(boot: str, want: list[tuple[str, str, str | None]]) -> None:
    """No virtio-win for x86_64 (the shipped template): AHCI disk and CDs, e1000e, VGA, PS/2 + usb-tablet."""
    spec = windows_spec("x86_64")
    assert spec.virtio_win is None
    root = build(spec, stage=boot)
    assert [(dev, src, order) for dev, _, src, order in disks(root)] == want
    assert {bus for _, bus, _, _ in disks(root)} == {"sata"}
    assert nic_model(root) == "e1000e"
    assert root.find("devices/rng") is None and "virtio" not in all_models(root)
    assert root.find("devices/video/model").get("type") == "vga"  # type: ignore[union-attr]
    assert [(i.get("type"), i.get("bus")) for i in root.iterfind("devices/input")] == [("tablet", "usb")]
    assert root.find("devices/controller[@type='usb']").get("model") == "qemu-xhci"  # type: ignore[union-attr]
    assert root.find("os/type").get("machine") == "q35"  # type: ignore[union-attr]
    timers = {t.get("name"): t.attrib for t in root.iterfind("clock/timer")}
    assert root.find("clock").get("offset") == "utc" and timers["hpet"]["present"] == "no"  # type: ignore[union-attr]
    assert timers["rtc"]["tickpolicy"] == "catchup"  # QEMU's driftfix=slew


@pytest.mark.parametrize(
    ("boot", "want"),
    [
        (
            WIN_INSTALL,
            [
                ("virtio", DISK, "2"),
                ("sata", MEDIA["install"], "1"),
                ("sata", MEDIA["virtio"], None),
                ("sata", MEDIA["answer"], None),
            ],
        ),
        (
            WIN_SETUP,
            [
                ("virtio", DISK, "1"),
                ("sata", MEDIA["install"], None),
                ("sata", MEDIA["virtio"], None),
                ("sata", MEDIA["answer"], None),
            ],
        ),
        (WIN_INSTALLED, [("virtio", DISK, "1")]),
    ],
)
def test_windows_x86_64_with_virtio_win(boot: str, want: list[tuple[str, str, str | None]]) -> None:
    """virtio disk and NIC; the virtio-win CD between the install and the answer ISO (E: for DriverPaths)."""
    spec = windows_spec("x86_64", VIRTIO_WIN_X86)
    assert spec.virtio_win is not None
    root = build(spec, stage=boot)
    assert [(bus, src, order) for _, bus, src, order in disks(root)] == want
    assert nic_model(root) == "virtio" and root.find("devices/rng") is not None
    assert root.find("devices/video/model").get("type") == "vga"  # type: ignore[union-attr]


def test_windows_aarch64_layout() -> None:
    """virt + GICv3, the disk on NVMe, virtio NIC, every CD on USB storage (under the one qemu-xhci), ramfb, usb
    kbd and tablet; tpm-tis (libvirt makes it tpm-tis-device on Arm)."""
    spec = windows_spec("aarch64")
    root = build(spec, stage=WIN_INSTALL)
    assert root.find("os/type").get("machine") == "virt"  # type: ignore[union-attr]
    assert root.find("os/type").get("arch") == "aarch64"  # type: ignore[union-attr]
    assert root.find("features/gic").get("version") == "3"  # type: ignore[union-attr]
    assert [(bus, src, order) for _, bus, src, order in disks(root)] == [
        ("virtio", DISK, "2"), ("usb", MEDIA["install"], "1"), ("usb", MEDIA["virtio"], None),
        ("usb", MEDIA["answer"], None)]  # fmt: skip
    assert root.find("devices/controller[@type='usb']").get("model") == "qemu-xhci"  # type: ignore[union-attr]
    assert [(i.get("type"), i.get("bus")) for i in root.iterfind("devices/input")] == [
        ("keyboard", "usb"), ("tablet", "usb")]  # fmt: skip
    assert root.find("devices/video/model").get("type") == "ramfb"  # type: ignore[union-attr]
    assert nic_model(root) == "virtio" and "sata" not in {t.get("bus") for t in root.iter("target")}
    assert root.find("devices/tpm").get("model") == "tpm-tis"  # type: ignore[union-attr]
    assert root.find("pm") is None and root.find("features/hyperv") is None
    assert [b for _, b, _, _ in disks(build(spec, stage=WIN_INSTALLED))] == ["virtio"]
    # libvirt 9.0 has no NVMe disk bus: the virtio-blk disk's QEMU driver is replaced by `nvme` (issue 23), the
    # same device the QEMU driver's command line has (`nvme,drive=boot-disk,serial=limapy0`).
    assert root.find("devices/disk/alias").get("name") == "ua-limapydisk0"  # type: ignore[union-attr]
    q = "{http://libvirt.org/schemas/domain/qemu/1.0}"
    (device,) = root.iterfind(f"{q}override/{q}device")
    assert device.get("alias") == "ua-limapydisk0"
    props = {p.get("name"): (p.get("type"), p.get("value")) for p in device.iterfind(f"{q}frontend/{q}property")}
    assert props == {"driver": ("string", "nvme"), "serial": ("string", "limapy0")}
    assert 'xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"' in domain.build(spec, inputs(spec))
    x86 = windows_spec("x86_64", VIRTIO_WIN_X86)
    assert ET.fromstring(domain.build(x86, inputs(x86))).find(f"{q}override") is None


def test_windows_aarch64_without_virtio_win_refused() -> None:
    spec = windows_spec("aarch64")  # validation refuses such a config first; build refuses it too
    spec = replace(spec, windows=replace(spec.windows, virtio_win=()))
    with pytest.raises(LimapyError, match=r"needs osOpts\.Windows\.virtioWin"):
        domain.build(spec, inputs(spec, stage=WIN_INSTALL))


def test_windows_install_needs_its_media() -> None:
    spec = windows_spec("x86_64")
    with pytest.raises(LimapyError, match="install ISO and the answer ISO"):
        domain.build(spec, inputs(spec, iso=None, stage=WIN_INSTALL))
    vspec = windows_spec("x86_64", VIRTIO_WIN_X86)
    with pytest.raises(LimapyError, match="no virtio-win ISO"):
        domain.build(vspec, inputs(vspec, virtio_win=None, stage=WIN_SETUP))
    with pytest.raises(ValueError, match="install stage"):
        domain.build(spec, inputs(spec, stage="later"))


def test_windows_under_kvm_gets_the_hyperv_enlightenments() -> None:
    """QEMU's HYPERV_FLAGS: relaxed, vapic, spinlocks=0x1fff, vpindex, runtime, synic, stimer, time, frequencies."""
    spec = windows_spec("x86_64")
    root = build(spec, virt_type="kvm")
    hv = root.find("features/hyperv")
    assert hv is not None and hv.find("spinlocks").get("retries") == str(0x1FFF)  # type: ignore[union-attr]
    assert {el.tag for el in hv} == {
        "relaxed",
        "vapic",
        "spinlocks",
        "vpindex",
        "runtime",
        "synic",
        "stimer",
        "frequencies",
    }
    assert root.find("clock/timer[@name='hypervclock']").get("present") == "yes"  # type: ignore[union-attr]
    assert root.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]
    tcg = build(spec)
    assert tcg.find("features/hyperv") is None and tcg.find("clock/timer[@name='hypervclock']") is None
    assert tcg.find("cpu").get("mode") == "maximum"  # type: ignore[union-attr]


def test_windows_never_on_a_cpu_without_sse42() -> None:
    spec = windows_spec("x86_64", '.vmOpts.qemu.cpuType.x86_64 = "qemu64"')
    with pytest.raises(LimapyError, match=r"SSE4\.2"):
        domain.build(spec, inputs(spec))


# -- TPM and display -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "model"), [("x86_64", "tpm-crb"), ("aarch64", "tpm-tis")])
def test_tpm_only_when_asked(arch: str, model: str) -> None:
    on = build(windows_spec(arch, ".tpm = true")).findall("devices/tpm")
    assert [(t.get("model"), t.find("backend").attrib) for t in on] == [  # type: ignore[union-attr]
        (model, {"type": "emulator", "version": "2.0"})]  # fmt: skip
    assert build(windows_spec(arch, ".tpm = false")).find("devices/tpm") is None
    assert build(linux_spec("uefi", ".tpm = true"), firmware=OVMF).find("devices/tpm").get("model") == "tpm-crb"  # type: ignore[union-attr]
    assert build(linux_spec("uefi"), firmware=OVMF).find("devices/tpm") is None


@pytest.mark.parametrize(
    "sets",
    [
        ('.video.display = "default"',),  # the Windows template's
        ('.video.display = "vnc"', '.video.vnc.display = "127.0.0.1:3"'),
        ('.video.display = "gtk"',),
    ],
)
def test_a_display_is_vnc_on_loopback_only(sets: tuple[str, ...]) -> None:
    for root in (build(windows_spec("x86_64", *sets)), build(linux_spec("uefi", *sets), firmware=OVMF)):
        (g,) = root.iterfind("devices/graphics")
        assert (g.get("type"), g.get("listen")) == ("vnc", "127.0.0.1")
        assert [(x.get("type"), x.get("address")) for x in g.iterfind("listen")] == [("address", "127.0.0.1")]
        assert root.findall("devices/video/model")[0].get("type") in ("vga", "virtio")


def test_no_display_no_vnc_and_a_public_vnc_refused() -> None:
    assert build(windows_spec("x86_64", '.video.display = "none"')).find("devices/graphics") is None
    assert build(linux_spec("uefi"), firmware=OVMF).find("devices/graphics") is None  # template: none
    for vnc in ("0.0.0.0:0", "192.168.1.2:1"):
        spec = windows_spec("x86_64", '.video.display = "vnc"', f'.video.vnc.display = "{vnc}"')
        with pytest.raises(LimapyError, match=r"127\.0\.0\.1 only"):
            domain.build(spec, inputs(spec))


# -- hostile strings stay data ---------------------------------------------------------------------------------

HOSTILE_DIR = "/home/u/.limapy/a\"b'c&d<e>f ]]> <!-- x --> &amp; \t\n"
HOSTILE_CMDLINE = "root=/dev/vda x=<&'\"> </cmdline><kernel>/evil</kernel> ]]> &lt;"


def test_hostile_strings_round_trip_unchanged() -> None:
    spec = linux_spec("kernel")
    odd = f"{POOL}/<&'\">.qcow2"
    xml = domain.build(spec, inputs(spec, instance_dir=HOSTILE_DIR, disk=Volume(odd, "qcow2"),
                                    kernel=Volume(f"{POOL}/k&<"), kernel_cmdline=HOSTILE_CMDLINE,
                                    host_label="h\"<&>", extra={"note": "</instance><x a='1'/>"}))  # fmt: skip
    root = ET.fromstring(xml)
    assert root.findtext("os/cmdline") == HOSTILE_CMDLINE
    assert [k.text for k in root.iter("kernel")] == [f"{POOL}/k&<"]  # nothing injected
    assert disks(root)[0][2] == odd
    assert domain.metadata_of(xml) == {"name": "inst", "dir": HOSTILE_DIR, "host": "h\"<&>",
                                       "note": "</instance><x a='1'/>"}  # fmt: skip
    assert root.find("x") is None and len(list(root.iter("metadata"))) == 1


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\x08", "\ud800", "\ufffe"])
def test_characters_xml_cannot_hold_are_refused(bad: str) -> None:
    spec = linux_spec("kernel")
    for kw in ({"kernel_cmdline": f"console=ttyS0{bad}"}, {"instance_dir": f"/home/u/{bad}"}):
        with pytest.raises(LimapyError, match="XML cannot hold") as e:
            domain.build(spec, inputs(spec, kernel=Volume("/k"), **kw))
        assert "\n" not in e.value.message and bad not in e.value.message


def test_nvram_and_metadata_read_back() -> None:
    spec = windows_spec("x86_64")
    xml = domain.build(spec, inputs(spec, firmware=replace(OVMF, nvram="/var/lib/libvirt/qemu/nvram/x_VARS.fd")))
    assert domain.nvram_path(xml) == "/var/lib/libvirt/qemu/nvram/x_VARS.fd"
    assert domain.metadata_of("<domain><name>other</name></domain>") is None
    assert domain.metadata_of("not xml <") is None


# -- forwards --------------------------------------------------------------------------------------------------

RULE = re.compile(r"(tcp|udp):127\.0\.0\.1:(\d{1,5})-:(\d{1,5})")


def test_hostfwd_rules_all_on_loopback() -> None:
    spec = linux_spec("kernel")
    rules = domain.hostfwd_rules(spec, 60022, None)
    assert rules == [
        "tcp:127.0.0.1:60022-:22",
        "tcp:127.0.0.1:18080-:8080",
        "udp:127.0.0.1:18080-:8080",
        "udp:127.0.0.1:10053-:53",
    ]  # proto `any` is both; the non-static rule is the host agent's
    assert all(RULE.fullmatch(r) for r in rules)
    win = domain.hostfwd_rules(windows_spec("x86_64"), 2222, 53389)
    assert win == ["tcp:127.0.0.1:2222-:22", "tcp:127.0.0.1:53389-:3389"]
    bad = linux_spec("kernel", '.portForwards = [{"guestPort": 80, "hostPort": 8080, "hostIP": "0.0.0.0", '
                               '"static": true}]')  # fmt: skip
    with pytest.raises(LimapyError, match=r"127\.0\.0\.1 only"):
        domain.hostfwd_rules(bad, 60022, None)


def test_the_nic_is_slirp_with_the_alias_the_forwards_name() -> None:
    root = build(windows_spec("x86_64"))
    (iface,) = root.iterfind("devices/interface")
    assert iface.get("type") == "user" and iface.find("alias").get("name") == "ua-limapynet0"  # type: ignore[union-attr]
    assert domain.HOSTNET == "host" + iface.find("alias").get("name", "")  # type: ignore[union-attr]
    assert iface.find("ip").attrib == {"family": "ipv4", "address": "192.168.5.0", "prefix": "24"}  # type: ignore[union-attr]
    assert iface.find("mac").get("address") == "52:55:55:12:34:56"  # type: ignore[union-attr]


def test_as_tcg_turns_a_kvm_domain_into_an_emulated_one() -> None:
    """A remote host whose libvirt offers KVM that its QEMU cannot use gets the same domain under TCG."""
    spec = windows_spec("x86_64")
    xml = domain.build(spec, inputs(spec, virt_type="kvm"))
    root = ET.fromstring(domain.as_tcg(xml))
    assert root.get("type") == "qemu"
    assert root.find("cpu").get("mode") == "maximum"  # type: ignore[union-attr]
    assert root.find("features/hyperv") is None and root.find("clock/timer[@name='hypervclock']") is None
    # everything else is the same domain: its disks, NIC, firmware and metadata
    before = ET.fromstring(xml)
    for path in ("devices", "os", "metadata", "name", "memory"):
        assert ET.tostring(root.find(path)) == ET.tostring(before.find(path)), path  # type: ignore[arg-type]
