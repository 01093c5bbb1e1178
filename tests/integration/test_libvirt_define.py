"""The libvirt driver's domain XML, defined in the real libvirtd (qemu:///system) and read back: libvirt must
accept it (schema-validated) and keep the devices limapy asked for, for the Windows template on x86_64 (with
`tpm: true`) and aarch64 and for a Linux UEFI guest on x86_64. Nothing boots: each domain is defined, read
(`XMLDesc`, and the QEMU command line libvirt would run, `domainXMLToNative`), and undefined with its NVRAM.

Skips when the libvirt binding is missing, qemu:///system does not answer, or qemu-img or the firmware is
missing. Each case takes well under a second.
"""

from __future__ import annotations

import functools
import json
import secrets
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from limapy import config
from limapy.base.errors import LimapyError
from limapy.config.load import load
from limapy.config.model import Spec
from limapy.driver.libvirt import _firmware, domain
from limapy.driver.libvirt.domain import Firmware, Inputs, Volume
from limapy.expr import edits
from limapy.guest.boot import INSTALL as WIN_INSTALL
from limapy.qemu import firmware

REPO = Path(__file__).resolve().parents[2]
URI = "qemu:///system"
MIB = 1024 * 1024
# The vars store each arch needs (limapy/qemu/firmware.py, docs/windows.md "Running QEMU by hand"): x86_64's
# OVMF 4 MB layout is code + vars = 4 MiB (firmware.X86_LAYOUTS; Debian's OVMF_CODE_4M.fd is 3,653,632 B and
# OVMF_VARS_4M.fd 540,672 B), so the NVRAM is a copy of that vars template, 540,672 B; aarch64's virt machine
# takes pflash units of exactly 64 MiB (firmware.AARCH64_FLASH; Debian's AAVMF_CODE.fd and AAVMF_VARS.fd both
# are 67,108,864 B).
X86_LAYOUT = 4 * MIB
AARCH64_NVRAM = firmware.AARCH64_FLASH

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def lv() -> Any:
    try:
        import libvirt  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("the libvirt Python binding is not installed (pip install libvirt-python)")
    return libvirt


@pytest.fixture(scope="module")
def conn(lv: Any) -> Iterator[Any]:
    lv.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        c = lv.open(URI)
        c.getVersion()
    except lv.libvirtError as e:
        pytest.skip(f"libvirtd at {URI} does not answer: {e}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real files for every volume the domain names: a qcow2 disk and empty ISOs."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    d = tmp_path_factory.mktemp("lvdef")
    disk = d / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1G"], check=True, timeout=30)
    out = {"disk": disk}
    for name in ("install", "virtio-win", "cidata"):
        out[name] = d / f"{name}.iso"
        out[name].write_bytes(b"")
    return out


@functools.cache
def spec_of(case: str) -> Spec:
    if case.startswith("windows"):
        doc = load(str(REPO / "templates/experimental/windows.yaml"))
        sets = [f'.arch = "{case.split("-")[1]}"', ".tpm = true"]
    else:
        doc = load(str(REPO / "templates/default.yaml"))
        sets = ['.arch = "x86_64"']
    for expr in sets:
        edits.apply(doc.data, expr)
    return config.check(doc, name="lvdef").spec


def firmware_of(spec: Spec, case: str) -> Firmware | None:
    if case.endswith("libvirt-firmware"):
        return Firmware()  # what a remote libvirt host gets: libvirt picks from its own descriptors
    try:
        return _firmware(spec, local=True)  # this host's OVMF/AAVMF pair, size-checked as for QEMU
    except LimapyError as e:
        pytest.skip(f"no usable UEFI firmware for {spec.arch}: {e.message}")


def disk_rows(root: ET.Element) -> list[tuple[str | None, ...]]:
    rows: list[tuple[str | None, ...]] = []
    for d in root.iterfind("devices/disk"):
        boot = d.find("boot")
        rows.append((d.get("device"), d.find("target").get("bus"),  # type: ignore[union-attr]
                     d.find("source").get("file"), boot.get("order") if boot is not None else None))  # type: ignore[union-attr]  # fmt: skip
    return rows


def argv_devices(native: str) -> list[str]:
    """The `-device` drivers of a QEMU command line libvirt generated (JSON or key=value)."""
    out = []
    for part in native.split(" -device ")[1:]:
        word = part.split(" -", 1)[0].strip().strip("'")
        out.append(json.loads(word)["driver"] if word.startswith("{") else word.split(",")[0])
    return out


CASES = ["windows-x86_64", "windows-aarch64", "linux-x86_64", "linux-x86_64-libvirt-firmware"]


@pytest.mark.parametrize("case", CASES)
def test_libvirt_keeps_the_domain(lv: Any, conn: Any, files: dict[str, Path], case: str) -> None:
    spec = spec_of(case)
    fw = firmware_of(spec, case)
    instance = f"lptest-{secrets.token_hex(4)}"
    name = domain.domain_name(instance)
    inputs = Inputs(
        instance=instance,
        instance_dir=f"/tmp/{instance}",
        virt_type="qemu",
        ssh_port=60022,
        mac="52:55:55:7e:57:01",
        disk=Volume(str(files["disk"]), "qcow2"),
        cidata=Volume(str(files["cidata"])),
        iso=Volume(str(files["install"])) if spec.os.value == "Windows" else None,
        virtio_win=Volume(str(files["virtio-win"])) if spec.virtio_win is not None else None,
        firmware=fw,
        stage=WIN_INSTALL,
    )
    xml = domain.build(spec, inputs)
    asked = ET.fromstring(xml)
    with pytest.raises(lv.libvirtError):
        conn.lookupByName(name)  # a fresh name
    dom = conn.defineXMLFlags(xml, lv.VIR_DOMAIN_DEFINE_VALIDATE)  # libvirt's RNG schema, too
    nvram: str | None = None
    try:
        kept_xml = dom.XMLDesc(0)
        kept = ET.fromstring(kept_xml)
        assert kept.findtext("name") == name
        assert domain.metadata_of(kept_xml) == {"name": instance, "dir": inputs.instance_dir}
        assert kept.find("os/type").get("arch") == spec.arch  # type: ignore[union-attr]
        assert disk_rows(kept) == disk_rows(asked)
        iface = kept.find("devices/interface")
        assert iface is not None and iface.get("type") == "user"
        assert iface.find("model").get("type") == asked.find("devices/interface/model").get("type")  # type: ignore[union-attr]
        assert iface.find("alias").get("name") == "ua-limapynet0"  # type: ignore[union-attr]  # domain.HOSTNET
        for g in kept.iterfind("devices/graphics"):
            assert g.get("listen") == "127.0.0.1"
            assert {x.get("address") for x in g.iterfind("listen")} == {"127.0.0.1"}
        tpms = kept.findall("devices/tpm")
        if spec.tpm:
            (tpm,) = tpms
            assert tpm.get("model") == ("tpm-crb" if spec.arch == "x86_64" else "tpm-tis")
            backend = tpm.find("backend")
            assert backend is not None and (backend.get("type"), backend.get("version")) == ("emulator", "2.0")
        else:
            assert tpms == []
        nvram = _check_firmware(kept, fw, spec.arch)
        native = conn.domainXMLToNative("qemu-argv", kept_xml, 0)
        _check_qemu_devices(argv_devices(native), native, spec)
        # a redefinition keeps the domain's UUID, as limapy.driver.libvirt.volumes.materialize sends it
        again = domain.parse(domain.build(spec, inputs))
        ET.SubElement(again, "uuid").text = dom.UUIDString()
        assert conn.defineXMLFlags(ET.tostring(again, encoding="unicode"), 0).UUIDString() == dom.UUIDString()
    finally:
        dom.undefineFlags(lv.VIR_DOMAIN_UNDEFINE_NVRAM | getattr(lv, "VIR_DOMAIN_UNDEFINE_TPM", 0))
    with pytest.raises(lv.libvirtError) as gone:
        conn.lookupByName(name)
    assert gone.value.get_error_code() == lv.VIR_ERR_NO_DOMAIN
    assert nvram is None or not Path(nvram).exists()


def _check_firmware(kept: ET.Element, fw: Firmware | None, arch: str) -> str | None:
    """The loader and the NVRAM template libvirt kept, and the size the arch's NVRAM will have; the NVRAM path."""
    os_el = kept.find("os")
    assert os_el is not None and fw is not None
    if fw.loader is None:  # libvirt 9.0 picks the firmware when the domain starts
        assert os_el.get("firmware") == "efi"
        assert {f.get("name"): f.get("enabled") for f in os_el.iterfind("firmware/feature")} == {
            "secure-boot": "no", "enrolled-keys": "no"}  # fmt: skip
        return None
    loader, nvram = os_el.find("loader"), os_el.find("nvram")
    assert loader is not None and nvram is not None
    assert (loader.text, loader.get("readonly"), loader.get("type")) == (fw.loader, "yes", "pflash")
    assert nvram.get("template") == fw.nvram_template and nvram.text  # libvirt names the instance's copy
    template = Path(nvram.get("template", ""))
    code_size, vars_size = Path(fw.loader).stat().st_size, template.stat().st_size
    if arch == "x86_64":
        assert code_size + vars_size == X86_LAYOUT, "not the 4 MB OVMF layout (limapy/qemu/firmware.py)"
    else:
        assert (code_size, vars_size) == (AARCH64_NVRAM, AARCH64_NVRAM)
    path = Path(nvram.text.strip())
    if path.exists():  # made at the first start; a leftover of the same name must fit
        assert path.stat().st_size == vars_size
    return str(path)


def _check_qemu_devices(devices: list[str], native: str, spec: Spec) -> None:
    """What QEMU would get matches limapy.qemu.cmdline's layout for the spec."""
    if spec.os.value == "Windows" and spec.arch == "x86_64":  # AHCI disk and CDs, e1000e, VGA, usb-tablet
        assert devices.count("ide-hd") == 1 and devices.count("ide-cd") == 2
        assert {"e1000e", "VGA", "usb-tablet", "qemu-xhci"} <= set(devices)
        assert not [d for d in devices if d.startswith("virtio")]
        assert "tpm-crb" in devices
    elif spec.os.value == "Windows":  # NVMe disk, virtio NIC, CDs on usb-storage, ramfb, usb kbd+tablet, tpm-tis
        assert devices.count("usb-storage") == 3 and "ide-cd" not in devices
        assert {"nvme", "virtio-net-pci", "ramfb", "usb-kbd", "usb-tablet", "tpm-tis-device"} <= set(devices)
        # the disk's virtio-blk driver replaced by <qemu:override> (libvirt 9.0 has no NVMe disk bus)
        assert "virtio-blk-pci" not in devices and '"serial":"limapy0"' in native.replace(" ", "")
    else:  # virtio disk, NoCloud seed on virtio-scsi, virtio NIC and RNG, no display
        assert {"virtio-blk-pci", "virtio-scsi-pci", "scsi-cd", "virtio-net-pci", "virtio-rng-pci"} <= set(devices)
        assert "-display none" in native
    assert (" -vnc 127.0.0.1:" in native) == (spec.display != "none")
