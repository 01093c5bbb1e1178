"""`limapy clone [--full] [--start] SRC DST` and `limapy rename [--start] OLD NEW`."""

from __future__ import annotations

import typer

from limapy.cli._util import instance_arg, say


def _start(name: str) -> None:
    from limapy.cli.cmd_start import Display
    from limapy.instance import store
    from limapy.ops.start import start_instance

    display = Display()
    try:
        start_instance(store.resolve(name, exact=True), timeout=None, show=display.show)
    finally:
        display.close()
    say(f"READY. Run `limapy shell {name}` to open a shell.")


def register(app: typer.Typer) -> None:
    @app.command("clone")
    def clone(
        src: str = instance_arg("The stopped or suspended instance to clone"),
        dst: str = typer.Argument(..., help="The new instance's name"),
        full: bool = typer.Option(False, "--full", help="A self-contained disk copy (no shared base image)."),
        start: bool = typer.Option(False, "--start", help="Start the clone."),
        generalize: bool = typer.Option(
            False, "--generalize",
            help="Windows: sysprep /generalize /oobe at the clone's first boot (a new machine SID, for Active "
            "Directory or WSUS); without it a Windows clone gets its own computer name, passwords and SSH host keys.",
        ),
    ) -> None:
        """Clone a stopped instance (new MAC, hostname, SSH port, instance-id; disk as a qcow2 overlay copy), or a
        suspended one: the clone is suspended too, shares its disk read-only and resumes in seconds with its own
        hostname, machine-id and SSH host keys."""
        from limapy.instance import store
        from limapy.ops.clone import clone as do_clone

        inst = do_clone(store.resolve(src), dst, full=full, generalize=generalize, say=say)
        say(f"cloned `{src}` to `{inst.name}`")
        if start:
            _start(inst.name)

    @app.command("rename")
    def rename(
        old: str = instance_arg("The stopped instance to rename"),
        new: str = typer.Argument(..., help="Its new name"),
        start: bool = typer.Option(False, "--start", help="Start it after renaming."),
    ) -> None:
        """Rename a stopped instance."""
        from limapy.instance import store
        from limapy.ops.clone import rename as do_rename

        inst = do_rename(store.resolve(old, exact=True), new)
        say(f"renamed `{old}` to `{inst.name}`")
        if start:
            _start(inst.name)
