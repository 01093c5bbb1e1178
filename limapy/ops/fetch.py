"""The fetcher the config loader uses for remote (https) templates: the download cache, bounded.

A template is at most 4 MiB (Lima's own inline limit) and must arrive within a minute: a server that sends a
2 GiB body or trickles a byte every 20 s is refused, not waited for.
"""

from __future__ import annotations

from pathlib import Path

MAX_TEMPLATE_BYTES = 4 << 20
TEMPLATE_DEADLINE = 60.0


def template_fetcher(url: str) -> Path:
    from limapy.download import fetch

    return fetch(url, digest=None, decompress=False, max_bytes=MAX_TEMPLATE_BYTES, deadline=TEMPLATE_DEADLINE)
