"""`limapy stop [-f] NAME...`."""

from __future__ import annotations

import typer

from limapy.cli._util import complete_instances, say


def register(app: typer.Typer) -> None:
    @app.command("stop")
    def stop(
        names: list[str] = typer.Argument(
            ..., help="Instances (names or unique prefixes)", autocompletion=complete_instances
        ),
        force: bool = typer.Option(
            False, "-f", "--force", help="Stop QEMU and the host agent at once (no guest shutdown)."
        ),
    ) -> None:
        """Stop instances gracefully (ACPI power-down), or at once with -f."""
        from limapy import store
        from limapy.ops.stop import stop as do_stop

        for n in names:
            inst = store.resolve(n)
            if do_stop(inst, force=force, say=say):
                say(f"stopped `{inst.name}`")
            else:
                say(f"instance `{inst.name}` is not running")
