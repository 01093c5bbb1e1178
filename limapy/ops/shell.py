"""`limapy shell [FLAGS] [NAME] [CMD...]`: OpenSSH into the guest with Lima's semantics; the exit code is the guest's.

This is the command scripts call in loops, so it is on a diet: it reads the instance's summary (not
lima.yaml), its pid files and `ssh.config`, and execs ssh. `parse` is the whole argument grammar, used by
the CLI's fast path; the typer command (for `--help`) builds the same `Request` (a test holds them equal).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from limapy.base import proc
from limapy.base.errors import ExternalToolError, LimapyError, NotFoundError
from limapy.instance import store

ENV_INSTANCE = "LIMAPY_INSTANCE"
DEFAULT_INSTANCE = "default"
#: How long `shell` waits for a guest that is still booting (a `start`'s own default).
WAIT_READY = 600.0
#: Words that are limapy commands: `limapy shell start` most likely meant `limapy start` (Lima's hint).
_COMMAND_WORDS = ("create", "start", "stop", "delete", "shell", "list")


class Request:
    """One `limapy shell` invocation, parsed (a plain class: `dataclasses` costs ~10 ms to import)."""

    __slots__ = ("by_flag", "command", "name", "preserve_env", "reconnect", "shell", "start", "sync", "workdir")

    def __init__(
        self,
        name: str | None = None,  # None: $LIMAPY_INSTANCE, else `default`
        command: tuple[str, ...] = (),
        workdir: str | None = None,
        shell: str | None = None,
        preserve_env: bool = False,
        start: bool = False,
        reconnect: bool = False,
        by_flag: bool = False,  # the name came from --instance
        sync: str | None = None,  # --sync DIR: work on a copy of DIR in the guest, synced back on exit
    ) -> None:
        self.name, self.command, self.workdir, self.shell = name, tuple(command), workdir, shell
        self.preserve_env, self.start, self.reconnect, self.by_flag = preserve_env, start, reconnect, by_flag
        self.sync = sync

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.command, self.workdir, self.shell, self.preserve_env, self.start, self.reconnect,
                self.sync)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Request(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


_VALUED = {"--workdir": "workdir", "--shell": "shell", "--instance": "name", "--sync": "sync"}
_FLAGS = {"--preserve-env": "preserve_env", "--start": "start", "--reconnect": "reconnect"}


def parse(args: Sequence[str]) -> Request | None:
    """The shell grammar: flags, then the name (unless --instance gave it), then the command, verbatim.

    Flags must come before the name (after it everything belongs to the command, as in Lima). None for
    what this parser leaves to the CLI framework: `-h`/`--help`, an unknown flag, a flag missing its value."""
    values: dict[str, object] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        key, eq, value = a.partition("=")
        if key in _VALUED:
            if not eq:
                if i + 1 >= len(args):
                    return None
                value = args[i + 1]
                i += 1
            values[_VALUED[key]] = value
        elif key in _FLAGS and not eq:
            values[_FLAGS[key]] = True
        else:
            return None
        i += 1
    rest = list(args[i:])
    by_flag = "name" in values
    if not by_flag and rest:
        values["name"] = rest.pop(0)
    if rest and rest[0] == "--":
        rest = rest[1:]
    return Request(command=tuple(rest), by_flag=by_flag, **values)  # type: ignore[arg-type]


def instance_name(req: Request, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return req.name or env.get(ENV_INSTANCE) or DEFAULT_INSTANCE


def _resolve(name: str) -> store.Instance:
    try:
        return store.resolve(name)
    except NotFoundError as e:
        if name in _COMMAND_WORDS:
            raise NotFoundError(e.message, hint=f"perhaps you meant `limapy {name}`?") from None
        raise


def booting_phase(inst: store.Instance) -> str | None:
    """The phase of a running instance whose guest is not ready yet (its host agent's last event), None once
    it is ready (every event after `ready` keeps that phase) or when there is no event log to read."""
    try:
        with open(inst.ha_stdout_log, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 8192))
            tail = f.read()
    except OSError:
        return None
    lines = [ln for ln in tail.split(b"\n") if ln.strip()]
    if not lines:
        return "starting"
    import json

    try:
        phase = json.loads(lines[-1]).get("phase")
    except (ValueError, AttributeError):
        return None
    return None if phase == "ready" else str(phase or "starting")


def wait_until_ready(inst: store.Instance, phase: str, *, timeout: float = WAIT_READY) -> None:
    """Wait for a booting guest (Lima's shell says "waiting for the instance to be ready"): the host agent's
    events until `ready`, on a terminal with the live line (limapy.base.term.Live)."""
    import time

    from limapy.base.term import Live
    from limapy.ops.start import Follower

    with Live() as live:
        live.line(f"limapy: instance `{inst.name}` is not ready yet ({phase}): waiting for it to be ready")
        live.status(phase)
        follower = Follower(inst.ha_stdout_log)
        deadline = time.monotonic() + timeout
        while True:
            logs = f"logs: {inst.ha_stderr_log}, {inst.serial_log}"
            for ev in follower.poll():
                phase = str(ev.get("phase") or phase)
                live.status(phase)
                if phase == "ready":
                    return
                st = ev.get("status") or {}
                if st.get("exiting"):
                    why = "; ".join(st.get("errors") or []) or str(ev.get("message") or "")
                    raise LimapyError(f"instance `{inst.name}` stopped before it was ready: {why}", hint=logs)
            if store.ha_pid(inst) is None:
                raise LimapyError(f"instance `{inst.name}` stopped before it was ready", hint=logs)
            if time.monotonic() > deadline:
                raise LimapyError(
                    f"instance `{inst.name}` was not ready after {timeout:.0f} s (still: {phase})",
                    hint=f"it keeps booting; `limapy start {inst.name}` waits for it with its progress",
                )
            time.sleep(0.2)


def require_running(inst: store.Instance, *, start: bool = False) -> None:
    from limapy import driver

    st = driver.status(inst)
    if st == store.RUNNING:
        phase = booting_phase(inst)
        if phase is not None:
            wait_until_ready(inst, phase)
        return
    if start and st == store.STOPPED:
        from limapy.ops.start import start_instance

        start_instance(inst, timeout=None, show=lambda m: print(f"limapy: {m}", file=sys.stderr))
        return
    raise LimapyError(
        f"instance `{inst.name}` is {st.lower()}",
        hint=f"run `limapy start {inst.name}` to start it" + ("" if st != store.STOPPED else ", or `shell --start`"),
    )


def preserved_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    from limapy.expr.shellenv import filtered

    return filtered(os.environ if env is None else env)


def shell_argv(inst: store.Instance, req: Request) -> list[str]:
    from limapy import ssh
    from limapy.instance import summary

    require_running(inst, start=req.start)
    port = ssh.config_port(inst)
    if not port:
        raise LimapyError(f"instance `{inst.name}` has no SSH port yet (still starting?)")
    spec = summary.load(inst).view
    env = preserved_env() if req.preserve_env else None
    script = ssh.shell_script(spec, list(req.command), workdir=req.workdir, shell=req.shell, env=env)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    if req.reconnect:
        proc.run(ssh.control_exit_argv(inst), check=False)
    # The host agent starts the forwards' ControlMaster as SSH comes up, and READY does not wait for it: a shell
    # that made its own meanwhile would lose the race for the socket and print ssh's "ControlSocket ... already
    # exists, disabling multiplexing". Until the socket is there, a shell uses a master but makes none.
    coming = not getattr(spec, "plain", True) and not inst.ssh_sock.exists()
    return ssh.ssh_argv(inst, spec, port, tty=tty, script=script, reuse_only=coming)


def run(req: Request) -> int:
    """Become ssh (returns only by raising); with --sync, run it as a child and return its exit code."""
    inst = _resolve(instance_name(req))
    if req.sync is not None:
        from limapy.ops.shellsync import run_synced

        return run_synced(inst, req, ready=lambda i, start: require_running(i, start=start), env_of=preserved_env)
    exec_shell(shell_argv(inst, req))
    return 0  # not reached


def exec_shell(argv: list[str]) -> None:
    try:
        proc.exec_replace(argv)
    except ExternalToolError as e:
        raise LimapyError(e.message, hint="install openssh-client") from None
