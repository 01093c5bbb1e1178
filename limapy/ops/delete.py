"""Delete instances (full names only); a running one only with force."""

from __future__ import annotations

import fcntl
import os
import shutil

from limapy.base.errors import LimapyError
from limapy.instance import store


def delete(name: str, *, force: bool = False) -> bool:
    """False when there was no such instance (Lima warns and goes on)."""
    store.validate_name(name)
    d = store.instance_dir(name)
    if not d.exists():
        return False
    if not store.Instance(name, d).lima_yaml.exists():
        raise LimapyError(f"{d} is not a limapy instance (no lima.yaml); not deleting it")
    inst = store.Instance(name, d)
    if inst.protected.exists():
        raise LimapyError(
            f"failed to delete instance `{name}`: instance is protected to prohibit accidental removal",
            hint=f"use `limapy unprotect {name}`",
        )
    from limapy import driver
    from limapy.instance import layers

    layers.refuse_if_shared(inst, "delete")  # before anything stops: its clones' disks stand on its layers
    st = driver.status(inst)
    if st not in (store.STOPPED, store.SUSPENDED):  # a suspended guest's saved state goes with its directory
        if not force:
            raise LimapyError(
                f"instance `{name}` is {st}; stop it first", hint=f"`limapy stop {name}` or `limapy delete -f {name}`"
            )
        from limapy.ops.stop import force_stop

        force_stop(inst)
    with store.lock(inst, what="delete"):
        from limapy.instance import disk, summary

        layers.refuse_if_shared(inst, "delete")  # a clone made meanwhile holds this lock while it is made

        driver.for_instance(inst).remove(inst)  # first: a refusal there leaves the instance as it was
        try:
            for ad in summary.spec(inst).additional_disks:
                disk.release_additional_disk(ad.name, d)
        except LimapyError:
            pass
        trash = d.with_name(f".{name}.deleting")
        shutil.rmtree(trash, ignore_errors=True)
        # held while the trash is removed: only a delete that was killed leaves one nobody holds
        # (limapy.instance.leftovers)
        held = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
            d.rename(trash)
        except BaseException:
            os.close(held)
            raise
    try:
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        os.close(held)
    return True
