"""`limapy create [--name N] [--cpus --memory --disk] [--set EXPR] TEMPLATE`."""

from __future__ import annotations

import typer

from limapy.cli._util import say


def register(app: typer.Typer) -> None:
    @app.command("create")
    def create(
        template: str | None = typer.Argument(None, help="FILE.yaml, template:NAME, https://URL, or - (stdin)"),
        name: str | None = typer.Option(None, "--name", help="Instance name (default: from the template)."),
        cpus: int | None = typer.Option(None, "--cpus", min=1, help="Number of CPUs."),
        memory: float | None = typer.Option(None, "--memory", help="Memory in GiB."),
        disk: float | None = typer.Option(None, "--disk", help="Disk size in GiB."),
        set_: list[str] = typer.Option([], "--set", help="Edit the template: `.a.b = VALUE`, `del(.x)` (repeatable)."),
        allow_local_files: bool = typer.Option(
            False, "--allow-local-files", help="Let a template from the network read files on this host."
        ),
        list_templates: bool = typer.Option(False, "--list-templates", help="List the template:NAMEs and exit."),
    ) -> None:
        """Create an instance from a template (downloads the image, builds its disk)."""
        if list_templates:
            from limapy.config.templates import list_templates as names

            print("\n".join(t.name for t in names()))
            return
        if template is None:
            from limapy.errors import UsageError

            raise UsageError("create needs a template (FILE.yaml, template:NAME, URL or -)",
                             hint="`limapy create --list-templates` lists the template:NAMEs")  # fmt: skip
        from limapy.edits import shortcut_sets
        from limapy.ops.create import create as do_create

        inst = do_create(
            template, name=name, sets=[*shortcut_sets(cpus, memory, disk), *set_], say=say,
            allow_local=allow_local_files,
        )  # fmt: skip
        say(f"created `{inst.name}` in {inst.dir}")
        say(f"Run `limapy start {inst.name}` to start the instance.")
