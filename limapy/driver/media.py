"""First-boot media, as every driver writes them: the NoCloud seed or the Windows answer ISO, with the
guest's SSH keys and (Windows) its password. Written at materialize time, never by a dry run."""

from __future__ import annotations

from pathlib import Path

from limapy import ssh
from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.driver.plan import MEDIA_AUTOUNATTEND, MEDIA_NOCLOUD, Media
from limapy.instance import store


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


def write(inst: store.Instance, spec: Spec, media: Media) -> None:
    keys = ssh.authorized_keys(spec)
    if media.kind == MEDIA_NOCLOUD:
        from limapy.guest.linux import seed as linux

        linux.write_seed_iso(media.path, spec, name=inst.name, iid=media.iid, ssh_pubkeys=keys, mac=media.mac)
        return
    if media.kind != MEDIA_AUTOUNATTEND or media.windows is None:
        raise LimapyError(f"unknown first-boot media {media.kind!r}")
    from limapy.guest.windows import answer as windows
    from limapy.guest.windows import virtiowin
    from limapy.qemu.cmdline import windows_disk_bus

    img = media.windows
    drivers = None
    if media.virtio_win is not None:
        drivers = virtiowin.read_drivers(
            media.virtio_win,
            virtiowin.drivers_for(virtio_disk=windows_disk_bus(spec) == "virtio"),
            version=virtiowin.version_dir(img.is_server),
            arch=spec.arch,
        )
    windows.write_answer_iso(
        media.path,
        spec,
        name=inst.name,
        arch=spec.arch,
        password=windows_password(inst),
        ssh_pubkeys=keys,
        image_index=img.index,
        image_name=img.name,
        is_server=img.is_server,
        locale=img.locale,
        opensshmsi=media.openssh_msi.read_bytes() if media.openssh_msi is not None else None,
        product_key=windows_product_key(inst),
        admin_password=windows_admin_password(inst) if img.is_server else None,
        winpe_drivers=drivers,
    )
