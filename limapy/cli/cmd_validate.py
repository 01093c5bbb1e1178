"""`limapy validate FILE...`: schema + Lima's semantic rules; `FILE: OK` per good file; exit 3 if any is invalid."""

from __future__ import annotations

import sys

import typer

from limapy.errors import EXIT_INVALID, ConfigError, LimapyError


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        files: list[str] = typer.Argument(..., metavar="FILE...", help="lima.yaml files, template:NAME, or -"),
        fill: bool = typer.Option(False, "--fill", help="Print the YAML with every default filled in."),
    ) -> int:
        """Check lima.yaml files against the schema and Lima's rules."""
        from limapy.config import check
        from limapy.config.load import dump_yaml, load
        from limapy.ops.fetch import template_fetcher

        bad = 0
        for f in files:
            try:
                doc = load(f, fetcher=template_fetcher)
                loaded = check(doc)
            except ConfigError as e:
                for w in getattr(e, "warnings", []):
                    print(w, file=sys.stderr)
                for line in e.problems:
                    print(line if line.startswith(f) or ":" in line.split(" ", 1)[0] else f"{f}: {line}",
                          file=sys.stderr)
                bad += 1
                continue
            except LimapyError as e:
                print(f"{f}: {e.message}", file=sys.stderr)
                bad += 1
                continue
            for w in loaded.warnings:
                print(w, file=sys.stderr)
            if fill:
                sys.stdout.write(dump_yaml(loaded.cfg))
            else:
                print(f"{f}: OK")
        return EXIT_INVALID if bad else 0
