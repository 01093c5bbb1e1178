"""`limapy start [NAME|TEMPLATE] [--name N] [--timeout D] [--dry-run] [--foreground] [--progress] [create flags]`."""

from __future__ import annotations

import sys

import typer

from limapy.cli._editflags import with_edit_flags
from limapy.cli._util import complete_instances, say
from limapy.editflags import EditFlags


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
    @with_edit_flags
    def start(
        target: str = typer.Argument(
            "default", help="An instance name (or unique prefix), or a template to create from",
            autocompletion=complete_instances,
        ),
        name: str | None = typer.Option(None, "--name", help="Name for an instance created from a template."),
        timeout: str | None = typer.Option(
            None, "--timeout", help="Wait at most this long (default 10m; a Windows install 90m, or 6h under TCG)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the command the boot would run; change nothing, boot nothing."
        ),
        foreground: bool = typer.Option(False, "--foreground", help="Run the host agent in this terminal."),
        progress: bool = typer.Option(False, "--progress", help="Show the guest's console output while booting."),
        allow_local_files: bool = typer.Option(
            False, "--allow-local-files", help="Let a network template use host files and local addresses."
        ),
        driver: str | None = typer.Option(
            None, "--driver", help="Engine for a new instance: qemu (default) or libvirt ($LIMAPY_DRIVER)."),
        connect: str | None = typer.Option(
            None, "--connect", help="libvirt URI for a new instance (default $LIBVIRT_DEFAULT_URI)."),
        *,
        flags: EditFlags,
    ) -> None:
        """Start an instance, creating it from a template first when given one (flags edit an existing one)."""
        from limapy.editflags import to_edits
        from limapy.ops import start as ops
        from limapy.units import parse_duration

        wait = parse_duration(timeout) if timeout else None
        edits = to_edits(flags, existing=True)
        inst = ops.resolve_target(
            target, name=name, sets=to_edits(flags), say=say, allow_local=allow_local_files,
            existing_sets=() if dry_run else edits, create_only=flags.given_create_only(),
            driver_name=driver, connect=connect,
        )  # fmt: skip
        if dry_run:  # the flags shape the plan; lima.yaml is not written
            print(ops.dry_run(inst, edits if ops.existed(inst, target) else ()))
            return
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
