"""`limapy list [--json | --format json|yaml|table] [-q] [NAME...]`."""

from __future__ import annotations

import sys

import typer

from limapy.cli._util import say


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_(
        names: list[str] = typer.Argument(None, help="Only these instances"),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line (Lima's keys)."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, json or yaml"),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Names only."),
    ) -> int:
        """List instances."""
        import json

        from limapy import store
        from limapy.errors import UsageError

        if as_json:
            fmt = "json"
        if fmt not in ("table", "json", "yaml"):
            raise UsageError(f"--format {fmt!r}: use table, json or yaml")
        all_names = store.list_instances()
        chosen = all_names
        rc = 0
        if names:
            chosen = [n for n in all_names if n in names]
            for n in names:
                if n not in all_names:
                    say(f"warning: No instance matching {n} found.")
                    rc = 1
        if not all_names:
            say("warning: No instance found. Run `limapy create` to create an instance.")
            return 0
        if quiet:
            for n in chosen:
                print(n)
            return rc
        from limapy.ops.list import info, table

        rows = [info(store.Instance(n, store.instance_dir(n))) for n in chosen]
        if fmt == "json":
            for r in rows:
                print(json.dumps(r, separators=(",", ":"), default=str))
        elif fmt == "yaml":
            from limapy.config.load import dump_yaml

            for r in rows:
                sys.stdout.write("---\n" + dump_yaml(json.loads(json.dumps(r, default=str))))
        else:
            sys.stdout.write(table(rows))
        return rc
