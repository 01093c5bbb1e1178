"""`limapy list [FLAGS] [NAME...]` (alias `ls`): Lima's table, NDJSON, YAML, Go templates, --yq, --filter.

The CLI's fast path parses the usual forms with `limapy.ops.list.parse`; this command is for `--help` and
what the fast path leaves to click. Both build the same `Request` (tests/unit/test_cli_fastpath.py).
"""

from __future__ import annotations

import typer

from limapy.cli._util import complete_instances, say, values_of


def register(app: typer.Typer) -> None:
    def list_(
        names: list[str] = typer.Argument(
            None, help="Only these instances, in this order", autocompletion=complete_instances
        ),
        fmt: str | None = typer.Option(
            None, "--format", "-f", help="table (default), json, yaml, or a Go template ('{{.Name}} {{.Status}}').",
            autocompletion=values_of("list --format"),
        ),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line (Lima's keys); --format json."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Names only."),
        list_fields: bool = typer.Option(False, "--list-fields", help="The field names templates can use."),
        all_fields: bool = typer.Option(False, "--all-fields", help="Every table column (limapy always shows all)."),
        yq: list[str] = typer.Option([], "--yq", help="A yq expression applied to each JSON object (a safe subset)."),
        filters: list[str] = typer.Option(
            [], "--filter", "-l", help="Only instances for which this yq expression holds (as select(EXPR))."
        ),
        connect: str | None = typer.Option(
            None,
            "--connect",
            metavar="URI",
            help="List the domains limapy made on this libvirt host (any machine's, orphans included).",
        ),
    ) -> int:
        """List instances."""
        from limapy.ops import list as ops

        req = ops.Request(
            names=tuple(names or ()), format=fmt, json=as_json, quiet=quiet, list_fields=list_fields,
            all_fields=all_fields, yq=tuple(yq), filters=tuple(filters), connect=connect,
        )  # fmt: skip
        return ops.run(req, say=say)

    app.command("list")(list_)
    app.command("ls", hidden=True)(list_)
