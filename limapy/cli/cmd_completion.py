"""`limapy completion bash|zsh|fish|powershell`: a completion script for the shell (Lima's spelling).

The script calls `limapy` back with `_LIMAPY_COMPLETE` set. Command names and instance arguments are answered
by limapy.cli.complete without building this app; typer answers the rest (options, subcommands), with
`ops.completion.instance_names()` for instance arguments too.
"""

from __future__ import annotations

import typer

COMPLETE_VAR = "_LIMAPY_COMPLETE"
SHELL_NAMES = ("bash", "zsh", "fish", "powershell")


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    from limapy.base.errors import UsageError
    from limapy.ops.completion import SHELLS

    if shell not in SHELLS:
        raise UsageError(f"unsupported shell {shell!r}", hint=f"use one of {', '.join(SHELLS)}")
    return get_completion_script(prog_name="limapy", complete_var=COMPLETE_VAR, shell=shell) + "\n"


def register(app: typer.Typer) -> None:
    import os

    if os.environ.get(COMPLETE_VAR):  # the shell is asking: typer's completion classes answer it
        from typer._completion_classes import completion_init

        completion_init()

    @app.command("completion")
    def completion(
        shell: str = typer.Argument(
            ..., help="bash, zsh, fish or powershell",
            autocompletion=lambda incomplete: [s for s in SHELL_NAMES if s.startswith(incomplete)],
        ),
    ) -> None:
        """Print a shell completion script, e.g. `source <(limapy completion bash)`."""
        import sys

        sys.stdout.write(script(shell))
