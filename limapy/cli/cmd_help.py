"""`limapy help [COMMAND...]`: a command's help, as `limapy COMMAND --help` prints it (cobra's `help`).

The CLI's fast path turns `help X` into `X --help` before typer is built (and so replays the help cache);
this command is what `limapy --help` lists and what completion offers."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("help", context_settings={"ignore_unknown_options": True})
    def help_(command: list[str] = typer.Argument(None, help="The command (and subcommand)")) -> int:
        """Show the help of a command (the same as `limapy COMMAND --help`)."""
        from limapy import cli

        return cli._typer([*(command or []), "--help"])
