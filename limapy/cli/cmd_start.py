"""`limapy start [NAME|TEMPLATE] [--name N] [--timeout D] [--dry-run]`."""

from __future__ import annotations

import sys

import typer

from limapy.cli._util import say


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1h30m` -> seconds."""
    import re

    from limapy.errors import UsageError

    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise UsageError(f"--timeout {text!r}: use a duration such as 90s, 10m or 1h")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


class Display:
    """Phases on one live line on a TTY (rich), plain lines otherwise."""

    def __init__(self) -> None:
        self.status = None
        if sys.stderr.isatty():
            from rich.console import Console

            self.console = Console(stderr=True)
            self.status = self.console.status("starting")
            self.status.start()

    def show(self, msg: str) -> None:
        if self.status is not None:
            self.status.update(msg)
            self.console.log(msg)
        else:
            say(msg)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


def register(app: typer.Typer) -> None:
    @app.command("start")
    def start(
        target: str = typer.Argument(
            "default", help="An instance name (or unique prefix), or a template to create from [default: default]"
        ),
        name: str | None = typer.Option(None, "--name", help="Name for an instance created from a template."),
        timeout: str | None = typer.Option(
            None, "--timeout", help="Wait at most this long (default 10m; a Windows install 90m, or 6h under TCG)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Prepare everything and print the QEMU command; do not boot."
        ),
        cpus: int | None = typer.Option(None, "--cpus", min=1, help="CPUs (when creating)."),
        memory: float | None = typer.Option(None, "--memory", help="Memory in GiB (when creating)."),
        disk: float | None = typer.Option(None, "--disk", help="Disk in GiB (when creating)."),
        set_: list[str] = typer.Option([], "--set", help="Template edit, as for create (when creating)."),
        allow_local_files: bool = typer.Option(
            False, "--allow-local-files", help="Let a template from the network read files on this host."
        ),
    ) -> None:
        """Start an instance, creating it from a template first when given one."""
        from limapy import store
        from limapy.edits import shortcut_sets
        from limapy.ops import start as ops

        wait = parse_duration(timeout) if timeout else None
        if target == "default" and name is None and "default" not in store.list_instances():
            target, name = "template:default", "default"  # as Lima: `start` alone makes and boots `default`
        if ops.looks_like_template(target):
            from limapy.ops.create import create

            inst = create(
                target, name=name, sets=[*shortcut_sets(cpus, memory, disk), *set_], say=say, for_start=True,
                allow_local=allow_local_files,
            )  # fmt: skip
            say(f"created `{inst.name}`")
        else:
            inst = store.resolve(target)
        if dry_run:
            print(ops.dry_run(inst))
            return
        display = Display()
        try:
            started = ops.start_instance(inst, timeout=wait, show=display.show)
        finally:
            display.close()
        if not started:
            say(f"instance `{inst.name}` is already running")
            return
        say(f"READY. Run `limapy shell {inst.name}` to open a shell.")
