"""`limapy copy [-r] [--backend auto|rsync|scp] SRC... DST` with `NAME:path` operands (through ssh.config).

The CLI's fast path parses it with `limapy.ops.copy.parse` (same `Request`; tests/unit/test_cli_fastpath.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("cp", hidden=True)
    @app.command("copy")
    def copy(
        operands: list[str] = typer.Argument(..., help="SOURCE... TARGET; guest paths as NAME:PATH"),
        recursive: bool = typer.Option(False, "-r", "--recursive", help="Copy directories."),
        verbose: bool = typer.Option(False, "-v", "--verbose", help="Verbose output (rsync: progress)."),
        backend: str = typer.Option(
            "auto", "--backend",
            help="scp, rsync, or auto: rsync when the host and the guest have it, else scp (as limactl).",
        ),
    ) -> int:
        """Copy files between the host and a guest."""
        from limapy.ops import copy as ops

        return ops.run(ops.Request(operands, recursive=recursive, verbose=verbose, backend=backend))
