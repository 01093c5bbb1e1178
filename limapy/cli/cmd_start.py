"""`limapy start [NAME|TEMPLATE] [--name N] [--timeout D] [--dry-run] [--foreground] [--progress] [create flags]`,
and `limapy start NAME NAME...` (limapy extension: several instances at once, e.g. suspended clones)."""

from __future__ import annotations

import typer

from limapy.cli._editflags import with_edit_flags
from limapy.cli._util import instances_for, say, values_of
from limapy.expr.editflags import EditFlags


class Display:
    """The host agent's phase lines, the same on a terminal and a pipe (limapy.base.term.Live: no markup, no
    timestamps); on a terminal one live line below them names the current phase and how long it has taken."""

    def __init__(self) -> None:
        from limapy.base.term import Live

        self.live = Live()

    def show(self, msg: str) -> None:
        self.live.line(msg)
        phase, bracket, _ = msg[1:].partition("]")
        if msg.startswith("[") and bracket and phase != "console":
            self.live.status(phase)

    def close(self) -> None:
        self.live.close()


def _start_many(names: list[str], wait: float | None, progress: bool) -> None:
    """Start existing instances together (each its own host agent), each line prefixed with its name; exit 1
    naming each one that failed, once all have finished."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from limapy.base.errors import LimapyError
    from limapy.instance import store
    from limapy.ops.start import start_instance

    insts = [store.resolve(n) for n in dict.fromkeys(names)]
    printing = threading.Lock()

    def one(inst: store.Instance) -> str:
        def show(msg: str) -> None:
            with printing:
                say(f"{inst.name}: {msg}")

        try:
            started = start_instance(inst, timeout=wait, show=show, progress=progress)
        except LimapyError as e:
            return e.message
        show("READY" if started else "already running")
        return ""

    with ThreadPoolExecutor(max_workers=len(insts)) as pool:
        failed = [(inst.name, why) for inst, why in zip(insts, pool.map(one, insts), strict=True) if why]
    for name, why in failed:
        say(f"error: `{name}`: {why}")
    if failed:
        raise typer.Exit(1)
    say("READY. Run `limapy shell NAME` to open a shell in any of them.")


def register(app: typer.Typer) -> None:
    @app.command("start")
    @with_edit_flags
    def start(
        target: str = typer.Argument(
            "default", help="An instance name (or unique prefix), or a template to create from",
            autocompletion=instances_for("start"),
        ),
        more: list[str] | None = typer.Argument(
            None, help="More instances to start at the same time (limapy extension)", show_default=False,
        ),
        name: str | None = typer.Option(None, "--name", help="Name for an instance created from a template."),
        timeout: str | None = typer.Option(
            None, "--timeout", help="Wait at most this long (default 10m; a Windows install 90m, or 6h under TCG)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run",
            help="Print the command the boot would run; change nothing, boot nothing (a template creates no "
            "instance; its images are still fetched into the download cache: the plan reads them).",
        ),
        foreground: bool = typer.Option(False, "--foreground", help="Run the host agent in this terminal."),
        progress: bool = typer.Option(False, "--progress", help="Show the guest's console output while booting."),
        allow_local_files: bool = typer.Option(
            False, "--allow-local-files", help="Let a network template use host files and local addresses."
        ),
        driver: str | None = typer.Option(
            None, "--driver", help="Engine for a new instance: qemu (default) or libvirt ($LIMAPY_DRIVER).",
            autocompletion=values_of("--driver")),
        connect: str | None = typer.Option(
            None, "--connect", help="libvirt URI for a new instance (default $LIBVIRT_DEFAULT_URI)."),
        *,
        flags: EditFlags,
    ) -> None:
        """Start an instance, creating it from a template first when given one (flags edit an existing one)."""
        from limapy.base.units import parse_duration
        from limapy.expr.editflags import to_edits
        from limapy.ops import start as ops

        wait = parse_duration(timeout) if timeout else None
        edits = to_edits(flags, existing=True)
        if more:
            if name or dry_run or foreground or edits or allow_local_files or driver or connect:
                from limapy.base.errors import UsageError

                raise UsageError("several instances are started as they are: no --name, --dry-run, --foreground, "
                                 "create or edit flags", hint="start them one at a time for those")  # fmt: skip
            _start_many([target, *more], wait, progress)
            return
        if dry_run:  # the flags shape the plan; nothing is written, a template creates no instance
            print(ops.dry_run_target(target, name=name, sets=to_edits(flags), existing_sets=edits, say=say,
                                     allow_local=allow_local_files, driver_name=driver, connect=connect,
                                     create_only=flags.given_create_only()))  # fmt: skip
            return
        inst = ops.resolve_target(
            target, name=name, sets=to_edits(flags), say=say, allow_local=allow_local_files,
            existing_sets=edits, create_only=flags.given_create_only(), driver_name=driver, connect=connect,
        )  # fmt: skip
        if foreground:
            ops.run_foreground(inst)
            return
        display = Display()
        try:
            started = ops.start_instance(inst, timeout=wait, show=display.show, progress=progress)
        finally:
            display.close()
        if not started:
            say(f"instance `{inst.name}` is already running")
            return
        say(f"READY. Run `limapy shell {inst.name}` to open a shell.")
