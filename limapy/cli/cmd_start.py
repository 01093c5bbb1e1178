"""`limapy start [NAME|TEMPLATE] [--name N] [--timeout D] [--dry-run]`."""

from __future__ import annotations

import sys

import typer

from limapy.cli._util import say


class Display:
    """Phases on one live line on a TTY (rich), plain lines otherwise."""

    def __init__(self) -> None:
        self.status = None
        from limapy.term import interactive

        if interactive(sys.stderr):
            from rich.console import Console

            self.console = Console(stderr=True)
            self.status = self.console.status("starting")
            self.status.start()

    def show(self, msg: str) -> None:
        if self.status is not None:
            self.status.update(msg)
            self.console.log(msg)
        else:
            say(msg)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


def register(app: typer.Typer) -> None:
    @app.command("start")
    def start(
        target: str = typer.Argument(
            "default", help="An instance name (or unique prefix), or a template to create from"
        ),
        name: str | None = typer.Option(None, "--name", help="Name for an instance created from a template."),
        timeout: str | None = typer.Option(
            None, "--timeout", help="Wait at most this long (default 10m; a Windows install 90m, or 6h under TCG)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the command the boot would run; change nothing, boot nothing."
        ),
        cpus: int | None = typer.Option(None, "--cpus", min=1, help="CPUs (when creating)."),
        memory: float | None = typer.Option(None, "--memory", help="Memory in GiB (when creating)."),
        disk: float | None = typer.Option(None, "--disk", help="Disk in GiB (when creating)."),
        set_: list[str] = typer.Option([], "--set", help="Template edit, as for create (when creating)."),
        allow_local_files: bool = typer.Option(
            False, "--allow-local-files", help="Let a template from the network read files on this host."
        ),
    ) -> None:
        """Start an instance, creating it from a template first when given one."""
        from limapy.edits import shortcut_sets
        from limapy.ops import start as ops
        from limapy.units import parse_duration

        wait = parse_duration(timeout) if timeout else None
        inst = ops.resolve_target(
            target, name=name, sets=[*shortcut_sets(cpus, memory, disk), *set_], say=say,
            allow_local=allow_local_files,
        )  # fmt: skip
        if dry_run:
            print(ops.dry_run(inst))
            return
        display = Display()
        try:
            started = ops.start_instance(inst, timeout=wait, show=display.show)
        finally:
            display.close()
        if not started:
            say(f"instance `{inst.name}` is already running")
            return
        say(f"READY. Run `limapy shell {inst.name}` to open a shell.")
