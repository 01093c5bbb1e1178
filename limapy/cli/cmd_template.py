"""`limapy template copy|validate|yq|url` (alias `tmpl`)."""

from __future__ import annotations

import sys

import typer


def _app() -> typer.Typer:
    tmpl = typer.Typer(help="Templates as files: copy, validate, yq, url.", no_args_is_help=True)

    @tmpl.command("copy")
    def copy(
        template: str = typer.Argument(..., help="FILE.yaml, template:NAME or URL"),
        dest: str = typer.Argument("-", help="A file or directory; - for stdout"),
        embed: bool = typer.Option(False, "--embed", help="Embed `base:` and `file:` references."),
        embed_all: bool = typer.Option(False, "--embed-all", help="The same as --embed in limapy."),
        fill: bool = typer.Option(False, "--fill", help="Fill in every default (as `validate --fill`)."),
        verbatim: bool = typer.Option(False, "--verbatim", help="The bytes as they are (the default)."),
    ) -> None:
        """Copy a template (verbatim, embedded, or filled)."""
        from limapy.base.errors import UsageError
        from limapy.ops.template import copy as do_copy

        modes = [m for m, on in (("embed", embed or embed_all), ("fill", fill), ("verbatim", verbatim)) if on]
        if len(modes) > 1:
            raise UsageError("--embed, --fill and --verbatim exclude each other")
        data = do_copy(template, dest, modes[0] if modes else "verbatim")
        if data is not None:
            sys.stdout.write(data.decode())  # templates are UTF-8 (the reader refuses anything else)

    @tmpl.command("validate")
    def validate(
        files: list[str] = typer.Argument(..., help="Templates to check"),
        fill: bool = typer.Option(False, "--fill", help="Print each filled template (documents split by ---)."),
    ) -> int:
        """Validate templates (the same as `limapy validate`)."""
        from limapy.ops.validate import validate_files

        return validate_files(files, fill=fill)

    @tmpl.command("yq")
    def yq(
        template: str = typer.Argument(..., help="FILE.yaml, template:NAME or URL"),
        expr: str = typer.Argument(..., help="A path (.images[0].location) or an edit (.cpus = 2)"),
    ) -> None:
        """Print a field of a template, or the template after an edit."""
        from limapy.ops.template import yq as do_yq

        sys.stdout.write(do_yq(template, expr))

    @tmpl.command("url")
    def url(locator: str = typer.Argument(..., help="template:NAME, scheme:..., a path or URL")) -> None:
        """Print the URL a template locator stands for."""
        from limapy.ops.template import url as do_url

        print(do_url(locator))

    return tmpl


def register(app: typer.Typer) -> None:
    tmpl = _app()
    app.add_typer(tmpl, name="template")
    app.add_typer(tmpl, name="tmpl", hidden=True)
