"""`limapy factory-reset [NAME]`."""

from __future__ import annotations

import typer

from limapy.cli._util import instance_arg, say


def register(app: typer.Typer) -> None:
    @app.command("factory-reset")
    def factory_reset(name: str = instance_arg(default="default")) -> None:
        """Back to the first boot: a new disk and seed; lima.yaml is kept (Windows: installs again)."""
        from limapy.instance import store
        from limapy.ops.factory_reset import factory_reset as do_reset

        inst = store.resolve(name, exact=True)
        do_reset(inst, say=say)
        say(f"`{inst.name}` is reset; `limapy start {inst.name}` boots it for the first time again")
