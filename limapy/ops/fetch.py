"""The fetcher the config loader uses for remote (https) templates: the download cache, bounded.

A template is at most 4 MiB (Lima's own inline limit) and must arrive within a minute from the first connect
to its last byte (a server that sends a 2 GiB body, or trickles its headers or body a byte every few seconds,
is refused, not waited for). A template a network template names (its `base:`, a provision file) is fetched
with that template's `Guard`: public addresses only (limapy.base.netpolicy).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limapy.base.netpolicy import Guard

MAX_TEMPLATE_BYTES = 4 << 20
TEMPLATE_DEADLINE = 60.0


def template_fetcher(url: str, guard: Guard | None = None) -> Path:
    from limapy.download import fetch

    return fetch(url, digest=None, decompress=False, max_bytes=MAX_TEMPLATE_BYTES, deadline=TEMPLATE_DEADLINE,
                 guard=guard)  # fmt: skip
