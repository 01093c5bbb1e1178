"""`limapy create [--name N] [Lima's create flags: --cpus --memory --disk --set --param --mount ...] TEMPLATE`."""

from __future__ import annotations

import typer

from limapy.cli._editflags import with_edit_flags
from limapy.cli._util import instances_for, say, values_of
from limapy.expr.editflags import EditFlags


def register(app: typer.Typer) -> None:
    @app.command("create")
    @with_edit_flags
    def create(
        template: str | None = typer.Argument(
            None, help="FILE.yaml, template:NAME, https://URL, or - (stdin, needs --name); default: template:default",
            autocompletion=instances_for("create")
        ),
        name: str | None = typer.Option(None, "--name", help="Instance name (default: from the template)."),
        allow_local_files: bool = typer.Option(
            False, "--allow-local-files", help="Let a network template use host files and local addresses."
        ),
        list_templates: bool = typer.Option(False, "--list-templates", help="List the template:NAMEs and exit."),
        driver: str | None = typer.Option(
            None, "--driver", help="Engine: qemu (default) or libvirt (default from $LIMAPY_DRIVER).",
            autocompletion=values_of("--driver")),
        connect: str | None = typer.Option(
            None, "--connect", help="libvirt URI (default $LIBVIRT_DEFAULT_URI), e.g. qemu+ssh://root@host/system."),
        *,
        flags: EditFlags,
    ) -> None:
        """Create an instance from a template (downloads the image, builds its disk)."""
        if list_templates:
            from limapy.config.templates import list_templates as names

            print("\n".join(t.name for t in names()))
            return
        from limapy.expr.editflags import to_edits
        from limapy.ops.create import create as do_create

        inst = do_create(template or "template:default", name=name, sets=to_edits(flags), say=say,
                         allow_local=allow_local_files, driver_name=driver, connect=connect)  # fmt: skip
        say(f"created `{inst.name}` in {inst.dir}")
        say(f"Run `limapy start {inst.name}` to start the instance.")
