"""What every engine keeps in an instance's directory.

`create` lays out the same local files for each engine (the disk as a qcow2 overlay on the cached image, or
empty beside an install ISO; links to the media; the kernel and initrd); an engine whose machine runs
elsewhere (libvirt) copies them to its host on the first start. What they say about a boot is the guest OS's
to read (limapy.guest.GuestOS.boot_files: Windows reads how far its install got from them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from limapy.driver import Fetched, Say
from limapy.instance import disk, store


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
