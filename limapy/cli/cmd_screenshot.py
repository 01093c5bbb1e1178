"""`limapy screenshot NAME -o FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

from limapy.cli._util import complete_instances, say


def register(app: typer.Typer) -> None:
    @app.command("screenshot")
    def screenshot(
        name: str = typer.Argument(..., help="Instance name or unique prefix", autocompletion=complete_instances),
        output: Path = typer.Option(Path("screenshot.png"), "-o", "--output", help="PNG file to write."),
    ) -> None:
        """Save a PNG of the guest's screen (works during a Windows install)."""
        from limapy.instance import store
        from limapy.ops.screenshot import screenshot as shot

        inst = store.resolve(name)
        shot(inst, output)
        say(f"wrote {output}")
