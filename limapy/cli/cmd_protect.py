"""`limapy protect NAME...` and `limapy unprotect NAME...`."""

from __future__ import annotations

import typer

from limapy.cli._util import instance_names_arg, say


def register(app: typer.Typer) -> None:
    @app.command("protect")
    def protect(names: list[str] = instance_names_arg("Instances to protect")) -> None:
        """Protect instances from `delete` (also `delete -f`)."""
        from limapy.instance import store
        from limapy.ops.protect import protect as do_protect

        for n in names:
            inst = store.resolve(n)
            if do_protect(inst):
                say(f"protected `{inst.name}`")
            else:
                say(f"instance `{inst.name}` is already protected")

    @app.command("unprotect")
    def unprotect(names: list[str] = instance_names_arg("Instances to unprotect")) -> None:
        """Allow `delete` again on protected instances."""
        from limapy.instance import store
        from limapy.ops.protect import unprotect as do_unprotect

        for n in names:
            inst = store.resolve(n)
            if do_unprotect(inst):
                say(f"unprotected `{inst.name}`")
            else:
                say(f"instance `{inst.name}` is not protected")
