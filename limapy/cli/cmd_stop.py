"""`limapy stop [-f] [NAME...]` (default: the instance `default`, as limactl)."""

from __future__ import annotations

import typer

from limapy.cli._util import doc, instances_for


def register(app: typer.Typer) -> None:
    @app.command("stop", **doc(
        "Stop instances gracefully (ACPI power-down), or at once with -f.",
        "Without a name, the instance `default`. An instance that is not running is an error (exit 1), as in "
        "limactl; `-f` cleans up after a crashed one whatever its state.",
        examples=["limapy stop", "limapy stop web db", "limapy stop -f web"],
    ))  # fmt: skip
    def stop(
        names: list[str] = typer.Argument(
            None, help="Instances (names or unique prefixes; default: `default`)", autocompletion=instances_for("stop")
        ),
        force: bool = typer.Option(
            False, "-f", "--force", help="Stop QEMU and the host agent at once (no guest shutdown)."
        ),
    ) -> None:
        from limapy import driver
        from limapy.base.errors import LimapyError
        from limapy.cli.cmd_start import Display
        from limapy.instance import store
        from limapy.ops.stop import not_running
        from limapy.ops.stop import stop as do_stop

        failed: list[LimapyError] = []
        for n in names or ["default"]:
            display = Display()
            try:
                inst = store.resolve(n)
                if do_stop(inst, force=force, say=display.show, status=display.live.status):
                    display.show(f"stopped `{inst.name}`")
                elif not force:
                    raise not_running(inst, driver.status(inst))
                else:
                    display.show(f"`{inst.name}` was not running; nothing of it is left running now")
            except LimapyError as e:
                if len(names or ()) <= 1:
                    raise
                failed.append(e)  # the others are still stopped, as limactl does
            finally:
                display.close()
        if failed:
            from limapy.cli import report

            for err in failed[:-1]:
                report(err)
            raise failed[-1]
