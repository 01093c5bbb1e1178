"""Where limapy keeps things, and the names of the environment variables that move them."""

from __future__ import annotations

import functools
import os
from pathlib import Path

ENV_HOME = "LIMAPY_HOME"
ENV_TEMPLATES_PATH = "LIMAPY_TEMPLATES_PATH"
ENV_CACHE = "LIMAPY_CACHE_DIR"
ENV_ACCEL = "LIMAPY_QEMU_ACCEL"
ENV_DEBUG = "LIMAPY_DEBUG"


def limapy_home() -> Path:
    return _home(os.environ.get(ENV_HOME) or "", os.environ.get("HOME", ""))


@functools.lru_cache(maxsize=8)
def _home(value: str, _home_env: str) -> Path:
    """Resolved once per value (`list` asks for every instance; resolving walks every path component)."""
    if value:
        return Path(value).expanduser().resolve()
    return Path.home() / ".limapy"


def config_dir() -> Path:
    return limapy_home() / "_config"


def disks_dir() -> Path:
    return limapy_home() / "_disks"


def user_templates_dir() -> Path:
    return limapy_home() / "_templates"


def cache_dir() -> Path:
    value = os.environ.get(ENV_CACHE)
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "limapy"


def data_dir() -> Path:
    """The shipped templates/ and schemas/: beside the package in a checkout, inside it in a wheel."""
    pkg = Path(__file__).resolve().parent.parent  # limapy/ (this module is limapy/base/dirs.py)
    bundled = pkg / "_data"
    if bundled.is_dir():
        return bundled
    return pkg.parent


def shipped_templates_dir() -> Path:
    return data_dir() / "templates"


def schema_path() -> Path:
    return data_dir() / "schemas" / "lima.schema.json"
