"""What a Windows instance's directory says about a boot: how far its install got (installed, Setup under way, or
the first boot of an install), its media, the image to install, and the Remote Desktop port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from limapy.base import netutil
from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest.boot import CLONED, INSTALL, INSTALLED, SETUP, BootFiles
from limapy.guest.windows.language import DEFAULT as DEFAULT_LOCALE
from limapy.guest.windows.language import Locale
from limapy.instance import disk, store

SETUP_NOTICE = (
    "Windows Setup has already written the disk: booting from it to continue the install (no boot keys); "
    "to install again from scratch, delete and re-create the instance"
)


@dataclass(frozen=True)
class WindowsImage:
    """The image of the install ISO to install, read from its image list (or Lima's fixed index)."""

    index: int | None
    name: str | None
    is_server: bool
    locale: Locale = DEFAULT_LOCALE  # the answer file's language fields (limapy.guest.windows.language)


def rdp_port(inst: store.Instance) -> int:
    """The RDP port of the last boot when it is still free (clients remember it), else a new one."""
    last = netutil.read_port(inst.rdp_port_file)
    return last if last and netutil.port_is_free(last) else netutil.free_port()


def windows_boot(inst: store.Instance) -> str:
    """Installed; Setup under way (it has partitioned the disk); or the first boot of an install."""
    if inst.win_done_installation.exists():
        return INSTALLED
    if inst.disk.exists() and disk.partition_table(inst.disk) is not None:
        return SETUP
    return INSTALL


def present(path: Path) -> Path | None:
    return path if path.exists() else None


def windows_files(inst: store.Instance, spec: Spec) -> BootFiles:
    from limapy.guest.windows import edition

    boot = windows_boot(inst)
    rdp = rdp_port(inst) if spec.windows.rdp else None
    if boot == INSTALLED:
        from limapy.guest.windows import identity

        return BootFiles(stage=CLONED if identity.record_path(inst).exists() else boot, rdp_port=rdp)
    if not inst.iso.exists():
        raise LimapyError(
            f"the install ISO of `{inst.name}` is missing ({inst.iso} -> {inst.iso.resolve()})",
            hint="restore the ISO at that path, or delete and re-create the instance",
        )
    sel = edition.select(inst.iso.resolve(), spec)
    return BootFiles(
        iso=inst.iso,
        virtio_win=present(inst.virtio_win),
        openssh_msi=present(inst.openssh_msi),
        stage=boot,
        install_image=WindowsImage(sel.index, sel.name, sel.is_server, sel.locale),
        notices=sel.warnings,
        rdp_port=rdp,
    )
