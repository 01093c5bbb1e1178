"""`factory-reset NAME`: back to the first boot. The instance is stopped (forcibly, as Lima does), its disk
made anew (a fresh qcow2 overlay on the base image; a Windows guest gets an empty disk and installs again),
and every file a boot made is removed; lima.yaml (and any other *.yaml), lima-version, `protected`, the
driver choice, the product key and the create-time media (install ISO links, kernel, initrd) stay.

The new disk is made first, under a temporary name: if that fails (the base image is gone and cannot be
fetched), nothing of the instance has been removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from limapy.instance import store

Say = Callable[[str], None]


def kept(inst: store.Instance) -> set[Path]:
    return {
        inst.lima_yaml, inst.lima_version, inst.protected, inst.driver_file, inst.product_key_file, inst.iso,
        inst.virtio_win, inst.openssh_msi, inst.kernel, inst.initrd, inst.kernel_cmdline, inst.lock_file,
    }  # fmt: skip


def _new_disk(inst: store.Instance, where: Path, say: Say) -> tuple[Path, Path | None]:
    """A first-boot disk in `where`; and the base it is an overlay on (None: an empty disk)."""
    from limapy import config, guest
    from limapy.instance import disk
    from limapy.ops.create import getter

    spec = config.instance_spec(inst)
    target = where / inst.disk.name
    os_ = guest.for_spec(spec)
    if os_.installs or inst.iso.exists():  # an install (Windows), or an ISO image: onto an empty disk
        disk.create_empty(target, spec.disk)
        return target, None
    fetched = os_.fetch(spec, getter(say), say)
    if fetched.base is None:
        disk.create_empty(target, spec.disk)
        return target, None
    disk.create_overlay(fetched.base, target, spec.disk)
    return target, fetched.base


def factory_reset(inst: store.Instance, *, say: Say) -> None:
    from limapy import driver
    from limapy.base import dirs
    from limapy.download import refs
    from limapy.instance import chain, disk, layers
    from limapy.ops.stop import force_stop

    if driver.status(inst) != store.STOPPED:
        say(f"stopping `{inst.name}` at once")
        force_stop(inst)
    with store.lock(inst, what="factory-reset"), refs.using(dirs.limapy_home()):
        work = Path(tempfile.mkdtemp(prefix=".reset-", suffix=".tmp", dir=inst.dir))
        try:
            new, base = _new_disk(inst, work, say)
            keep = kept(inst)
            if layers.dependents(inst):  # its suspended clones stand on its layers (limapy.instance.layers)
                keep |= {p for p in inst.dir.iterdir() if chain.is_layer(p)}
            for entry in sorted(inst.dir.iterdir()):
                if entry == work or entry in keep or entry.suffix in (".yaml", ".yml"):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            os.replace(new, inst.disk)
            if base is not None:
                disk.record_base(inst.base_record, base)
        finally:
            shutil.rmtree(work, ignore_errors=True)
