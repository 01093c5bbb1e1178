"""`snapshot create|apply|delete|list NAME --tag T`: through the instance's driver (QEMU: qemu-img on a stopped
instance, savevm/loadvm on a running one), one command at a time per instance (the instance lock)."""

from __future__ import annotations

import time

from limapy import driver
from limapy.base.errors import LimapyError
from limapy.base.units import format_size
from limapy.driver import Snapshot
from limapy.instance import store

ALIASES = {"save": "create", "load": "apply", "del": "delete", "ls": "list"}


def run(inst: store.Instance, action: str, tag: str) -> None:
    action = ALIASES.get(action, action)
    with store.lock(inst, what=f"snapshot {action}"):
        if driver.status(inst) == store.SUSPENDED:
            # The saved memory belongs to the disk as it is: a snapshot written into it, or one applied, would
            # make the next start discard that memory (or resume a guest on a disk it does not know).
            raise LimapyError(
                f"cannot {action} a snapshot of `{inst.name}`: it is suspended, and its saved memory belongs "
                "to the disk as it is now",
                hint=f"`limapy start {inst.name}` first (then stop it for a disk-only snapshot), or "
                f"`limapy stop -f {inst.name}` to discard the saved state",
            )
        driver.for_instance(inst).snapshot(inst, action, tag)


def snapshots(inst: store.Instance) -> list[Snapshot]:
    return driver.for_instance(inst).snapshots(inst)


def table(items: list[Snapshot]) -> str:
    """As `qemu-img snapshot -l` shows them: ID, TAG, VM SIZE, DATE, VM CLOCK."""
    rows = [["ID", "TAG", "VM SIZE", "DATE", "VM CLOCK"]]
    for i, s in enumerate(items, 1):  # QEMU's own ID, as `qemu-img snapshot -l` shows it
        clock = time.strftime("%H:%M:%S", time.gmtime(int(s.vm_clock))) + f".{int(s.vm_clock * 1000) % 1000:03d}"
        rows.append([s.id or str(i), s.tag, format_size(s.vm_state_size) if s.vm_state_size else "0B",
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.date)), clock])  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "".join("  ".join(v.ljust(widths[c]) for c, v in enumerate(r)).rstrip() + "\n" for r in rows)
