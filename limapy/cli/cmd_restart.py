"""`limapy restart [-f] [NAME]`."""

from __future__ import annotations

import typer

from limapy.cli._util import instance_arg, say


def register(app: typer.Typer) -> None:
    @app.command("restart")
    def restart(
        name: str = instance_arg(default="default"),
        force: bool = typer.Option(False, "-f", "--force", help="Stop at once (no guest shutdown), then start."),
        timeout: str | None = typer.Option(None, "--timeout", help="Wait at most this long for the start."),
    ) -> None:
        """Restart an instance (stop, then start; a stopped one is started)."""
        from limapy.base.units import parse_duration
        from limapy.cli.cmd_start import Display
        from limapy.instance import store
        from limapy.ops.restart import restart as do_restart

        inst = store.resolve(name)
        display = Display()
        try:
            do_restart(inst, force=force, timeout=parse_duration(timeout) if timeout else None, show=display.show)
        finally:
            display.close()
        say(f"READY. Run `limapy shell {inst.name}` to open a shell.")
