"""`limapy snapshot create|apply|delete|list NAME --tag T` (Lima's aliases save, load, del, ls)."""

from __future__ import annotations

import typer

from limapy.cli._util import instance_arg, say


def _app() -> typer.Typer:
    snap = typer.Typer(help="Snapshots of an instance (its disk when stopped, the whole machine when running).",
                       no_args_is_help=True)  # fmt: skip

    def _action(action: str, verb: str, aliases: tuple[str, ...]) -> None:
        def command(
            name: str = instance_arg(),
            tag: str = typer.Option(..., "--tag", help="The snapshot's name."),
        ) -> None:
            from limapy.instance import store
            from limapy.ops.snapshot import run

            inst = store.resolve(name)
            run(inst, action, tag)
            say(f"{verb} snapshot `{tag}` of `{inst.name}`")

        command.__doc__ = f"{action.capitalize()} a snapshot."
        snap.command(action)(command)
        for alias in aliases:
            snap.command(alias, hidden=True)(command)

    _action("create", "created", ("save",))
    _action("apply", "applied", ("load",))
    _action("delete", "deleted", ("del",))

    @snap.command("list")
    @snap.command("ls", hidden=True)
    def list_(
        name: str = instance_arg(),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Tags only."),
    ) -> None:
        """List the snapshots of an instance."""
        import sys

        from limapy.instance import store
        from limapy.ops.snapshot import snapshots, table

        items = snapshots(store.resolve(name))
        if quiet:
            sys.stdout.write("".join(s.tag + "\n" for s in items))
        elif items:
            sys.stdout.write(table(items))

    return snap


def register(app: typer.Typer) -> None:
    app.add_typer(_app(), name="snapshot")
