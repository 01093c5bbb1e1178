"""limapy's rules for what `start` must be able to boot, on a filled config, beside Lima's (validate.py).

Lima refuses some of these only when it renders the seed (cidata's ValidateTemplateArgs: `user.name` root,
`user.uid` 0) or when QEMU fails; limapy refuses them with every other problem, so `validate` says what
`create` would refuse. Nothing here reads the host: what depends on it (memory vs the host's RAM, the disks
in the store, the instance directory's path) is limapy.ops.preflight's, at create.
"""

from __future__ import annotations

import re
from typing import Any

from limapy.base.units import format_size, parse_size
from limapy.config.validate import Problem

#: Guest user names a Linux guest's tools accept (useradd's default rule, as cloud-init passes it on).
LINUX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: QEMU's limits for the machine types limapy uses (q35: max_cpus 288; virt with GICv3: 512).
MAX_CPUS = {"x86_64": 288, "aarch64": 512}
MIN_MEMORY = 64 << 20
MIN_DISK = 1 << 20
#: Windows account names: what `net user` and the unattend file refuse.
WINDOWS_BAD_USER_CHARS = set('"/\\[]:;|=,+*?<>%@')
WINDOWS_RESERVED_USERS = {"administrator", "guest", "defaultaccount", "wdagutilityaccount", "wsiaccount", "none"}
#: Windows' built-in local groups and well-known principals (Microsoft, "Security identifiers": the
#: S-1-5-32-* aliases and the well-known names): an account cannot share a name with one (Setup would fail to
#: create it, or the name would resolve to the group in ACLs and `net user`).
WINDOWS_BUILTIN_GROUPS = {
    "administrators", "users", "guests", "power users", "account operators", "server operators",
    "print operators", "backup operators", "replicator", "remote desktop users", "network configuration operators",
    "performance monitor users", "performance log users", "distributed com users", "iis_iusrs",
    "cryptographic operators", "event log readers", "certificate service dcom access", "rds remote access servers",
    "rds endpoint servers", "rds management servers", "hyper-v administrators", "access control assistance operators",
    "remote management users", "device owners", "storage replica administrators", "openssh users",
    "system managed accounts group", "user mode hardware operators", "everyone", "system", "local service",
    "network service", "authenticated users", "interactive", "network", "service", "batch", "creator owner",
    "anonymous logon", "iusr", "trustedinstaller",
}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def windows_user_problems(name: str) -> list[str]:
    """Why `name` cannot be a Windows account name (empty: it can)."""
    problems = []
    if not name or len(name) > 20:
        problems.append("must be 1 to 20 characters")
    if set(name) & WINDOWS_BAD_USER_CHARS or _CONTROL.search(name):
        problems.append('must not contain any of " / \\ [ ] : ; | = , + * ? < > % @ or control characters')
    if name.endswith(".") or not name.strip(". "):
        problems.append("must not end with a dot or be only dots and spaces")
    if name.lower() in WINDOWS_RESERVED_USERS:
        problems.append("must not be a built-in account name")
    elif name.lower() in WINDOWS_BUILTIN_GROUPS:
        problems.append("must not be the name of a built-in group or principal (Administrators, Users, ...)")
    return problems


def instance_problems(cfg: dict[str, Any]) -> list[Problem]:
    from limapy.config.validate_fields import field_problems

    return [*_user(cfg), *_sizes(cfg), *_provision(cfg), *field_problems(cfg)]


def _user(cfg: dict[str, Any]) -> list[Problem]:
    found = cfg.get("user")
    user: dict[str, Any] = found if isinstance(found, dict) else {}
    out = []
    for key in ("name", "home", "shell"):  # the first only: a name's newline is in the home made from it
        value = user.get(key)
        if isinstance(value, str) and not value.isprintable():
            return [Problem(("user", key), f"field `user.{key}` {value!r} holds a control character (a newline?)")]
    name, home, shell = (str(user.get(k) or "") for k in ("name", "home", "shell"))
    if cfg.get("os") == "Windows":
        problems = windows_user_problems(name)
        if problems:
            out.append(Problem(("user", "name"), f"field `user.name` {name!r} cannot be a Windows account name: "
                               + "; ".join(problems)))  # fmt: skip
        return out
    # Lima's ValidateTemplateArgs (at start): `field User must not be "root"`, `field UID must not be 0`
    if name == "root":
        out.append(Problem(("user", "name"), 'field `user.name` must not be "root" (root logs in through sudo)'))
    elif not LINUX_USER.fullmatch(name):
        out.append(Problem(("user", "name"), f"field `user.name` {name!r} is not a Linux user name: lowercase "
                           "letters, digits, `_` and `-`, starting with a letter or `_`, at most 32"))  # fmt: skip
    if user.get("uid") == 0:
        out.append(Problem(("user", "uid"), "field `user.uid` must not be 0"))
    if not home.startswith("/"):
        out.append(Problem(("user", "home"), f"field `user.home` must be an absolute path in the guest, got `{home}`"))
    if not shell:
        out.append(Problem(("user", "shell"), "field `user.shell` must be set"))
    return out


def _size(cfg: dict[str, Any], key: str) -> int | None:
    value = cfg.get(key)
    try:
        return parse_size(value if isinstance(value, (str, int)) else str(value))
    except (ValueError, OverflowError):
        return None  # Lima's validation says why


def _sizes(cfg: dict[str, Any]) -> list[Problem]:
    out = []
    cpus, arch = cfg.get("cpus"), str(cfg.get("arch"))
    limit = MAX_CPUS.get(arch, 255)
    if isinstance(cpus, int) and cpus > limit:
        out.append(Problem(("cpus",), f"field `cpus` is {cpus}: QEMU's {arch} machine takes at most {limit}"))
    memory = _size(cfg, "memory")
    if memory is not None and memory < MIN_MEMORY:
        out.append(Problem(("memory",), f"field `memory` is {format_size(memory)}: a guest needs at least "
                           f"{format_size(MIN_MEMORY)}"))  # fmt: skip
    disk = _size(cfg, "disk")
    if disk is not None and disk < MIN_DISK:
        out.append(Problem(("disk",), f"field `disk` is {format_size(disk)}: a guest disk needs at least "
                           f"{format_size(MIN_DISK)} (e.g. 100GiB)"))  # fmt: skip
    return out


def _provision(cfg: dict[str, Any]) -> list[Problem]:
    """A `mode: yq` step must be within limapy's yq (limapy.expr.yqlite), which the guest runs: Lima's yq is all of yq,
    so a template may use more; it is refused here, with the reason, rather than failing at boot."""
    from limapy.expr import yqformats, yqlite

    if cfg.get("os") == "Windows":
        return []  # Lima's validation limits Windows to system, user, dependency, data
    out = []
    for i, p in enumerate(cfg.get("provision") or []):
        if not isinstance(p, dict) or p.get("mode") != "yq":
            continue
        expr = p.get("expression")
        if isinstance(expr, str):
            try:
                yqlite.parse(expr)
            except yqlite.YqError as e:
                out.append(Problem(("provision", i, "expression"), f"field `provision[{i}].expression`: limapy's yq "
                                   f"cannot run it: {e}"))  # fmt: skip
        fmt, path = str(p.get("format") or "auto"), str(p.get("path") or "")
        try:
            yqformats.resolve(fmt, path)
        except yqformats.FormatError as e:
            where = "format" if fmt != "auto" else "path"
            out.append(Problem(("provision", i, where), f"field `provision[{i}].{where}`: {e}"))
    return out
