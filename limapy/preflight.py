"""What `create` refuses because `start` could not boot it: checked before anything is created.

Lima's validation (limapy.config.validate) says whether a lima.yaml is well-formed; this says whether this
limapy, on this host, can boot it: names and paths that the seed, ssh and QEMU must carry, the host's CPUs and
memory, features limapy does not have yet, disks that must already exist. What only one engine refuses (swtpm
missing, a display QEMU would serve beyond 127.0.0.1) is that driver's `check`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from limapy.config.hostinfo import HostInfo
from limapy.config.model import Spec
from limapy.errors import LimapyError, shown
from limapy.units import format_size

#: Guest user names a Linux guest's tools accept (useradd's default rule, as cloud-init passes it on).
LINUX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: QEMU's limits for the machine types limapy uses (q35: max_cpus 288; virt with GICv3: 512).
MAX_CPUS = {"x86_64": 288, "aarch64": 512}
MIN_MEMORY = 64 << 20
MIN_DISK = 1 << 20
#: Provision modes the first-boot media carry; Lima's `yq` and `ansible` are not implemented by limapy.
LINUX_MODES = ("system", "user", "boot", "data", "dependency")

Say = Callable[[str], None]


def check(spec: Spec, *, instance_dir: Path, host: HostInfo, say: Say) -> None:
    """Raise LimapyError (one line, a hint) for the first thing `start` would refuse; warn about the rest."""
    _user(spec)
    _sizes(spec, host, say)
    _provision(spec)
    _paths(instance_dir)
    _disks(spec)
    _forwards(spec, instance_dir)


def _user(spec: Spec) -> None:
    user = spec.user
    for key, value in (("name", user.name), ("home", user.home), ("shell", user.shell)):
        if not value.isprintable():
            raise LimapyError(f"field `user.{key}` {shown(value)!r} holds a control character (a newline?)")
    if spec.is_windows:
        from limapy.cidata.windows import check_user_name

        check_user_name(user.name)
        return
    if user.name == "root" or user.uid == 0:
        raise LimapyError(
            "the guest user must not be root (user.name root, or user.uid 0)",
            hint="root logs in with `limapy shell` through sudo; set user.name to another name",
        )
    if not LINUX_USER.fullmatch(user.name):
        raise LimapyError(
            f"field `user.name` {user.name!r} is not a Linux user name",
            hint="lowercase letters, digits, `_` and `-`, starting with a letter or `_`, at most 32",
        )
    if not user.home.startswith("/") or not user.shell.startswith("/"):
        raise LimapyError("fields `user.home` and `user.shell` must be absolute paths in the guest")


def _sizes(spec: Spec, host: HostInfo, say: Say) -> None:
    arch, cpus = spec.arch, spec.cpus
    limit = MAX_CPUS.get(arch, 255)
    if cpus > limit:
        raise LimapyError(
            f"field `cpus` is {cpus}: QEMU's {arch} machine takes at most {limit} (this host has {host.cpus})"
        )
    if cpus > host.cpus:
        say(f"warning: cpus {cpus} is more than this host's {host.cpus} CPUs; the guest will be slower, not faster")
    memory = spec.memory
    if memory < MIN_MEMORY:
        raise LimapyError(f"field `memory` is {format_size(memory)}: a guest needs at least {format_size(MIN_MEMORY)}")
    if memory > host.memory:
        raise LimapyError(
            f"field `memory` is {format_size(memory)}, more than this host's {format_size(host.memory)}",
            hint=f"set `memory` (or --memory) to at most {format_size(host.memory // 2)} or so",
        )
    if spec.disk < MIN_DISK:
        raise LimapyError(f"field `disk` is {format_size(spec.disk)}: it must be more than that (e.g. 100GiB)")


def _provision(spec: Spec) -> None:
    if spec.is_windows:
        return  # validation already limits Windows to system, user, dependency, data
    for p in spec.provision:
        if p.mode not in LINUX_MODES:
            raise LimapyError(
                f"provision[{p.index}]: mode `{p.mode}` is not supported by limapy yet",
                hint=f"use one of {', '.join(LINUX_MODES)} (a `yq` edit can be a `system` script)",
            )


def _paths(instance_dir: Path) -> None:
    text = str(instance_dir)
    if '"' in text or not text.isprintable():
        from limapy import dirs

        raise LimapyError(
            f"the instance directory {text!r} holds a `\"` or a control character, which ssh's config cannot carry",
            hint=f"set ${dirs.ENV_HOME} to a plainer path",
        )


def _disks(spec: Spec) -> None:
    from limapy import disk

    for d in spec.additional_disks:
        if not disk.additional_disk_path(d.name).is_file():
            raise disk.missing_additional_disk(d.name)


def _forwards(spec: Spec, instance_dir: Path) -> None:
    """Every forward's host end on 127.0.0.1, every host socket inside the instance directory."""
    import os

    for i, rule in enumerate(spec.port_forwards):
        if rule.ignore:
            continue
        if not rule.host_socket and rule.host_ip not in ("127.0.0.1", "localhost"):
            raise LimapyError(
                f"portForwards[{i}].hostIP is {rule.host_ip}: limapy forwards to 127.0.0.1 only",
                hint="remove hostIP (its default is 127.0.0.1); reach the port from elsewhere with an SSH tunnel",
            )
        if rule.host_socket:
            sock = os.path.normpath(rule.host_socket)
            if not sock.startswith(str(instance_dir) + os.sep):
                raise LimapyError(
                    f"portForwards[{i}].hostSocket {rule.host_socket} is outside the instance directory",
                    hint="give a relative name: it then lives in <instance>/sock/",
                )
