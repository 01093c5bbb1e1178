"""What `create` refuses because `start` could not boot it: checked before anything is created.

Lima's validation (limapy.config.validate) says whether a lima.yaml is well-formed; this says whether this
limapy, on this host, can boot it: names and paths that the seed, ssh and QEMU must carry, the host's CPUs and
memory, features limapy does not have yet, disks that must already exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from limapy.errors import LimapyError, shown
from limapy.units import format_size, parse_size

#: Guest user names a Linux guest's tools accept (useradd's default rule, as cloud-init passes it on).
LINUX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: QEMU's limits for the machine types limapy uses (q35: max_cpus 288; virt with GICv3: 512).
MAX_CPUS = {"x86_64": 288, "aarch64": 512}
MIN_MEMORY = 64 << 20
MIN_DISK = 1 << 20
#: Provision modes the first-boot media carry; Lima's `yq` and `ansible` are not implemented by limapy.
LINUX_MODES = ("system", "user", "boot", "data", "dependency")

Say = Callable[[str], None]


def check(cfg: dict[str, Any], *, instance_dir: Path, host: Any, say: Say) -> None:
    """Raise LimapyError (one line, a hint) for the first thing `start` would refuse; warn about the rest."""
    windows = cfg.get("os") == "Windows"
    _user(cfg, windows)
    _sizes(cfg, host, say)
    _provision(cfg, windows)
    _paths(instance_dir)
    _disks(cfg)
    from limapy.qemu import cmdline

    cmdline.display_arg(cfg)
    cmdline.static_forwards(cfg)


def _user(cfg: dict[str, Any], windows: bool) -> None:
    user = cfg.get("user") or {}
    name, home, shell = (str(user.get(k) or "") for k in ("name", "home", "shell"))
    for key, value in (("name", name), ("home", home), ("shell", shell)):
        if not value.isprintable():
            raise LimapyError(f"field `user.{key}` {shown(value)!r} holds a control character (a newline?)")
    if windows:
        from limapy.cidata.windows import check_user_name

        check_user_name(name)
        return
    if name == "root" or int(user.get("uid") or 0) == 0:
        raise LimapyError(
            "the guest user must not be root (user.name root, or user.uid 0)",
            hint="root logs in with `limapy shell` through sudo; set user.name to another name",
        )
    if not LINUX_USER.fullmatch(name):
        raise LimapyError(
            f"field `user.name` {name!r} is not a Linux user name",
            hint="lowercase letters, digits, `_` and `-`, starting with a letter or `_`, at most 32",
        )
    if not home.startswith("/") or not shell.startswith("/"):
        raise LimapyError("fields `user.home` and `user.shell` must be absolute paths in the guest")


def _sizes(cfg: dict[str, Any], host: Any, say: Say) -> None:
    arch = str(cfg.get("arch"))
    cpus = int(cfg.get("cpus") or 0)
    limit = MAX_CPUS.get(arch, 255)
    if cpus > limit:
        raise LimapyError(
            f"field `cpus` is {cpus}: QEMU's {arch} machine takes at most {limit} (this host has {host.cpus})"
        )
    if cpus > host.cpus:
        say(f"warning: cpus {cpus} is more than this host's {host.cpus} CPUs; the guest will be slower, not faster")
    memory = parse_size(cfg.get("memory") or 0)
    if memory < MIN_MEMORY:
        raise LimapyError(f"field `memory` is {format_size(memory)}: a guest needs at least {format_size(MIN_MEMORY)}")
    if memory > host.memory:
        raise LimapyError(
            f"field `memory` is {format_size(memory)}, more than this host's {format_size(host.memory)}",
            hint=f"set `memory` (or --memory) to at most {format_size(host.memory // 2)} or so",
        )
    disk = parse_size(cfg.get("disk") or 0)
    if disk < MIN_DISK:
        raise LimapyError(f"field `disk` is {format_size(disk)}: it must be more than that (e.g. 100GiB)")


def _provision(cfg: dict[str, Any], windows: bool) -> None:
    if windows:
        return  # validation already limits Windows to system, user, dependency, data
    for i, p in enumerate(cfg.get("provision") or []):
        mode = (p or {}).get("mode") if isinstance(p, dict) else None
        if mode not in LINUX_MODES:
            raise LimapyError(
                f"provision[{i}]: mode `{mode}` is not supported by limapy yet",
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


def _disks(cfg: dict[str, Any]) -> None:
    from limapy import disk

    for d in cfg.get("additionalDisks") or []:
        name = str(d.get("name") if isinstance(d, dict) else d)
        path = disk.additional_disk_dir(name) / disk.DATADISK
        if not path.is_file():
            raise LimapyError(
                f"additional disk `{name}` does not exist ({path})",
                hint=f"create it first: qemu-img create -f qcow2 {path} 10G (limapy has no `disk` command yet)",
            )
