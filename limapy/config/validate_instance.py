"""limapy's rules for what `start` must be able to boot, on a filled config, beside Lima's (validate.py).

Lima refuses some of these only when it renders the seed (cidata's ValidateTemplateArgs: `user.name` root,
`user.uid` 0) or when QEMU fails; limapy refuses them with every other problem, so `validate` says what
`create` would refuse. Nothing here reads the host: what depends on it (memory vs the host's RAM, the disks
in the store, the instance directory's path) is limapy.ops.preflight's, at create.
"""

from __future__ import annotations

from typing import Any

from limapy.base.units import format_size, parse_size
from limapy.config.validate import Problem
from limapy.guest.rules import for_os as guest_rules

#: QEMU's limits for the machine types limapy uses (q35: max_cpus 288; virt with GICv3: 512).
MAX_CPUS = {"x86_64": 288, "aarch64": 512}
MIN_MEMORY = 64 << 20
MIN_DISK = 1 << 20


def instance_problems(cfg: dict[str, Any]) -> list[Problem]:
    from limapy.config.validate_fields import field_problems

    return [*_user(cfg), *_sizes(cfg), *_provision(cfg), *field_problems(cfg)]


def _user(cfg: dict[str, Any]) -> list[Problem]:
    found = cfg.get("user")
    user: dict[str, Any] = found if isinstance(found, dict) else {}
    out: list[Problem] = []
    for key in ("name", "home", "shell"):  # the first only: a name's newline is in the home made from it
        value = user.get(key)
        if isinstance(value, str) and not value.isprintable():
            return [Problem(("user", key), f"field `user.{key}` {value!r} holds a control character (a newline?)")]
    name, home, shell = (str(user.get(k) or "") for k in ("name", "home", "shell"))
    # what this guest OS's accounts must be (limapy.guest.rules: a Linux user, a Windows account)
    return out + [Problem(path, msg) for path, msg in guest_rules(str(cfg.get("os"))).user_problems(
        user, name, home, shell)]  # fmt: skip


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

    if "yq" not in guest_rules(str(cfg.get("os"))).provision_modes:
        return []  # Lima's validation refuses the step (Windows: system, user, dependency and data only)
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
