"""`limapy copy [-r] SRC... DST` with `NAME:path` operands (scp through the instance's ssh.config)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("copy")
    def copy(
        operands: list[str] = typer.Argument(..., help="SOURCE... TARGET; guest paths as NAME:PATH"),
        recursive: bool = typer.Option(False, "-r", "--recursive", help="Copy directories."),
        verbose: bool = typer.Option(False, "-v", "--verbose", help="Verbose scp."),
    ) -> int:
        """Copy files between the host and a guest."""
        import subprocess

        from limapy import store
        from limapy.errors import LimapyError
        from limapy.ssh import scp_argv

        for op in operands:
            if ":" in op and not op.startswith(("/", ".")):
                inst = store.resolve(op.split(":", 1)[0])
                if store.status(inst) != "Running":
                    raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
        argv = scp_argv(operands, recursive=recursive, verbose=verbose)
        return subprocess.call(argv)
