"""`limapy list [--json | --format json|yaml|table] [-q] [NAME...]`."""

from __future__ import annotations

import typer

from limapy.cli._util import say


def register(app: typer.Typer) -> None:
    @app.command("ls", hidden=True)
    @app.command("list")
    def list_(
        names: list[str] = typer.Argument(None, help="Only these instances"),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line (Lima's keys)."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, json or yaml"),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Names only."),
    ) -> int:
        """List instances."""
        from limapy.ops.list import list_instances

        return list_instances(names or [], fmt="json" if as_json else fmt, quiet=quiet, say=say)
