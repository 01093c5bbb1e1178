"""`limapy doctor [TEMPLATE|INSTANCE] [--arch A] [--windows] [--driver D] [--mount-type T]`."""

from __future__ import annotations

import typer

from limapy.cli._util import doc, instances_for, values_of


def _arches(incomplete: str) -> list[str]:
    return [a for a in ("x86_64", "aarch64", "all") if a.startswith(incomplete)]


def register(app: typer.Typer) -> None:
    @app.command("doctor", **doc(
        "Check the host tools limapy needs (QEMU, firmware, qemu-img, OpenSSH, ...) and say how to install them.",
        "With a template or an instance, what it needs; otherwise Linux guests of this host's arch (--arch, "
        "--windows, --driver, --mount-type ask for more). Exit 1 when something needed is missing. `create` and "
        "`start` make the same checks before they download anything.",
        examples=["limapy doctor", "limapy doctor --arch all --windows", "limapy doctor template:windows",
                  "limapy doctor --driver libvirt"],
    ))  # fmt: skip
    def doctor(
        target: str | None = typer.Argument(
            None, help="A template (template:NAME, FILE.yaml, URL) or an instance",
            autocompletion=instances_for("doctor"),
        ),
        arch: list[str] = typer.Option(
            [], "--arch", help="Guest arch to check for: x86_64, aarch64 or all (repeatable).", autocompletion=_arches
        ),
        windows: bool = typer.Option(False, "--windows", help="Windows guests too (swtpm, FreeRDP)."),
        driver: str | None = typer.Option(
            None, "--driver", help="qemu (default) or libvirt ($LIMAPY_DRIVER).", autocompletion=values_of("--driver")
        ),
        connect: str | None = typer.Option(None, "--connect", help="libvirt URI (a remote host needs no QEMU here)."),
        mount_type: str | None = typer.Option(
            None, "--mount-type", help="reverse-sshfs, 9p, virtiofs or smb.", autocompletion=values_of("--mount-type")
        ),
    ) -> int:
        from limapy.ops import doctor as ops

        for a in arch:
            if a not in ("x86_64", "aarch64", "all"):
                from limapy.base.errors import UsageError

                raise UsageError(f"--arch {a!r}: use x86_64, aarch64 or all")
        req = ops.request_for(target, arches=arch, windows=windows, mount_type=mount_type, driver_name=driver,
                              connect=connect)  # fmt: skip
        return ops.report(req, print)
