"""What every engine keeps in an instance's directory, and what it says about a Windows install.

`create` lays out the same local files for each engine (the disk as a qcow2 overlay on the cached image, or
empty beside an install ISO; links to the media; the kernel and initrd); an engine whose machine runs
elsewhere (libvirt) copies them to its host on the first start. How far a Windows install got is read from
the same files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from limapy.base import netutil
from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.driver import Fetched, Say
from limapy.driver.plan import WIN_INSTALL, WIN_INSTALLED, WIN_SETUP, WindowsImage
from limapy.instance import disk, store

SETUP_NOTICE = (
    "Windows Setup has already written the disk: booting from it to continue the install (no boot keys); "
    "to install again from scratch, delete and re-create the instance"
)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def lay_out(tmp: Path, fetched: Fetched, say: Say) -> None:
    """Lay the disk and media out in the instance's directory being created (`tmp`)."""
    layout = store.Instance(tmp.name, tmp)
    if fetched.iso is not None:
        layout.iso.symlink_to(fetched.iso)
        disk.create_empty(layout.disk, fetched.disk_size)
    elif fetched.base is not None:
        say("creating the disk (qcow2 overlay on the image)")
        disk.create_overlay(fetched.base, layout.disk, fetched.disk_size)
        disk.record_base(layout.base_record, fetched.base)
    if fetched.virtio_win is not None:
        layout.virtio_win.symlink_to(fetched.virtio_win)
    if fetched.openssh_msi is not None:
        layout.openssh_msi.symlink_to(fetched.openssh_msi)
    if fetched.kernel is not None:
        _link_or_copy(fetched.kernel, layout.kernel)
        if fetched.kernel_cmdline:
            store.atomic_write(layout.kernel_cmdline, fetched.kernel_cmdline.encode(), 0o644)
    if fetched.initrd is not None:
        _link_or_copy(fetched.initrd, layout.initrd)


@dataclass(frozen=True)
class Files:
    """What the instance directory says about this boot: its media, and how far a Windows install got."""

    iso: Path | None = None
    virtio_win: Path | None = None
    openssh_msi: Path | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    kernel_cmdline: str | None = None
    windows_boot: str | None = None
    windows_image: WindowsImage | None = None
    image_warnings: tuple[str, ...] = ()
    rdp_port: int | None = None


def rdp_port(inst: store.Instance) -> int:
    """The RDP port of the last boot when it is still free (clients remember it), else a new one."""
    last = netutil.read_port(inst.rdp_port_file)
    return last if last and netutil.port_is_free(last) else netutil.free_port()


def windows_boot(inst: store.Instance) -> str:
    """Installed; Setup under way (it has partitioned the disk); or the first boot of an install."""
    if inst.win_done_installation.exists():
        return WIN_INSTALLED
    if inst.disk.exists() and disk.partition_table(inst.disk) is not None:
        return WIN_SETUP
    return WIN_INSTALL


def present(path: Path) -> Path | None:
    return path if path.exists() else None


def windows_files(inst: store.Instance, spec: Spec) -> Files:
    from limapy.guest.windows import edition as winedition

    boot = windows_boot(inst)
    rdp = rdp_port(inst) if spec.rdp else None
    if boot == WIN_INSTALLED:
        return Files(windows_boot=boot, rdp_port=rdp)
    if not inst.iso.exists():
        raise LimapyError(
            f"the install ISO of `{inst.name}` is missing ({inst.iso} -> {inst.iso.resolve()})",
            hint="restore the ISO at that path, or delete and re-create the instance",
        )
    sel = winedition.select(inst.iso.resolve(), spec)
    return Files(
        iso=inst.iso,
        virtio_win=present(inst.virtio_win),
        openssh_msi=present(inst.openssh_msi),
        windows_boot=boot,
        windows_image=WindowsImage(sel.index, sel.name, sel.is_server, sel.locale),
        image_warnings=sel.warnings,
        rdp_port=rdp,
    )
