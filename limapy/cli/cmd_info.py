"""`limapy info [NAME]`: host, version and template information as JSON; with NAME, that instance."""

from __future__ import annotations

import typer

from limapy.cli._util import complete_instances


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(
        name: str | None = typer.Argument(
            None, help="An instance (name or unique prefix): show it instead", autocompletion=complete_instances
        ),
    ) -> None:
        """Print host, version and template information as JSON (with NAME: that instance, as `list --json`)."""
        from limapy.ops.info import render

        print(render(name))
