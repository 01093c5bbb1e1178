"""`limapy windows answer-iso --arch amd64|arm64 -o FILE [...]`: Windows tools that need no instance."""

from __future__ import annotations

from pathlib import Path

import typer

from limapy.cli._util import doc


def _app() -> typer.Typer:
    win = typer.Typer(help="Windows tools that need no instance (the answer ISO on its own).", no_args_is_help=True)

    @win.command("answer-iso", **doc(
        "Build the Windows answer ISO (label `autounattend`) on its own, to install Windows with plain QEMU.",
        "The random password of the guest user is written next to the ISO (FILE.password, 0600), never printed. "
        "Without --ssh-key, limapy's key and ~/.ssh/id_*.pub are installed; without any, a key pair is made "
        "next to the ISO (FILE.key). arm64 needs --virtio-win (NetKVM goes onto the answer ISO). docs/windows.md "
        "shows the QEMU commands that boot it, for both arches.",
        examples=["limapy windows answer-iso --arch amd64 -o answer.iso --ssh-key ~/.ssh/id_ed25519.pub",
                  "limapy windows answer-iso --arch arm64 -o answer-arm64.iso --virtio-win virtio-win.iso "
                  "--config lima.yaml"],
    ))  # fmt: skip
    def answer_iso(
        arch: str = typer.Option(..., "--arch", help="amd64 or arm64.", autocompletion=lambda: ["amd64", "arm64"]),
        output: Path = typer.Option(..., "-o", "--output", help="The ISO to write."),
        config: Path | None = typer.Option(None, "--config", help="lima.yaml to take user, tpm, provision from."),
        ssh_key: list[Path] = typer.Option([], "--ssh-key", help="A public key file to install (repeatable)."),
        server: bool = typer.Option(False, "--server", help="Windows Server media (2k25 drivers)."),
        image_index: int | None = typer.Option(None, "--image-index", help="The install.wim image to install."),
        image_name: str | None = typer.Option(None, "--image-name", help="The edition, by name."),
        virtio_win: Path | None = typer.Option(
            None, "--virtio-win", help="A virtio-win ISO to copy NetKVM from onto the answer ISO (needed on arm64)."
        ),
        virtio_disk: bool = typer.Option(False, "--virtio-disk", help="x86_64: the disk is virtio-blk (viostor too)."),
        language: str = typer.Option("en-US", "--language", help="The install ISO's language, e.g. de-DE."),
        locale: str | None = typer.Option(None, "--locale", help="Another format and keyboard, e.g. de-CH."),
        product_key: str | None = typer.Option(
            None, "--product-key", help="For Server media that is not an evaluation (kept out of all output)."
        ),
        openssh_msi: Path | None = typer.Option(None, "--openssh-msi", help="A Win32-OpenSSH MSI to carry."),
        openssh_msi_sha256: str | None = typer.Option(None, "--openssh-msi-sha256", help="Its expected sha256."),
    ) -> None:
        from limapy.ops.answer_iso import answer_iso as build

        build(output, arch=arch, config=config, ssh_key=ssh_key, server=server, image_index=image_index,
              image_name=image_name, virtio_win=virtio_win, virtio_disk=virtio_disk, language=language,
              locale=locale, product_key=product_key, openssh_msi=openssh_msi,
              openssh_msi_sha256=openssh_msi_sha256)  # fmt: skip

    return win


def register(app: typer.Typer) -> None:
    app.add_typer(_app(), name="windows")
