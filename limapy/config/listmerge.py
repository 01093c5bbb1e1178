"""Lima's rule for list entries that describe the same thing (a mount, a network, a disk): an entry is known by
the first of its key fields that is set, and a later entry with a known key is merged into the first one
instead of being appended. Embedding `base:` and layering default/override use it with opposite precedence."""

from __future__ import annotations

from typing import Any


def entry_key(item: Any, fields: tuple[str, ...], *, bare_names: bool = False) -> str | None:
    """What identifies `item`: its first non-empty key field; a bare string itself when `bare_names`."""
    if bare_names and isinstance(item, str):
        return item
    if isinstance(item, dict):
        for f in fields:
            if item.get(f):
                return str(item[f])
    return None


def merge_entry(into: dict[str, Any], item: dict[str, Any], *, later_wins: bool) -> None:
    """Merge `item` into the earlier entry with its key: its set fields replace (`later_wins`), or only fill
    what the earlier entry lacks."""
    for k, v in item.items():
        if later_wins:
            if v is not None:
                into[k] = v
        elif into.get(k) is None:
            into[k] = v
