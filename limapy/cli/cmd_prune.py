"""`limapy prune [--keep-referred]`."""

from __future__ import annotations

import typer

from limapy.cli._util import say


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune(
        keep_referred: bool = typer.Option(
            False, "--keep-referred", help="Also keep the downloads instances' lima.yaml name."
        ),
    ) -> None:
        """Remove cached downloads no instance uses (the images instance disks stand on are always kept)."""
        from limapy.base.units import format_size
        from limapy.ops.prune import prune as do_prune

        r = do_prune(keep_referred=keep_referred, say=say)
        for path in r.leftovers:
            say(f"removed {path}, left by an interrupted create, clone or delete")
        say(f"removed {len(r.removed)} cache entries ({format_size(r.freed)}), kept {len(r.kept)}")
