"""Lima's create/start/edit shortcut flags, declared once: `@with_edit_flags` adds them to a typer command,
which then receives one `flags: EditFlags` argument (limapy.expr.editflags turns it into `--set` edits)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

from limapy.cli._util import values_of
from limapy.expr.editflags import EditFlags

_F = Callable[..., Any]

#: (field, type, typer option) in the order `--help` shows them.
FLAGS: list[tuple[str, Any, Any]] = [
    ("cpus", int | None, typer.Option(None, "--cpus", min=0, help="Number of CPUs.")),
    ("memory", float | None, typer.Option(None, "--memory", help="Memory in GiB.")),
    ("disk", float | None, typer.Option(None, "--disk", help="Disk size in GiB.")),
    ("sets", list[str], typer.Option([], "--set", help="Edit lima.yaml: `.a.b = VALUE`, `del(.x)` (repeatable).")),
    ("params", list[str], typer.Option([], "--param", help="Set a template param: KEY=VALUE (repeatable).")),
    ("mounts", list[str], typer.Option([], "--mount", help="Add a mount: DIR[:w] (repeatable, comma list).")),
    ("mount_only", list[str], typer.Option([], "--mount-only", help="Only these mounts: DIR[:w] (repeatable).")),
    ("mount_none", bool, typer.Option(False, "--mount-none", help="No mounts.")),
    ("mount_type", str | None, typer.Option(None, "--mount-type", help="reverse-sshfs, 9p, virtiofs or smb.",
                                            autocompletion=values_of("--mount-type"))),
    ("mount_writable", bool, typer.Option(False, "--mount-writable", help="Make every mount writable.")),
    ("networks", list[str], typer.Option([], "--network", help="Add a network: lima:NAME or vzNAT (repeatable).")),
    ("port_forwards", list[str], typer.Option(
        [], "--port-forward", help="Forward HOST:GUEST[,static=true] (127.0.0.1; repeatable).")),
    ("ssh_port", int | None, typer.Option(None, "--ssh-port", help="SSH port on 127.0.0.1 (0: pick one).")),
    ("video", bool | None, typer.Option(None, "--video/--no-video", help="A display (video.display).")),
    ("vm_type", str | None, typer.Option(None, "--vm-type", help="vmType (limapy runs qemu).",
                                         autocompletion=values_of("--vm-type"))),
    ("shell", str | None, typer.Option(None, "--shell", help="The guest user's login shell (user.shell).")),
    ("dns", list[str], typer.Option([], "--dns", help="DNS servers IP[,IP] (turns hostResolver off).")),
    ("arch", str | None, typer.Option(None, "--arch", help="Guest architecture (create only).",
                                      autocompletion=values_of("--arch"))),
    ("plain", bool | None, typer.Option(None, "--plain/--no-plain", help="No mounts, forwards (create only).")),
    ("containerd", str | None, typer.Option(
        None, "--containerd", help="user, system, user+system or none (create only; limapy installs none).",
        autocompletion=values_of("--containerd"))),
    ("nested_virt", bool | None, typer.Option(
        None, "--nested-virt/--no-nested-virt",
        help="nestedVirtualization (QEMU: the guest gets the host CPU's extensions when KVM allows nesting).")),
    ("image_variant", str | None, typer.Option(
        None, "--image-variant", help="Keep only the images of this variant, e.g. minimal (create only).")),
    ("arch_variant", str | None, typer.Option(
        None, "--arch-variant", help='Keep only the images of this arch variant, e.g. "v3" (create only).')),
]


def with_edit_flags(func: _F) -> _F:
    """Add the flags to `func`'s signature; call it with `flags=EditFlags(...)` instead of them."""
    sig = inspect.signature(func, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "flags"]
    names = [name for name, _, _ in FLAGS]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=typ)
        for name, typ, opt in FLAGS
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {n: kwargs.pop(n) for n in names if n in kwargs}
        return func(*args, flags=EditFlags(**values), **kwargs)

    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params), *added]
    )
    wrapper.__annotations__ = {
        **{p.name: p.annotation for p in params}, **{n: t for n, t, _ in FLAGS}, "return": sig.return_annotation,
    }  # fmt: skip
    return wrapper
