"""What `create` refuses because `start` could not boot it on this host: checked before anything is created.

Lima's validation (limapy.config.validate) says whether a lima.yaml is well-formed, and limapy's own rules
beside it (limapy.config.validate_instance) what no host could boot: a root or unprintable guest user, too
little memory or disk, more CPUs than QEMU's machine takes, provision modes limapy does not have. Both run on
`validate` too. What is left here depends on this host: its memory, the disks in the store, the instance
directory's path. What only one engine refuses (swtpm missing, a display QEMU would serve beyond 127.0.0.1)
is that driver's `check`.

An error about a field is prefixed with where the field was set (`FILE:LINE:COL`, or the flag: `--memory 64`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.base.units import format_size
from limapy.config.hostinfo import HostInfo
from limapy.config.model import Spec

Say = Callable[[str], None]
#: Where a field was set, for a message: `t.yaml:3:1`, `--memory 64`, `--set '.cpus = 2'`.
Where = Callable[[tuple[str | int, ...]], str]


def _nowhere(path: tuple[str | int, ...]) -> str:
    return ""


def check(spec: Spec, *, instance_dir: Path, host: HostInfo, say: Say, where: Where = _nowhere) -> None:
    """Raise LimapyError (one line, a hint) for the first thing `start` would refuse; warn about the rest."""

    def at(*path: str | int) -> str:
        w = where(path)
        return f"{w}: " if w else ""

    _sizes(spec, host, say, at)
    _paths(instance_dir)
    _disks(spec, at)
    _forwards(spec, instance_dir, at)


def _sizes(spec: Spec, host: HostInfo, say: Say, at: Callable[..., str]) -> None:
    cpus = spec.cpus
    if cpus > host.cpus:
        say(f"warning: cpus {cpus} is more than this host's {host.cpus} CPUs; the guest will be slower, not faster")
    memory = spec.memory
    if memory > host.memory:
        raise LimapyError(
            f"{at('memory')}field `memory` is {format_size(memory)}, more than this host's {format_size(host.memory)}",
            hint=f"set `memory` (or --memory) to at most {format_size(host.memory // 2)} or so",
        )


def _paths(instance_dir: Path) -> None:
    text = str(instance_dir)
    if '"' in text or not text.isprintable():
        from limapy.base import dirs

        raise LimapyError(
            f"the instance directory {text!r} holds a `\"` or a control character, which ssh's config cannot carry",
            hint=f"set ${dirs.ENV_HOME} to a plainer path",
        )


def _disks(spec: Spec, at: Callable[..., str]) -> None:
    from limapy.instance import disk

    for i, d in enumerate(spec.additional_disks):
        if not disk.checked_disk_path(d.name).is_file():
            err = disk.missing_additional_disk(d.name)
            raise type(err)(at("additionalDisks", i) + err.message, hint=err.hint)


def _forwards(spec: Spec, instance_dir: Path, at: Callable[..., str]) -> None:
    """Every forward's host end on 127.0.0.1, every host socket inside the instance directory."""
    import os

    for i, rule in enumerate(spec.port_forwards):
        if rule.ignore:
            continue
        if not rule.host_socket and rule.host_ip not in ("127.0.0.1", "localhost"):
            raise LimapyError(
                f"{at('portForwards', i, 'hostIP')}portForwards[{i}].hostIP is {rule.host_ip}: "
                "limapy forwards to 127.0.0.1 only",
                hint="remove hostIP (its default is 127.0.0.1); reach the port from elsewhere with an SSH tunnel",
            )
        if rule.host_socket:
            from limapy.instance import store

            where = f"{at('portForwards', i, 'hostSocket')}portForwards[{i}].hostSocket {rule.host_socket}"
            sock = os.path.normpath(rule.host_socket)
            if ".." in Path(rule.host_socket).parts or not sock.startswith(str(instance_dir) + os.sep):
                raise LimapyError(f"{where} is outside the instance directory",
                                  hint="give a relative name: it then lives in <instance>/sock/")  # fmt: skip
            top = Path(sock).relative_to(instance_dir).parts[0]
            if top in store.own_names(instance_dir):
                raise LimapyError(f"{where} is `{top}`, a file limapy keeps in the instance directory",
                                  hint="give a relative name: it then lives in <instance>/sock/")  # fmt: skip
