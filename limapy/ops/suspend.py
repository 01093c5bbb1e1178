"""`limapy suspend NAME`: save the running guest's whole state in its instance dir and stop its machine.

The next `limapy start NAME` resumes from the state (limapy.driver.suspended decides whether it may), so the
guest's processes and memory come back in seconds instead of a boot.

A guest still booting (READY comes before the end of cloud-init's later stages) is first given time to finish
(GuestOS.settle, bounded): a state saved mid-boot makes every resume and every clone of it finish the boot again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limapy import driver
from limapy.base import proc
from limapy.base.errors import LimapyError
from limapy.instance import pids, store

#: The host agent notices its machine's exit within a second, then tidies up (SSH, forwards, sidecars).
AGENT_EXIT_TIMEOUT = 60.0
#: How long the guest's boot may take to end before the state is saved anyway; a wait is said after SETTLE_QUIET.
SETTLE_TIMEOUT = 600.0
SETTLE_QUIET = 1.0


def suspend(inst: store.Instance, *, say: Callable[[str], None] = lambda _m: None) -> bool:
    """False when it was suspended already."""
    with store.lock(inst, what="suspend"):
        st = driver.status(inst)
        if st == store.SUSPENDED:
            return False
        if st != store.RUNNING:
            raise LimapyError(f"instance `{inst.name}` is {st}, not Running", hint=f"`limapy start {inst.name}`")
        ha = store.ha_pid(inst)
        settle(inst, say)
        say(f"saving the state of `{inst.name}`")
        started = time.monotonic()
        driver.for_instance(inst).suspend(inst)
        size = inst.suspend_state.stat().st_size if inst.suspend_state.exists() else 0
        say(f"saved {size >> 20} MiB in {time.monotonic() - started:.1f} s")
        if ha is not None and not pids.wait_gone(ha, AGENT_EXIT_TIMEOUT):
            raise LimapyError(f"the host agent of `{inst.name}` (pid {ha}) did not exit after the suspend")
    return True


def settle(inst: store.Instance, say: Callable[[str], None], timeout: float = SETTLE_TIMEOUT) -> bool:
    """Wait, at most `timeout` seconds, for the guest's boot to end (its OS's `settle` command over SSH). False
    when it had not ended by then, or could not be asked (the state is saved anyway)."""
    from limapy import guest
    from limapy.instance import summary
    from limapy.ssh import config_argv

    command = guest.for_spec(summary.load(inst).view).settle()
    if command is None:
        return True
    started = time.monotonic()
    # through the host agent's ControlMaster when it runs; never one left behind (ssh.config's is `auto`)
    child = proc.spawn([*config_argv(inst, "-o", "ControlMaster=no"), command])
    try:
        try:
            return child.wait(min(SETTLE_QUIET, timeout)) == 0
        except proc.TimeoutExpired:
            pass
        say(f"`{inst.name}` is still booting: waiting for its boot to end before saving the state, so that its "
            f"resumes and clones do not each finish it again (at most {timeout:.0f} s)")  # fmt: skip
        try:
            code = child.wait(max(0.0, timeout - (time.monotonic() - started)))
        except proc.TimeoutExpired:
            say(f"`{inst.name}` had not finished booting after {timeout:.0f} s: saving its state anyway")
            return False
        if code == 0:
            say(f"its boot ended after {time.monotonic() - started:.0f} s")
        return code == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
