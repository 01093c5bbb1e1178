"""`limapy show-ssh [--format cmd|args|options|config] NAME`."""

from __future__ import annotations

import sys

import typer

from limapy.cli._util import instance_arg, values_of


def register(app: typer.Typer) -> None:
    @app.command("show-ssh")
    def show_ssh(
        name: str = instance_arg(),
        fmt: str = typer.Option(
            "cmd", "-f", "--format", help="cmd, args, options or config", autocompletion=values_of("show-ssh --format")
        ),
    ) -> None:
        """Show the ssh command line (or its arguments, options, or an ssh_config block) for an instance."""
        from limapy.instance import store
        from limapy.ops.show_ssh import render

        sys.stdout.write(render(store.resolve(name), fmt))
