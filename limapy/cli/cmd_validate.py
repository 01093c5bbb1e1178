"""`limapy validate FILE...`: schema + Lima's semantic rules; `FILE: OK` per good file; exit 3 if any is invalid."""

from __future__ import annotations

import typer

from limapy.cli._util import instances_for


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        files: list[str] = typer.Argument(
            ..., metavar="FILE...", help="lima.yaml files, template:NAME, or -",
            autocompletion=instances_for("validate"),
        ),
        fill: bool = typer.Option(False, "--fill", help="Print the YAML with every default filled in."),
        allow_local_files: bool = typer.Option(
            False, "--allow-local-files", help="Let a template from the network read files on this host."
        ),
    ) -> int:
        """Check lima.yaml files against the schema and Lima's rules."""
        from limapy.ops.validate import validate_files

        return validate_files(files, fill=fill, allow_local=allow_local_files)
