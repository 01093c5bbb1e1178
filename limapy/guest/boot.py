"""What a guest OS tells the engines about a boot, as data: the files it uses (`BootFiles`), the first-boot media to
write (`Media`), and the machine's devices (`Devices`), which limapy.qemu.cmdline turns into QEMU's argv and
limapy.driver.libvirt.domain into a domain's XML without asking which OS it is. What depends on the arch only
(q35 or virt, which GPU model, which TPM model) stays the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: How far a guest that installs itself from install media is (Windows): the first boot of an install (media
#: attached, the install media boot first and want a key pressed), a boot while its installer is under way (media
#: attached, the disk first: the installer has written it), or installed (no install media). A guest that boots
#: its image has no stage (None). CLONED: installed, and the first boot of a copy, which carries the medium that
#: gives it an identity of its own (limapy.guest.windows.identity).
INSTALL, SETUP, INSTALLED, CLONED = "install", "setup", "installed", "cloned"
STAGES = (INSTALL, SETUP, INSTALLED, CLONED)

#: What a CD-ROM holds; each engine attaches its own file or volume for it.
CD_ISO = "iso"  # the image's ISO: a Linux ISO image, or the install media
CD_DRIVERS = "drivers"  # a driver disc the installer reads (virtio-win)
CD_SEED = "seed"  # the first-boot media (the NoCloud seed, the answer ISO)


@dataclass(frozen=True)
class CD:
    media: str  # CD_*
    drive: str  # its drive's id on QEMU's command line
    bootindex: int | None = None  # 0 boots first (QEMU's bootindex; libvirt's boot order is one more)
    missing: str = ""  # the error when there is no file for it ("": optional, left out)


@dataclass(frozen=True)
class Devices:
    """The guest's machine, as its OS needs it for a spec and an install stage."""

    disk_bus: str = "virtio"  # the boot disk's and the additional disks': virtio (virtio-blk), sata (AHCI), nvme
    disk_bootindex: int | None = 0  # the boot disk's (an engine that boots a kernel directly drops a 0)
    cd_bus: str = "scsi"  # scsi (virtio-scsi), sata (AHCI), usb (usb-storage on the xhci controller)
    cds: tuple[CD, ...] = ()  # in the order they are attached
    nic: str = "virtio"  # virtio (virtio-net), e1000e
    rng: bool = True  # virtio-rng
    usb: bool = False  # a qemu-xhci controller (QEMU: `usb-bus`)
    video: str = "virtio"  # virtio (virtio-vga or virtio-gpu by arch), vga, ramfb
    video_always: bool = False  # False: a video device (and input) only when there is a display
    keyboard: bool = True  # a keyboard beside the tablet
    input_bus: str = "virtio"  # the keyboard's and the tablet's: virtio, usb
    rtc_utc: bool = False  # the RTC explicitly in UTC (`-rtc base=utc`)
    rtc_catchup: bool = False  # lost RTC ticks caught up (x86: driftfix=slew, libvirt's tickpolicy catchup)
    hpet: bool = True  # x86: the HPET (off for Windows: its timer is less precise under emulation)
    gic3: bool = False  # aarch64: a GICv3 or later (QEMU's gic-version=max, libvirt's version 3)
    hyperv: bool = False  # x86 under KVM: Hyper-V enlightenments (CPU flags, libvirt's hyperv and its clock)
    tcg_cpu: str = "max"  # the CPU model under TCG when none is configured
    unsupported_cpus: frozenset[str] = frozenset()  # configured CPU models the guest cannot run on ...
    cpu_requirement: str = ""  # ... because they lack this ("vmOpts.qemu.cpuType X lacks <this>")
    needs_firmware: str = ""  # the error when no UEFI firmware code is given ("": the guest may boot without)


@dataclass(frozen=True)
class BootFiles:
    """What the instance directory says about this boot: its media, and how far an install got."""

    iso: Path | None = None
    virtio_win: Path | None = None
    openssh_msi: Path | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    kernel_cmdline: str | None = None
    stage: str | None = None  # INSTALL / SETUP / INSTALLED; None: the guest boots its image
    install_image: object | None = None  # what the install media hold, for the first-boot media (Windows' image)
    notices: tuple[str, ...] = ()  # what reading them found (e.g. a language fallback)
    rdp_port: int | None = None  # the host port Remote Desktop is forwarded to


@dataclass(frozen=True)
class Media:
    """The first-boot media to write: the NoCloud seed, or the Windows answer ISO."""

    kind: str  # the guest OS's name for it (nocloud, autounattend)
    path: Path
    iid: str = ""
    mac: str = ""
    install_image: object | None = None  # BootFiles.install_image
    openssh_msi: Path | None = None
    virtio_win: Path | None = None  # the virtio-win ISO the answer media's $WinPEDriver$ is copied from
