"""Lima's template variables in lima.yaml fields, rendered as Lima's FillDefault renders them.

Lima runs these fields through Go's text/template once, when it fills defaults (pkg/limayaml/defaults.go):
`executeGuestTemplate` (line 937: Name, Hostname, UID, User, Home, Param) for what the guest reads (scripts,
data content, yq expressions, owner and path, probes, mount points, guest sockets, copyToHost.guest) and
`executeHostTemplate` (line 958: Dir, Name, UID, User, Home, Param, GlobalTempDir, TempDir and the deprecated
Instance, LimaHome) for host paths (mount locations, host sockets, copyToHost.host). A key missing from a map
renders `<no value>`; a text that does not parse or execute is kept as it was, with a warning (Lima logs
"Couldn't process ... as a template"). `param` values are Go strings: YAML `true` is "true", null is "".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from limapy.base.names import hostname_for


def go_string(value: Any) -> str:
    """A YAML scalar decoded into a Go string field (Lima's `param` is map[string]string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def params(raw: Any) -> dict[str, str]:
    return {str(k): go_string(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def guest_data(name: str, user: Mapping[str, Any], param: Mapping[str, str]) -> dict[str, Any]:
    return {"Name": name, "Hostname": hostname_for(name), "UID": user.get("uid"), "User": user.get("name"),
            "Home": user.get("home"), "Param": dict(param)}  # fmt: skip


def host_data(name: str, instance_dir: str, home: str, user: str, uid: int, param: Mapping[str, str],
              lima_home: str) -> dict[str, Any]:  # fmt: skip
    temp = os.environ.get("TMPDIR") or "/tmp"  # Go's os.TempDir()
    return {"Dir": instance_dir, "Name": name, "UID": str(uid), "User": user, "Home": home, "Param": dict(param),
            "GlobalTempDir": "/tmp", "TempDir": temp, "Instance": name, "LimaHome": lima_home}  # fmt: skip


def render(text: str, data: Mapping[str, Any], what: str, warnings: list[str] | None) -> str:
    """`text` rendered; unchanged (with a warning) when Go's template would fail."""
    if "{{" not in text:
        return text
    from limapy.expr import gotmpl

    try:
        return gotmpl.execute(text, data)
    except gotmpl.TemplateError as e:
        if warnings is not None:
            warnings.append(f"warning: couldn't process {what} {text!r} as a template: {e}")
        return text


def expand_tilde(path: str) -> str:
    """Lima's localpathutil: `~` and `~/...` become the home directory; `~user/...` stays (and is refused)."""
    if path == "~" or path.startswith("~/"):
        return os.path.expanduser("~") + path[1:]
    return path
