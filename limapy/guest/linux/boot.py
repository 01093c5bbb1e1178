"""A Linux guest's boots: the image `create` fetches, the files a boot uses, the NoCloud seed, and its devices
(virtio throughout, the seed and an ISO image as virtio-scsi CDs; docs/windows.md, "Devices and drivers")."""

from __future__ import annotations

from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import BootKind, Spec
from limapy.guest import Fetched, Get, Say
from limapy.guest.boot import CD, CD_ISO, CD_SEED, BootFiles, Devices, Media
from limapy.instance import store

MEDIA_NOCLOUD = "nocloud"
DEVICES = Devices(
    disk_bus="virtio", disk_bootindex=0, cd_bus="scsi",
    cds=(CD(CD_ISO, "iso0", bootindex=1), CD(CD_SEED, "cdrom0")),
    nic="virtio", rng=True, video="virtio", keyboard=True, input_bus="virtio",
)  # fmt: skip


def fetch(spec: Spec, get: Get, say: Say) -> Fetched:
    """The image (a disk image to make the overlay on, or an ISO to boot), and its kernel and initrd."""
    from limapy.instance import disk

    image = spec.image
    base = get(image.location, image.digest, "image", True).resolve()
    kernel = initrd = None
    if image.kernel is not None:
        kernel = get(image.kernel.location, image.kernel.digest, "kernel", False)
    if image.initrd is not None:
        initrd = get(image.initrd.location, image.initrd.digest, "initrd", False)
    iso = disk.is_iso9660(base)
    if not iso:
        from limapy.base import imagecheck

        imagecheck.verify(base, image.location)  # before anything is made; the overlay checks it again
    return Fetched(
        disk_size=spec.disk,
        base=None if iso else base,
        iso=base if iso else None,
        kernel=kernel,
        initrd=initrd,
        kernel_cmdline=image.kernel_cmdline if kernel is not None else None,
    )


def present(path: Path) -> Path | None:
    return path if path.exists() else None


def files(inst: store.Instance, spec: Spec) -> BootFiles:
    iso = present(inst.iso)
    if spec.boot_kind is not BootKind.KERNEL and not inst.kernel.exists():
        return BootFiles(iso=iso)
    if not inst.kernel.exists():
        raise LimapyError(
            f"the kernel of `{inst.name}` is missing ({inst.kernel})", hint="delete and re-create the instance"
        )
    cmdline = inst.kernel_cmdline.read_text().strip() if inst.kernel_cmdline.exists() else None
    return BootFiles(iso=iso, kernel=inst.kernel, initrd=present(inst.initrd), kernel_cmdline=cmdline)


def media(inst: store.Instance, iid: str, mac: str) -> Media:
    return Media(MEDIA_NOCLOUD, inst.cidata_iso, iid=iid, mac=mac)


def write_media(inst: store.Instance, spec: Spec, media: Media, ssh_keys: list[str]) -> None:
    if media.kind != MEDIA_NOCLOUD:
        raise LimapyError(f"unknown first-boot media {media.kind!r}")
    from limapy.guest.linux.seed import write_seed_iso

    write_seed_iso(media.path, spec, name=inst.name, iid=media.iid, ssh_pubkeys=ssh_keys, mac=media.mac)
