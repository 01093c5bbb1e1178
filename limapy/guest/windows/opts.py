"""The Windows options of a filled configuration (`osOpts.Windows`), read in one place.

Every other module asks these functions instead of picking `osOpts.Windows` apart itself, so "which
virtio-win ISO", "which OpenSSH MSI" and "is RDP on" have one answer each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Windows product keys: five groups of five characters (Microsoft's "25-character product key").
PRODUCT_KEY_RE = re.compile(r"[A-Za-z0-9]{5}(?:-[A-Za-z0-9]{5}){4}")
RDP_PORT = 3389


def windows_opts(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    osopts = cfg.get("osOpts")
    win = osopts.get("Windows") if isinstance(osopts, Mapping) else None
    return win if isinstance(win, Mapping) else {}


def _entries(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        return []
    return [e for e in value if isinstance(e, Mapping) and e.get("location")]


def entry_for_arch(value: Any, arch: str) -> Mapping[str, Any] | None:
    """The first File entry for `arch` (an entry without `arch` serves the instance's arch)."""
    for e in _entries(value):
        if str(e.get("arch") or arch) == arch:
            return e
    return None


def entry_arches(value: Any, arch: str) -> list[str]:
    return sorted({str(e.get("arch") or arch) for e in _entries(value)})


def virtio_win(cfg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The virtio-win ISO entry for the instance's arch; None = inbox-driver devices."""
    return entry_for_arch(windows_opts(cfg).get("virtioWin"), str(cfg.get("arch")))


def openssh_msis(cfg: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _entries(windows_opts(cfg).get("opensshMsi"))


def openssh_msi(cfg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return entry_for_arch(windows_opts(cfg).get("opensshMsi"), str(cfg.get("arch")))


def product_key(cfg: Mapping[str, Any]) -> str | None:
    key = windows_opts(cfg).get("productKey")
    return str(key).strip() if key not in (None, "") else None


def rdp_enabled(cfg: Mapping[str, Any]) -> bool:
    return windows_opts(cfg).get("rdp") is not False
