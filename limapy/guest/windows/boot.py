"""A Windows guest's boots: what `create` fetches and checks (the install ISO and its image, the OpenSSH MSI,
virtio-win), the answer ISO with its secrets, the device layouts (docs/windows.md, "Devices and drivers"), and how
long a first boot may take."""

from __future__ import annotations

from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest import Fetched, Get, Say
from limapy.guest.boot import (
    CD,
    CD_DRIVERS,
    CD_ISO,
    CD_SEED,
    CLONED,
    INSTALL,
    INSTALLED,
    STAGES,
    BootFiles,
    Devices,
    Media,
)
from limapy.guest.windows.layout import WindowsImage
from limapy.instance import store

MEDIA_AUTOUNATTEND = "autounattend"
MEDIA_IDENTITY = "identity"  # a clone's first boot (limapy.guest.windows.identity)
#: CPU models Windows 11 24H2 cannot boot on (no SSE4.2/POPCNT).
WINDOWS_BAD_CPUS = frozenset({"qemu64", "qemu32", "kvm64", "kvm32", "486", "pentium", "pentium2", "pentium3"})
#: `start`'s wait for the first boot of an install (Setup and the first logon), natively and emulated: Windows
#: Setup takes 20-60 minutes with KVM/HVF (docs/windows.md), hours under TCG.
FIRST_BOOT_TIMEOUT = 90 * 60.0
FIRST_BOOT_TIMEOUT_TCG = 6 * 3600.0
GENERALIZE_TIMEOUT = 30 * 60.0
GENERALIZE_TIMEOUT_TCG = 3 * 3600.0


def fetch(spec: Spec, get: Get, say: Say) -> Fetched:
    """The install ISO exists, is for this arch, and holds the edition asked for;
    Server media is x86_64 and evaluation or keyed; virtio-win and the OpenSSH MSI are fetched and checked."""
    from limapy.guest.windows import edition as winedition
    from limapy.guest.windows import media as winmedia
    from limapy.guest.windows import msi as winmsi

    arch = spec.arch
    msi_entry = spec.openssh_msi
    if spec.windows.openssh_source == "msi" and msi_entry is None:
        have = ", ".join(sorted({f.arch for f in spec.windows.openssh_msi})) or "none"
        raise LimapyError(
            f"osOpts.Windows.opensshMsi has no entry for arch {arch} (it has: {have})",
            hint=f"add the {arch} MSI with `arch: {arch}`, or set `osOpts.Windows.opensshSource: capability` to "
            "install OpenSSH from Windows Update",
        )
    image = spec.image
    loc = image.location
    if loc.startswith(("http://", "https://")):
        iso = get(loc, image.digest, "Windows install ISO", False)
    else:
        iso = winmedia.require_iso(loc, arch, image_pos=spec.images.index(image))
        if image.digest:
            iso = get(loc, image.digest, "Windows install ISO", False)
    sel = winedition.select(iso, spec)  # refuses non-install media, and an image without a usable language
    assert sel.index is not None  # choose_image always names an index
    more = winedition.check_server_media(sel.info, arch=arch, index=sel.index, product_key=spec.windows.product_key)
    for w in [*sel.warnings, *more]:
        say(f"warning: {w}")
    say(f"Windows image: index {sel.index}" + (f" ({sel.name})" if sel.name else "") + f", language {sel.locale.ui}"
        + (f" (format and keyboard {sel.locale.locale})" if sel.locale.locale != sel.locale.ui else ""))  # fmt: skip
    msi = None
    if msi_entry is not None:
        try:
            msi = get(msi_entry.location, msi_entry.digest, "OpenSSH MSI", False)
        except LimapyError as e:
            if e.hint is not None:
                raise
            raise LimapyError(
                e.message,
                hint="offline? point osOpts.Windows.opensshMsi at a local copy of the MSI (the same digest), or set "
                "`osOpts.Windows.opensshSource: capability` to install OpenSSH from Windows Update",
                exit_code=e.exit_code,
            ) from None
        winmsi.check_msi(msi, arch, msi_entry.location)
    vw = spec.virtio_win
    virtio = None
    if vw is not None:
        virtio = get(vw.location, vw.digest, "virtio-win ISO", False).resolve()
    return Fetched(
        disk_size=spec.disk, iso=iso.resolve(), virtio_win=virtio, openssh_msi=msi.resolve() if msi else None
    )


def disk_bus(spec: Spec) -> str:
    """The bus of a Windows guest's disks: aarch64 NVMe (Windows on Arm's inbox stornvme: Setup needs no driver
    and no drive letter for its disk), x86_64 virtio-blk with virtio-win (viostor) or SATA/AHCI (inbox)."""
    if spec.arch == "aarch64":
        return "nvme"
    return "virtio" if spec.virtio_win is not None else "sata"


def devices(spec: Spec, stage: str | None) -> Devices:
    """Two strategies, by the template: without a virtio-win ISO for the arch, inbox drivers only (x86_64: AHCI
    disk, e1000e); with it, a virtio NIC (and on x86_64 a virtio disk), the virtio-win CD between the install ISO
    and the answer ISO. aarch64 always takes the second, its disk on NVMe, every CD as usb-storage under one
    qemu-xhci, usb-kbd, usb-tablet and ramfb. The RTC in UTC and the guest in the UTC time zone (the answer file's
    TimeZone): Windows reads the RTC as local time, so this pair gives the right clock."""
    stage = INSTALLED if stage is None else stage
    if stage not in STAGES:
        raise ValueError(f"install stage {stage!r}")
    x86 = spec.arch == "x86_64"
    virtio = spec.virtio_win is not None
    if not x86 and not virtio:
        # Windows on arm64 binds QEMU's usb-net to usbser, and has no inbox driver for another NIC QEMU offers.
        raise LimapyError("an aarch64 Windows guest needs osOpts.Windows.virtioWin (NetKVM for its network)")
    bus = disk_bus(spec)
    if bus == "sata" and len(spec.additional_disks) > 2:
        raise LimapyError("Windows on AHCI takes at most 2 additional disks (6 SATA ports)")
    cds: list[CD] = []
    if stage == CLONED:  # the identity medium, in the seed's slot; the disk boots
        cds.append(CD(CD_SEED, "cd2", missing="a clone's first boot needs its identity medium"))
    elif stage != INSTALLED:
        # First boot: the install ISO boots (bootindex 0). Once Setup has written the disk it boots first, so a
        # restart during Setup continues the install instead of starting it again.
        need = "a Windows install needs the install ISO and the answer ISO"
        cds.append(CD(CD_ISO, "cd0", 0 if stage == INSTALL else None, need))
        if virtio:
            cds.append(CD(CD_DRIVERS, "cd1", missing="osOpts.Windows.virtioWin is set but no virtio-win ISO was given"))
        cds.append(CD(CD_SEED, "cd2", missing=need))
    return Devices(
        disk_bus=bus,
        disk_bootindex=1 if stage == INSTALL else 0,
        cd_bus="sata" if x86 else "usb",
        cds=tuple(cds),
        nic="virtio" if virtio else "e1000e",  # x86_64 without virtio-win: the Intel 82574L, inbox everywhere
        rng=virtio,
        usb=True,
        video="vga" if x86 else "ramfb",
        video_always=True,
        keyboard=not x86,
        input_bus="usb",
        rtc_utc=True,
        rtc_catchup=x86,
        hpet=not x86,
        gic3=not x86,
        hyperv=x86,
        tcg_cpu="max" if x86 else "max,pauth-impdef=on",  # ARMv8.1 LSE atomics, cheap pointer auth under TCG
        unsupported_cpus=WINDOWS_BAD_CPUS if x86 else frozenset(),
        cpu_requirement="SSE4.2/POPCNT, which Windows 11 24H2 requires",
        needs_firmware="a UEFI Windows guest needs firmware code (and a vars store)"
        if not x86 or not spec.legacy_bios else "",
    )


def media(inst: store.Instance, spec: Spec, files: BootFiles) -> Media | None:
    if files.stage == CLONED:
        return Media(MEDIA_IDENTITY, inst.cidata_iso)
    if files.install_image is None:
        return None  # installed: the answer ISO is not attached any more
    return Media(
        MEDIA_AUTOUNATTEND,
        inst.cidata_iso,
        install_image=files.install_image,
        openssh_msi=files.openssh_msi,
        virtio_win=files.virtio_win if spec.virtio_win is not None else None,
    )


def _secret(path: Path) -> str:
    """A random password kept 0600 at `path`, made once; never printed or logged."""
    from limapy.guest.windows import answer as windows

    try:
        pw = path.read_text().strip()
        if pw:
            return pw
    except FileNotFoundError:
        pass
    pw = windows.new_password()
    windows.write_password_file(path, pw)
    return pw


def windows_password(inst: store.Instance) -> str:
    """The guest user's password, made once (0600) and kept for `limapy rdp`."""
    return _secret(inst.password_file)


def windows_admin_password(inst: store.Instance) -> str:
    """Windows Server's built-in Administrator's password (the answer file sets it, so OOBE never asks)."""
    return _secret(inst.admin_password_file)


def windows_product_key(inst: store.Instance) -> str | None:
    try:
        key = inst.product_key_file.read_text().strip()
    except FileNotFoundError:
        return None
    return key or None


def write_media(inst: store.Instance, spec: Spec, media: Media, ssh_keys: list[str]) -> None:
    if media.kind == MEDIA_IDENTITY:
        from limapy.guest.windows import identity

        identity.write_medium(inst, spec, media.path)
        return
    img = media.install_image
    if media.kind != MEDIA_AUTOUNATTEND or not isinstance(img, WindowsImage):
        raise LimapyError(f"unknown first-boot media {media.kind!r}")
    from limapy.guest.windows import answer as windows
    from limapy.guest.windows import virtiowin

    drivers = None
    if media.virtio_win is not None:
        drivers = virtiowin.read_drivers(
            media.virtio_win,
            virtiowin.drivers_for(virtio_disk=disk_bus(spec) == "virtio"),
            version=virtiowin.version_dir(img.is_server),
            arch=spec.arch,
        )
    windows.write_answer_iso(
        media.path,
        spec,
        name=inst.name,
        arch=spec.arch,
        password=windows_password(inst),
        ssh_pubkeys=ssh_keys,
        image_index=img.index,
        image_name=img.name,
        is_server=img.is_server,
        locale=img.locale,
        opensshmsi=media.openssh_msi.read_bytes() if media.openssh_msi is not None else None,
        product_key=windows_product_key(inst),
        admin_password=windows_admin_password(inst) if img.is_server else None,
        winpe_drivers=drivers,
    )


def boot_timeout(inst: store.Instance, emulated: bool) -> float | None:
    """The first boot of an install: 90 minutes, or 6 hours when emulated; a clone's first boot with sysprep
    (`clone --generalize`: sysprep, Setup's specialize pass and OOBE): 30 minutes, or 3 hours when emulated."""
    if inst.win_done_installation.exists():
        from limapy.guest.windows import identity

        record = identity.pending(inst)
        if record is not None and record.get("generalize"):
            return GENERALIZE_TIMEOUT_TCG if emulated else GENERALIZE_TIMEOUT
        return None
    return FIRST_BOOT_TIMEOUT_TCG if emulated else FIRST_BOOT_TIMEOUT
