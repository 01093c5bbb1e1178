"""`limapy suspend NAME`: save the running guest's whole state in its instance dir and stop its machine.

The next `limapy start NAME` resumes from the state (limapy.driver.suspended decides whether it may), so the
guest's processes and memory come back in seconds instead of a boot.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limapy import driver
from limapy.base.errors import LimapyError
from limapy.instance import pids, store

#: The host agent notices its machine's exit within a second, then tidies up (SSH, forwards, sidecars).
AGENT_EXIT_TIMEOUT = 60.0


def suspend(inst: store.Instance, *, say: Callable[[str], None] = lambda _m: None) -> bool:
    """False when it was suspended already."""
    with store.lock(inst, what="suspend"):
        st = driver.status(inst)
        if st == store.SUSPENDED:
            return False
        if st != store.RUNNING:
            raise LimapyError(f"instance `{inst.name}` is {st}, not Running", hint=f"`limapy start {inst.name}`")
        ha = store.ha_pid(inst)
        say(f"saving the state of `{inst.name}`")
        started = time.monotonic()
        driver.for_instance(inst).suspend(inst)
        size = inst.suspend_state.stat().st_size if inst.suspend_state.exists() else 0
        say(f"saved {size >> 20} MiB in {time.monotonic() - started:.1f} s")
        if ha is not None and not pids.wait_gone(ha, AGENT_EXIT_TIMEOUT):
            raise LimapyError(f"the host agent of `{inst.name}` (pid {ha}) did not exit after the suspend")
    return True
