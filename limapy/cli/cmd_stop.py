"""`limapy stop [-f] [NAME...]` (default: the instance `default`, as limactl)."""

from __future__ import annotations

import typer

from limapy.cli._util import doc, instances_for


def register(app: typer.Typer) -> None:
    @app.command("stop", **doc(
        "Stop instances gracefully (ACPI power-down), or at once with -f.",
        "Without a name, the instance `default`. An instance that is not running is an error (exit 1), as in "
        "limactl; `-f` cleans up after a crashed one whatever its state.",
        examples=["limapy stop", "limapy stop web db", "limapy stop -f web"],
    ))  # fmt: skip
    def stop(
        names: list[str] = typer.Argument(
            None, help="Instances (names or unique prefixes; default: `default`)", autocompletion=instances_for("stop")
        ),
        force: bool = typer.Option(
            False, "-f", "--force", help="Stop QEMU and the host agent at once (no guest shutdown)."
        ),
    ) -> None:
        from limapy.cli._report import report
        from limapy.ops import stop as ops

        ops.run(ops.Request(names or (), force), report)
