"""`limapy info [NAME]`: what limapy sees on this host (versions, templates, paths), or one instance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limapy.base.records import Row


def host_info() -> dict[str, object]:
    import platform

    from limapy import LIMA_COMPAT_VERSION, __version__
    from limapy.base import dirs
    from limapy.config.hostinfo import lima_arch
    from limapy.config.templates import list_templates

    templates = [{"name": t.name, "location": str(t.location)} for t in list_templates()]
    return {
        "version": __version__,
        "limaCompatVersion": LIMA_COMPAT_VERSION,
        "templates": templates,
        "defaultTemplate": _default_template(),
        "limaHome": str(dirs.limapy_home()),
        "vmTypes": ["qemu"],
        "vmTypesEx": {"qemu": {"name": "qemu", "location": "internal"}},
        "guestAgents": {},  # limapy has no guest agent binary (DESIGN: port forwards)
        "shellEnvBlock": _shell_env_block(),
        "hostOS": platform.system().lower(),
        "hostArch": lima_arch(platform.machine()),
        "identityFile": str(dirs.config_dir() / "user"),
        "plugins": _plugins(),
        "libexecPaths": [],
        "sharePaths": [str(dirs.data_dir())],
        "cacheDir": str(dirs.cache_dir()),
    }


def _shell_env_block() -> list[str]:
    """What `shell --preserve-env` does not send (Lima's list, or $LIMAPY_SHELLENV_BLOCK's)."""
    import os

    from limapy.base.errors import LimapyError
    from limapy.expr import shellenv

    try:
        return shellenv.block_list(os.environ)
    except LimapyError:
        return list(shellenv.DEFAULT_BLOCK)


def _default_template() -> Any:
    """template:default with every default filled in (Lima's defaultTemplate); null when it does not load."""
    from limapy.base.errors import LimapyError
    from limapy.config import load_config

    try:
        return load_config("template:default").cfg
    except LimapyError:
        return None


def _plugins() -> list[dict[str, str]]:
    """URL-scheme plugins on PATH (`limapy-url-*`, `limactl-url-*`), as Lima lists its plugins."""
    import os
    from pathlib import Path

    found: dict[str, dict[str, str]] = {}
    for d in os.environ.get("PATH", "").split(os.pathsep):
        try:
            entries = sorted(Path(d).iterdir()) if d else []
        except OSError:
            continue
        for p in entries:
            if p.name.startswith(("limapy-url-", "limactl-url-")) and os.access(p, os.X_OK):
                found.setdefault(p.name, {"name": p.name, "path": str(p)})
    return list(found.values())


def instance_info(name: str) -> Row:
    """One instance as `limapy list --json` describes it (limapy extension: `info NAME`)."""
    from limapy.instance import store
    from limapy.ops.list import info

    return info(store.resolve(name))


def render(name: str | None) -> str:
    """`info`'s output: the instance's or the host's information as indented JSON."""
    import json

    return json.dumps(instance_info(name) if name else host_info(), indent=2, default=str)
