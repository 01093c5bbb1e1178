"""`limapy disk create|list|delete|resize|import|unlock` for additionalDisks (in `$LIMAPY_HOME/_disks`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from limapy.cli._util import say


def _size(text: str) -> int:
    from limapy.base.errors import UsageError
    from limapy.base.units import parse_size

    try:
        return int(parse_size(text))
    except (ValueError, TypeError):
        raise UsageError(f"--size {text!r}: not a size such as 10GiB") from None


def _app() -> typer.Typer:
    app = typer.Typer(help="Shared disks for `additionalDisks` (one running instance at a time).",
                      no_args_is_help=True)  # fmt: skip

    @app.command("create")
    def create(
        name: str = typer.Argument(..., help="Disk name"),
        size: str = typer.Option(..., "--size", help="Size, e.g. 10GiB"),
        fmt: str = typer.Option("qcow2", "--format", help="qcow2 or raw"),
    ) -> None:
        """Create a disk."""
        from limapy.ops.disks import create as do_create

        path = do_create(name, _size(size), fmt)
        say(f"created disk `{name}` ({path})")

    @app.command("list")
    @app.command("ls", hidden=True)
    def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object per line.")) -> None:
        """List disks and the running instance holding each."""
        from limapy.ops.disks import list_disks

        sys.stdout.write(list_disks(as_json=as_json))

    @app.command("delete")
    @app.command("rm", hidden=True)
    def delete(
        names: list[str] = typer.Argument(..., help="Disk names"),
        force: bool = typer.Option(False, "-f", "--force", help="Also a disk a stopped instance names."),
    ) -> None:
        """Delete disks (never one a running instance holds)."""
        from limapy.ops.disks import delete as do_delete

        for n in names:
            do_delete(n, force=force)
            say(f"deleted disk `{n}`")

    @app.command("unlock")
    def unlock(names: list[str] = typer.Argument(..., help="Disk names")) -> None:
        """Remove a disk's `in_use_by` mark (never while that instance runs)."""
        from limapy.ops.disks import unlock as do_unlock

        for n in names:
            say(f"unlocked disk `{n}`" if do_unlock(n) else f"disk `{n}` is not locked")

    @app.command("resize")
    def resize(
        name: str = typer.Argument(..., help="Disk name"),
        size: str = typer.Option(..., "--size", help="New size, e.g. 20GiB (only growing)"),
    ) -> None:
        """Grow a disk."""
        from limapy.ops.disks import resize as do_resize

        say(f"resized disk `{name}`" if do_resize(name, _size(size)) else f"disk `{name}` has that size already")

    @app.command("import")
    def import_(
        name: str = typer.Argument(..., help="Disk name"),
        source: Path = typer.Argument(..., help="A qcow2 or raw image to copy in"),
    ) -> None:
        """Import an image file as a disk (a copy, in its own format)."""
        from limapy.ops.disks import import_disk

        say(f"imported {source} as disk `{name}` ({import_disk(name, source)})")

    return app


def register(app: typer.Typer) -> None:
    app.add_typer(_app(), name="disk")
