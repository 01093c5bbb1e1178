"""Start an instance (creating it first when given a template) and wait until the guest is ready.

The host agent runs detached; this side follows its JSON-lines events in ha.stdout.log and shows the
phases. A timeout says what was awaited and where the logs are; the instance keeps booting.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from limapy.base import proc
from limapy.base.errors import LimapyError
from limapy.expr.edits import Edit
from limapy.instance import pids, store

if TYPE_CHECKING:
    from limapy.base.records import Event

DEFAULT_TIMEOUT = 600.0

Show = Callable[[str], None]


def looks_like_template(target: str) -> bool:
    if target == "-" or "/" in target or ":" in target:
        return True
    if target.endswith((".yaml", ".yml")):
        return True
    return False


def resolve_target(
    target: str,
    *,
    name: str | None,
    sets: Sequence[str | Edit],
    say: Show,
    allow_local: bool = False,
    existing_sets: Sequence[str | Edit] = (),
    create_only: Sequence[str] = (),
    driver_name: str | None = None,
    connect: str | None = None,
) -> store.Instance:
    """The instance `start TARGET` boots: an existing one (name or unique prefix), its lima.yaml edited first
    by `existing_sets` (Lima applies the flags to it; the create-only ones are named and ignored), or one
    created from a template. `start` alone boots `default`, creating it from template:default when missing."""
    target, name = default_target(target, name)
    if not looks_like_template(target):
        inst = store.resolve(target)
        _ignored(inst, [*create_only, *(["--driver"] if driver_name else []), *(["--connect"] if connect else [])],
                 say)  # fmt: skip
        if existing_sets:
            from limapy.ops.edit import apply_edits

            apply_edits(inst, existing_sets, say=say)
        return inst
    from limapy.ops.create import create

    inst = create(target, name=name, sets=sets, say=say, for_start=True, allow_local=allow_local,
                  driver_name=driver_name, connect=connect)  # fmt: skip
    say(f"created `{inst.name}`")
    return inst


def _ignored(inst: store.Instance, flags: Sequence[str], say: Show) -> None:
    for flag in flags:
        say(f"warning: {flag} applies only when an instance is created; ignored for `{inst.name}`")


def default_target(target: str, name: str | None) -> tuple[str, str | None]:
    """`start` alone (`start default`) creates `default` from template:default when it does not exist."""
    if target == "default" and name is None and "default" not in store.list_instances():
        return "template:default", "default"
    return target, name


def dry_run_target(
    target: str, *, name: str | None, sets: Sequence[str | Edit], existing_sets: Sequence[str | Edit], say: Show,
    allow_local: bool = False, driver_name: str | None = None, connect: str | None = None,
    create_only: Sequence[str] = (),
) -> str:
    """`start --dry-run TARGET`: the plan of an existing instance with the flags applied in memory, or of the
    instance a template would create, laid out in a temp dir that is then removed: nothing is created."""
    target, name = default_target(target, name)
    if not looks_like_template(target):
        inst = store.resolve(target)
        _ignored(inst, [*create_only, *(["--driver"] if driver_name else []), *(["--connect"] if connect else [])],
                 say)  # fmt: skip
        return dry_run(inst, existing_sets)
    from limapy.ops.create import dry_run as create_dry_run

    return create_dry_run(target, dry_run, name=name, sets=sets, say=say, for_start=True, allow_local=allow_local,
                          driver_name=driver_name, connect=connect)  # fmt: skip


def default_timeout(inst: store.Instance) -> float:
    """10 minutes, or what the guest OS needs for this boot (the first boot of a Windows install: 90 minutes, 6
    hours when emulated)."""
    from limapy import driver, guest
    from limapy.instance import summary

    try:
        spec = summary.refresh(inst).spec
        os_ = guest.for_spec(spec)
        longer = os_.boot_timeout(inst, driver.for_instance(inst).emulated(spec))
    except LimapyError:
        return DEFAULT_TIMEOUT  # the host agent reports what is wrong with it
    return DEFAULT_TIMEOUT if longer is None else longer


def dry_run(inst: store.Instance, sets: Sequence[str | Edit] = ()) -> str:
    """The command line a start would run, from the driver's plan, with `sets` applied to the configuration
    in memory only; nothing is written, locked or started."""
    from limapy import config, driver

    if sets:
        from limapy.ops.create import load_template

        spec = config.check(load_template(str(inst.lima_yaml), sets, allow_local=True), name=inst.name,
                            instance_dir=inst.dir).spec  # fmt: skip
    else:
        spec = config.instance_spec(inst)
    plan = driver.for_instance(inst).plan(inst, spec)
    return plan.document.rstrip("\n") if plan.document else shlex.join(plan.argv)


def spawn_hostagent(inst: store.Instance) -> proc.Process[bytes]:
    for log in (inst.ha_stdout_log, inst.ha_stderr_log):
        os.close(store.open_private(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
    env = dict(os.environ)
    env.pop("PYTHONBREAKPOINT", None)
    out_fd = store.open_private(inst.ha_stdout_log, os.O_WRONLY | os.O_APPEND)
    err_fd = store.open_private(inst.ha_stderr_log, os.O_WRONLY | os.O_APPEND)
    with open(out_fd, "ab") as out, open(err_fd, "ab") as err:
        argv = proc.python_module("limapy", *pids.hostagent_args(inst.name, inst.dir))
        p = proc.spawn(argv, stdout=out, stderr=err, env=env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if store.ha_pid(inst) is not None:
            return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    tail = _tail(inst.ha_stderr_log)
    raise LimapyError(f"the host agent of `{inst.name}` did not start" + (f": {tail}" if tail else ""))


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


class Follower:
    """Reads new events from ha.stdout.log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.buf = b""

    def poll(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        self.buf += data
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                ev: Event = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out


class ConsoleTail:
    """New complete lines of the guest's serial console (`start --progress`), control characters escaped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.buf = b""

    def lines(self) -> list[str]:
        from limapy.base.errors import shown

        try:
            with open(self.path, "rb") as f:
                if f.seek(0, os.SEEK_END) < self.offset:  # a new boot truncated it
                    self.offset = 0
                f.seek(self.offset)
                data = f.read(1 << 16)
        except OSError:
            return []
        self.offset += len(data)
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        return [shown(ln.decode(errors="replace").rstrip("\r")) for ln in done if ln.strip()]


def wait_ready(
    inst: store.Instance, agent: proc.Process[bytes], timeout: float, show: Show, *, progress: bool = False
) -> None:
    follower = Follower(inst.ha_stdout_log)
    console = ConsoleTail(inst.serial_log) if progress else None
    deadline = time.monotonic() + timeout
    phase = "starting"
    while True:
        for ev in follower.poll():
            st = ev.get("status") or {}
            if ev.get("phase") and ev.get("phase") != phase:
                phase = str(ev["phase"])
            if ev.get("message") or ev.get("phase"):
                show(f"[{phase}] {ev.get('message') or ''}".rstrip())
            if st.get("exiting"):
                errs = st.get("errors") or []
                raise LimapyError(
                    f"instance `{inst.name}` did not start: " + ("; ".join(errs) or str(ev.get("message"))),
                    hint=f"logs: {inst.ha_stderr_log}, {inst.serial_log}",
                )
            if st.get("running") and phase == "ready":
                if st.get("degraded"):  # Lima's DEGRADED: it runs, but its setup failed; `start` fails
                    raise LimapyError(
                        f"instance `{inst.name}` is running, but degraded: " + "; ".join(st.get("errors") or []),
                        hint=f"`limapy shell {inst.name}` to look; the guest's logs say more",
                    )
                return
        for line in console.lines() if console is not None else []:
            show(f"[console] {line}")
        # The agent is our child: a host agent killed with -9 is a zombie that signal 0 still reports
        # alive (and it leaves ha.pid behind), so poll() decides, not the pid file.
        if agent.poll() is not None:
            for ev in follower.poll():  # the last words
                st = ev.get("status") or {}
                if st.get("errors"):
                    raise LimapyError(f"instance `{inst.name}` did not start: " + "; ".join(st["errors"]))
            raise LimapyError(
                f"the host agent of `{inst.name}` exited before the guest was ready",
                hint=f"see {inst.ha_stderr_log} and {inst.serial_log}",
            )
        if time.monotonic() > deadline:
            raise LimapyError(
                f"instance `{inst.name}` was not ready after {timeout:.0f} s (waiting for: {phase})",
                hint=f"it keeps booting; logs: {inst.serial_log}, {inst.ha_stderr_log}; "
                f"`limapy stop {inst.name}` stops it",
            )
        time.sleep(0.2)


def _startable(inst: store.Instance) -> bool:
    """False when it runs already; an error when its machine runs without a host agent (Broken)."""
    if not inst.lima_yaml.exists():
        raise LimapyError(f"instance `{inst.name}` was deleted")
    if store.ha_pid(inst) is not None:
        return False
    from limapy import driver

    vm = driver.driver_pid(inst)
    if vm is not None:
        what = "QEMU" if driver.name_of(inst) == "qemu" else f"its {driver.name_of(inst)} machine"
        raise LimapyError(
            f"instance `{inst.name}` is Broken: {what} (pid {vm}) runs without its host agent",
            hint=f"`limapy stop -f {inst.name}` stops it; then start again",
        )
    return True


def _require_tools(inst: store.Instance) -> None:
    """The host tools this boot needs (limapy.driver.hosttools), before the host agent is spawned."""
    from limapy.driver import hosttools
    from limapy.instance import summary

    try:
        spec = summary.refresh(inst).spec
    except LimapyError:
        return  # the host agent reports what is wrong with the configuration
    hosttools.require(hosttools.for_instance(inst, spec))


def run_foreground(inst: store.Instance) -> None:
    """`start --foreground`: become the host agent (its log lines on this terminal, events in ha.stdout.log);
    Ctrl-C stops the guest as `limapy stop` does."""
    with store.lock(inst, what="start"):
        if not _startable(inst):
            raise LimapyError(f"instance `{inst.name}` is already running")
        fd = store.open_private(inst.ha_stdout_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.close(fd)
    proc.exec_replace(proc.python_module("limapy", *pids.hostagent_args(inst.name, inst.dir)))


def start_instance(inst: store.Instance, *, timeout: float | None, show: Show, progress: bool = False) -> bool:
    """Start and wait, then run the `mode: ansible` playbooks (Lima's order); False when it was already running."""
    from limapy import config
    from limapy.base import dirs
    from limapy.download import refs
    from limapy.ops import ansible

    refs.register_quietly(dirs.limapy_home())  # an instance made by an older limapy: `prune` elsewhere sees it
    try:
        spec = config.instance_spec(inst)
    except LimapyError:
        spec = None  # the host agent reports what is wrong with it
    if spec is not None:
        ansible.require_program(spec)  # refused before anything boots
    with store.lock(inst, what="start"):
        if not _startable(inst):
            return False
        _require_tools(inst)
        agent = spawn_hostagent(inst)
    wait_ready(inst, agent, timeout if timeout is not None else default_timeout(inst), show, progress=progress)
    if spec is not None:
        ansible.run(inst, spec, show)
    show_message(inst, show)
    return True


def show_message(inst: store.Instance, show: Show) -> None:
    """The template's `message:` (rendered with the instance's fields), shown once it is ready, as Lima does."""
    from limapy import config

    try:
        message = config.instance_spec(inst).message.strip()
    except LimapyError:
        return
    if message:
        show(f"Message from the instance `{inst.name}`:\n{message}")
