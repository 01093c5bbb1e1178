"""Which package is which guest operating system: Lima's `os` value (what lima.yaml says) -> the module that
implements it.

A guest OS module exposes `GUEST` (limapy.guest.GuestOS: what it boots from, its devices, its readiness, its
shell, ...) and `rules` beside it (limapy.guest.rules.Rules: lima.yaml as that OS reads it). `Linux` and
`Windows` are built in; `LIMAPY_GUEST_MODULES=NAME=module[,NAME=module]` registers more (the tests' toy guest),
as LIMAPY_DRIVER_MODULES does for engines, so a new guest OS is one package and one line here.

This module sits at the configuration's layer and imports nothing: the rules (config) and the seam (limapy.guest,
on the hot path of `shell`) both look names up here, each importing what it needs by name.
"""

from __future__ import annotations

import os

ENV_MODULES = "LIMAPY_GUEST_MODULES"
BUILTIN = {"Linux": "limapy.guest.linux", "Windows": "limapy.guest.windows"}


def registry() -> dict[str, str]:
    """OS name -> module: the built-in ones, then `LIMAPY_GUEST_MODULES`."""
    out = dict(BUILTIN)
    for item in (os.environ.get(ENV_MODULES) or "").split(","):
        name, sep, module = item.strip().partition("=")
        if sep and name.strip() and module.strip():
            out[name.strip()] = module.strip()
    return out
