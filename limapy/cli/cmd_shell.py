"""`limapy shell [--workdir D] [--shell S] NAME [CMD...]`: the remote exit code becomes limapy's."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "shell",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    )
    def shell(
        name: str = typer.Argument(..., help="Instance name or unique prefix"),
        command: list[str] = typer.Argument(None, help="Command to run (default: a login shell)"),
        workdir: str | None = typer.Option(None, "--workdir", help="Working directory in the guest."),
        shell_: str | None = typer.Option(None, "--shell", help="Shell (Windows: cmd.exe, powershell.exe, pwsh.exe)."),
    ) -> None:
        """Open a shell in the guest, or run a command there."""
        from limapy import store
        from limapy.ops.shell import exec_shell, shell_argv

        cmd = list(command or [])
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        inst = store.resolve(name)
        exec_shell(shell_argv(inst, cmd, workdir=workdir, shell=shell_))
