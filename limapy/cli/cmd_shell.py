"""`limapy shell [FLAGS] [NAME] [CMD...]`: the remote exit code becomes limapy's.

The CLI's fast path parses the usual forms with `limapy.ops.shell.parse` and never builds this command;
it is here for `--help` and what the fast path leaves to click. Both build the same `Request`
(tests/unit/test_cli_fastpath.py holds them equal over a corpus of command lines).
"""

from __future__ import annotations

import typer

from limapy.cli._util import complete_instances


def register(app: typer.Typer) -> None:
    @app.command(
        "shell",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    )
    def shell(
        name: str | None = typer.Argument(
            None, help="Instance name or unique prefix (default: $LIMAPY_INSTANCE, else `default`)",
            autocompletion=complete_instances,
        ),
        command: list[str] = typer.Argument(None, help="Command to run (default: a login shell)"),
        workdir: str | None = typer.Option(None, "--workdir", help="Working directory in the guest."),
        shell_: str | None = typer.Option(None, "--shell", help="Shell (Windows: cmd.exe, powershell.exe, pwsh.exe)."),
        instance: str | None = typer.Option(
            None, "--instance", help="The instance; every argument is then the command (as the `lima` wrapper)."
        ),
        preserve_env: bool = typer.Option(
            False, "--preserve-env",
            help="Send host environment variables (not those LIMAPY_SHELLENV_BLOCK blocks; see `limapy info`).",
        ),
        start: bool = typer.Option(False, "--start", help="Start the instance first when it is stopped."),
        reconnect: bool = typer.Option(False, "--reconnect", help="Open a new SSH connection (drop the shared one)."),
    ) -> None:
        """Open a shell in the guest, or run a command there.

        Options (the global ones too) come before NAME: everything after it is the command, verbatim. A guest
        that is still booting is waited for."""
        from limapy.ops import shell as ops

        cmd = list(command or [])
        if instance is not None:
            cmd = [*([name] if name is not None else []), *cmd]
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        req = ops.Request(
            name=instance if instance is not None else name, command=tuple(cmd), workdir=workdir, shell=shell_,
            preserve_env=preserve_env, start=start, reconnect=reconnect, by_flag=instance is not None,
        )  # fmt: skip
        ops.run(req)
