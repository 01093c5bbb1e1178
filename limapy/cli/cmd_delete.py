"""`limapy delete [-f] NAME...` (full names)."""

from __future__ import annotations

import typer

from limapy.cli._util import complete_instances, say


def register(app: typer.Typer) -> None:
    @app.command("rm", hidden=True)
    @app.command("remove", hidden=True)
    @app.command("delete")
    def delete(
        names: list[str] = typer.Argument(
            ..., help="Instance names (full names, no prefixes)", autocompletion=complete_instances
        ),
        force: bool = typer.Option(False, "-f", "--force", help="Stop a running instance first."),
    ) -> None:
        """Delete instances and everything in their directories."""
        from limapy.ops.delete import delete as do_delete

        for n in names:
            if do_delete(n, force=force):
                say(f"deleted `{n}`")
            else:
                say(f"warning: ignoring non-existent instance `{n}`")
