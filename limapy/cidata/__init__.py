"""First-boot media: the NoCloud seed for Linux guests (linux.py), the answer ISO for Windows (windows.py).

This module holds the small pieces both share: reading the user and the provision list out of the
filled configuration dict, and Lima's template variables in provision scripts. No heavy imports here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from limapy.errors import LimapyError
from limapy.names import hostname_for

PROVISION_MODES = ("system", "user", "boot", "data", "dependency")


@dataclass(frozen=True)
class Provision:
    index: int  # position in cfg["provision"]; names the file (%08d) as Lima does
    mode: str
    text: str  # script (or data content) after template expansion
    entry: dict[str, Any]  # the raw entry, for owner/path/permissions/overwrite/...


def user_of(cfg: dict[str, Any]) -> dict[str, Any]:
    user = dict(cfg.get("user") or {})
    if not user.get("name"):
        raise LimapyError("the configuration has no user.name (defaults were not filled)")
    user.setdefault("comment", "")
    user.setdefault("uid", 1000)
    user.setdefault("home", f"/home/{user['name']}.guest")
    user.setdefault("shell", "/bin/bash")
    user.setdefault("passwordlessSudo", True)
    return user


def template_fields(cfg: dict[str, Any], name: str, *, home: str | None = None) -> dict[str, str]:
    user = user_of(cfg)
    return {
        "Name": name,
        "Hostname": hostname_for(name),
        "User": str(user["name"]),
        "Home": home if home is not None else str(user["home"]),
        "UID": str(user["uid"]),
    }


def params_of(cfg: dict[str, Any]) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in (cfg.get("param") or {}).items()}


def provisions(
    cfg: dict[str, Any], name: str, *, allowed: tuple[str, ...], home: str | None = None
) -> list[Provision]:
    """The provision entries with their text expanded; a mode outside `allowed` is an error."""
    from limapy.cidata.render import expand_vars

    fields = template_fields(cfg, name, home=home)
    params = params_of(cfg)
    out: list[Provision] = []
    for i, entry in enumerate(cfg.get("provision") or []):
        mode = entry.get("mode") or "system"
        where = f"provision[{i}]"
        if mode not in allowed:
            raise LimapyError(f"{where}: provision mode `{mode}` is not supported for this guest")
        key = "content" if mode == "data" else "script"
        text = entry.get(key)
        if text is None:
            hint = "the configuration loader should have resolved `file:` into `script:`" if entry.get(
                "file"
            ) else None
            raise LimapyError(f"{where}: no `{key}` to put on the first-boot media", hint)
        text = expand_vars(str(text), fields, params, where=f"{where}.{key}")
        resolved = dict(entry)
        for field in ("path", "owner", "permissions"):
            if isinstance(resolved.get(field), str):
                resolved[field] = expand_vars(resolved[field], fields, params, where=f"{where}.{field}")
        out.append(Provision(i, mode, text, resolved))
    return out
