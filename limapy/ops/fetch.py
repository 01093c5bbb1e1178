"""The fetcher the config loader uses for remote (https) templates: the download cache."""

from __future__ import annotations

from pathlib import Path


def template_fetcher(url: str) -> Path:
    from limapy.download import fetch

    return fetch(url, digest=None, decompress=False)
