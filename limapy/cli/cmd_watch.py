"""`limapy watch [NAME...] [--json] [--history] [--verbose]` (Lima 2.1's `limactl watch`)."""

from __future__ import annotations

import typer

from limapy.cli._util import instance_names_arg


def register(app: typer.Typer) -> None:
    @app.command("watch")
    def watch(
        names: list[str] = instance_names_arg("Instances to watch (default: all, and new ones)", default=None),
        as_json: bool = typer.Option(False, "--json", help="Output events as newline-delimited JSON."),
        history: bool = typer.Option(False, "--history", help="Include the events from before watch started."),
        verbose: bool = typer.Option(False, "--verbose", help="Also show the host agents' logs (on stderr)."),
    ) -> int:
        """Watch the instances' events (start, ready, forwards, stop) until interrupted."""
        from limapy.cli import Interrupted
        from limapy.ops.watch import watch as do_watch

        try:
            return do_watch(names or [], as_json=as_json, history=history, verbose=verbose)
        except (KeyboardInterrupt, Interrupted):
            return 0  # Ctrl-C is how a watch ends (Lima's too)
