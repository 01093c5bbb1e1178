"""Stop instances: graceful through the host agent (ACPI power-down, then kill), or forced.

`parse` + `run` are the command (`limapy stop [-f] [NAME...]`), used by the CLI's fast path and by the typer
command alike (tests/unit/test_cli_fastpath.py holds their requests equal): a stop should cost the guest's
power-down, not typer's ~60 ms import on top.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence

from limapy import driver
from limapy.base.errors import LimapyError
from limapy.instance import pids, store

GRACE = 200.0
#: A machine without its host agent gets this long to power down before it is forced.
ORPHAN_TIMEOUT = 180.0
#: Runtime files a stopped instance keeps none of (sockets, pid files, temporary files).
RUNTIME_SUFFIXES = (".pid", ".sock", ".tmp")


def _kill(pid: int | None, sig: int = signal.SIGKILL) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def force_stop(inst: store.Instance) -> None:
    """At once: the machine stops without asking the guest (QEMU still writes its disk caches), then the host
    agent; no socket or pid file is left."""
    driver.for_instance(inst).force_stop(inst)
    ha = store.ha_pid(inst)
    _kill(ha)
    if ha is not None:
        pids.wait_gone(ha, 5.0)
    for p in inst.dir.iterdir():
        if p.suffix in RUNTIME_SUFFIXES and p.name != inst.lock_file.name and not p.is_dir():
            p.unlink(missing_ok=True)  # a directory named so is not a runtime file limapy made: it stays


def _suspended(inst: store.Instance, force: bool, say: Callable[[str], None]) -> bool:
    """A suspended guest is powered down properly: resumed (seconds), then stopped as a running one, so it
    writes its caches; -f discards its saved memory instead (as pulling the plug; the disk stays)."""
    from limapy.driver import suspended

    if force:
        suspended.discard(inst)
        say(f"warning: discarded the saved state of `{inst.name}`; the next start boots cold")
        return False
    from limapy.ops.start import start_instance

    say(f"`{inst.name}` is suspended: resuming it to power it down")
    start_instance(inst, timeout=None, show=lambda _m: None)
    return True


def not_running(inst: store.Instance, status: str) -> LimapyError:
    """`stop` of an instance that does not run: an error, as limactl's ("expected status `Running`")."""
    return LimapyError(
        f"instance `{inst.name}` is not running: expected status `{store.RUNNING}`, got `{status}`",
        hint=f"`limapy stop -f {inst.name}` cleans up what a crashed instance left behind",
    )


def stop(
    inst: store.Instance,
    *,
    force: bool = False,
    say: Callable[[str], None] = lambda _m: None,
    status: Callable[[str], None] = lambda _m: None,
) -> bool:
    """False when it was not running. `say` gets the lines to show, `status` what the live line names while
    waiting (limapy.base.term.Live)."""
    if driver.status(inst) == store.SUSPENDED and not _suspended(inst, force, say):
        return True
    ha = store.ha_pid(inst)
    vm = driver.driver_pid(inst)
    if ha is None and vm is None:
        if force:
            force_stop(inst)
        return False
    if force:
        force_stop(inst)
        return True
    if ha is not None:
        _kill(ha, signal.SIGTERM)
        say(f"waiting for `{inst.name}` to power off (up to {GRACE:.0f} s)")
        status("shutting down")
        deadline = time.monotonic() + GRACE
        # The agent powers the guest down, stops the machine and its helpers, removes its pid files and exits:
        # its exit is the moment (a pidfd wakes this wait), no polling interval is added to every stop.
        pids.wait_gone(ha, GRACE)
        while time.monotonic() < deadline:
            if store.ha_pid(inst) is None and driver.driver_pid(inst) is None:
                # stopped means the agent's process is gone too (it removes its pid file while it finishes)
                pids.wait_gone(ha, max(5.0, deadline - time.monotonic()))
                return True
            time.sleep(0.2)  # only when the agent went without stopping the machine (killed): wait for it
        raise LimapyError(
            f"instance `{inst.name}` did not stop within {GRACE:.0f} s", hint=f"`limapy stop -f {inst.name}`"
        )
    say(f"`{inst.name}` has no host agent; powering the machine down directly")
    status("powering off")
    driver.for_instance(inst).stop(inst, ORPHAN_TIMEOUT)
    return True


class Request:
    """One `limapy stop` invocation, parsed (a plain class, as ops.shell.Request)."""

    __slots__ = ("force", "names")

    def __init__(self, names: Sequence[str] = (), force: bool = False) -> None:
        self.names, self.force = tuple(names), force

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and (self.names, self.force) == (other.names, other.force)

    def __hash__(self) -> int:
        return hash((self.names, self.force))

    def __repr__(self) -> str:
        return f"Request(names={self.names!r}, force={self.force!r})"


def parse(args: Sequence[str]) -> Request | None:
    """Names and `-f`/`--force` in any order, `--` ending the options; None for anything else (`--help`, an
    unknown or combined flag), which the CLI framework judges."""
    names: list[str] = []
    force = False
    for i, a in enumerate(args):
        if a == "--":
            names += args[i + 1 :]
            break
        if a in ("-f", "--force"):
            force = True
        elif a.startswith("-") and a != "-":
            return None
        else:
            names.append(a)
    return Request(names, force)


def run(req: Request, report: Callable[[LimapyError], None]) -> int:
    """Stop each instance (default: `default`), its lines on stderr (limapy.base.term.Live). With several names
    the others are still stopped when one fails, as limactl does: each failure but the last is `report`ed,
    the last raised."""
    from limapy.base.term import Live

    names = req.names or ("default",)
    failed: list[LimapyError] = []
    for n in names:
        live = Live()
        try:
            inst = store.resolve(n)
            if stop(inst, force=req.force, say=live.line, status=live.status):
                live.line(f"stopped `{inst.name}`")
            elif not req.force:
                raise not_running(inst, driver.status(inst))
            else:
                live.line(f"`{inst.name}` was not running; nothing of it is left running now")
        except LimapyError as e:
            if len(names) <= 1:
                raise
            failed.append(e)
        finally:
            live.close()
    for err in failed[:-1]:
        report(err)
    if failed:
        raise failed[-1]
    return 0
