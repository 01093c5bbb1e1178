"""What shell completion offers: the one source of instance names (kept cheap: a directory listing)."""

from __future__ import annotations

SHELLS = ("bash", "zsh", "fish", "powershell")


def instance_names() -> list[str]:
    """The instances under $LIMAPY_HOME, sorted. Every completion of an instance argument calls this."""
    from limapy import store

    return store.list_instances()
