"""Stop instances: graceful through the host agent (ACPI power-down, then kill), or forced."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from limapy import store
from limapy.errors import LimapyError

GRACE = 200.0


def _kill(pid: int | None, sig: int = signal.SIGKILL) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def force_stop(inst: store.Instance) -> None:
    """At once: QEMU quits without asking the guest (its disk caches are still written), then the host agent."""
    from limapy.qemu import process
    from limapy.qemu.tpm import stop_swtpm

    qemu = store.qemu_pid(inst)
    if qemu is not None:
        process.hard_stop(inst.dir, qemu, quit_timeout=5.0)
    _kill(store.ha_pid(inst))
    stop_swtpm(inst.dir)
    for p in inst.dir.iterdir():
        if p.suffix in (".pid", ".sock", ".tmp") and p.name != "lock":
            p.unlink(missing_ok=True)


def stop(inst: store.Instance, *, force: bool = False, say: Callable[[str], None] = lambda _m: None) -> bool:
    """False when it was not running."""
    ha = store.ha_pid(inst)
    qemu = store.qemu_pid(inst)
    if ha is None and qemu is None:
        if force:
            force_stop(inst)
        return False
    if force:
        force_stop(inst)
        return True
    if ha is not None:
        _kill(ha, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline:
            if store.ha_pid(inst) is None and store.qemu_pid(inst) is None:
                return True
            time.sleep(0.2)
        raise LimapyError(
            f"instance `{inst.name}` did not stop within {GRACE:.0f} s", hint=f"`limapy stop -f {inst.name}`"
        )
    from limapy.qemu import process

    say(f"`{inst.name}` has no host agent; powering QEMU down directly")
    process.graceful_stop(inst.dir, timeout=180.0)
    return True
