"""`limapy yq [eval|e] [FLAGS] [EXPRESSION] [FILE...]`: yq's command line over limapy's yq subset.

`limactl yq` runs the yq built into limactl; this runs limapy's (limapy.expr.yqcli), the same code the guest runs for
`mode: yq` provision steps. The CLI's fast path (limapy.cli.fast) hands the arguments to it untouched; this
command is here for `--help` and completion.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "yq",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
    )
    def yq(
        args: list[str] = typer.Argument(None, metavar="[eval|e] [FLAGS] [EXPRESSION] [FILE...]",
                                         help="yq's arguments: -i, -n, -p/-o yaml|json|ini, --from-file, -I, -r, -e"),
    ) -> int:
        """Query or edit YAML, JSON and INI files with yq expressions (limapy's safe subset of yq)."""
        from limapy.expr import yqcli

        return yqcli.main(list(args or []))
