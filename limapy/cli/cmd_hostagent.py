"""`limapy hostagent NAME` (hidden): the per-instance supervisor `start` runs detached."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("hostagent", hidden=True)
    def hostagent(
        name: str = typer.Argument(...),
        dir: str | None = typer.Option(None, "--dir", help="The instance directory (marks the process as its own)."),
    ) -> int:
        """Run the host agent of NAME in the foreground."""
        from limapy.agent.hostagent import main

        return main(name, dir)
