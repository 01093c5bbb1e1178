"""`protect` / `unprotect`: an empty `protected` file (0400) makes `delete`, also `delete -f`, refuse (Lima)."""

from __future__ import annotations

import contextlib

from limapy.instance import store


def protect(inst: store.Instance) -> bool:
    """False when it was protected already."""
    if inst.protected.exists():
        return False
    with store.lock(inst, what="protect"):
        store.atomic_write(inst.protected, b"", 0o400)
    return True


def unprotect(inst: store.Instance) -> bool:
    """False when it was not protected."""
    if not inst.protected.exists():
        return False
    with store.lock(inst, what="unprotect"), contextlib.suppress(FileNotFoundError):
        inst.protected.unlink()
    return True
