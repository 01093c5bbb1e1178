"""`limapy rdp [--print] [--file F] NAME`: Remote Desktop into a Windows guest (127.0.0.1 forward)."""

from __future__ import annotations

from pathlib import Path

import typer

from limapy.cli._util import complete_instances, say


def register(app: typer.Typer) -> None:
    @app.command("rdp")
    def rdp(
        name: str = typer.Argument(
            ..., help="Instance name or unique prefix (a Windows guest)", autocompletion=complete_instances
        ),
        print_only: bool = typer.Option(False, "--print", help="Print the address (127.0.0.1:PORT) and exit."),
        file: Path | None = typer.Option(
            None, "--file", help="Write a .rdp file (0600) here instead of starting a client."
        ),
    ) -> int:
        """Open Remote Desktop to a Windows guest (FreeRDP or Remmina), or write a .rdp file."""
        from limapy.instance import store
        from limapy.ops.rdp import connect

        return connect(store.resolve(name), say=say, file=file, print_only=print_only)
