"""`limapy edit NAME [--set EXPR] [--cpus --memory --disk ...] [--start]`."""

from __future__ import annotations

import typer

from limapy.cli._editflags import with_edit_flags
from limapy.cli._util import instance_arg, say
from limapy.expr.editflags import EditFlags


def register(app: typer.Typer) -> None:
    @app.command("edit")
    @with_edit_flags
    def edit(
        name: str = instance_arg(default="default"),
        start: bool = typer.Option(False, "--start", help="Start the instance after editing."),
        *,
        flags: EditFlags,
    ) -> None:
        """Edit a stopped instance's lima.yaml (flags, --set, or $EDITOR on a terminal); validated first."""
        import sys

        from limapy.expr.editflags import to_edits
        from limapy.instance import store
        from limapy.ops.edit import edit as do_edit

        inst = store.resolve(name)
        for flag in flags.given_create_only():
            say(f"warning: {flag} applies only when an instance is created; ignored")
        changed = do_edit(inst, to_edits(flags, existing=True), say=say,
                          interactive=sys.stdin.isatty() and sys.stdout.isatty())
        say(f"edited `{inst.name}`" if changed else "no changes made")
        if start:
            from limapy.cli.cmd_start import Display
            from limapy.ops.start import start_instance

            display = Display()
            try:
                start_instance(inst, timeout=None, show=display.show)
            finally:
                display.close()
            say(f"READY. Run `limapy shell {inst.name}` to open a shell.")
