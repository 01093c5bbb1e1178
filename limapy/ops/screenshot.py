"""`limapy screenshot NAME -o FILE`: the guest's screen through QMP (works during a Windows install)."""

from __future__ import annotations

from pathlib import Path

from limapy import store
from limapy.errors import LimapyError


def screenshot(inst: store.Instance, out: Path) -> None:
    from limapy.qemu.qmp import QMP

    if store.qemu_pid(inst) is None:
        raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
    with QMP.connect(inst.qmp_sock, timeout=5.0) as qmp:
        qmp.screendump(out.resolve())
