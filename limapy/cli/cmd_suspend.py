"""`limapy suspend NAME...`."""

from __future__ import annotations

import typer

from limapy.cli._util import instances_for, say


def register(app: typer.Typer) -> None:
    @app.command("suspend")
    def suspend(
        names: list[str] = typer.Argument(
            ..., help="Instances (names or unique prefixes)", autocompletion=instances_for("suspend")
        ),
    ) -> None:
        """Save running instances' memory and devices to their directory and stop them; `start` resumes.

        A guest still booting (cloud-init's later stages run after READY) is first given up to 10 minutes to
        finish, so that its resumes and clones do not each finish the boot again."""
        from limapy.instance import store
        from limapy.ops.suspend import suspend as do_suspend

        for n in names:
            inst = store.resolve(n)
            if do_suspend(inst, say=say):
                say(f"suspended `{inst.name}` (`limapy start {inst.name}` resumes it)")
            else:
                say(f"instance `{inst.name}` is suspended already")
