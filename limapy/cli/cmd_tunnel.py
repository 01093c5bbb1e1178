"""`limapy tunnel [--type socks] [--socks-port P] NAME`."""

from __future__ import annotations

import typer

from limapy.cli._util import instance_arg, say, values_of


def register(app: typer.Typer) -> None:
    @app.command("tunnel")
    def tunnel(
        name: str = instance_arg(),
        kind: str = typer.Option(
            "socks", "--type", help="Tunnel type (only socks).", autocompletion=values_of("--type")
        ),
        socks_port: int = typer.Option(0, "--socks-port", help="SOCKS port on 127.0.0.1 (0: pick a free one)."),
    ) -> None:
        """A SOCKS proxy on 127.0.0.1 through the instance (ssh -D), until Ctrl-C."""
        from limapy.instance import store
        from limapy.ops.tunnel import tunnel as do_tunnel

        do_tunnel(store.resolve(name), kind=kind, socks_port=socks_port, say=say)
