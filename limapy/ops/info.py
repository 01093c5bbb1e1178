"""`limapy info [NAME]`: what limapy sees on this host (versions, templates, paths), or one instance."""

from __future__ import annotations

from typing import Any


def host_info() -> dict[str, Any]:
    import platform

    from limapy import LIMA_COMPAT_VERSION, __version__, dirs
    from limapy.config.hostinfo import lima_arch
    from limapy.config.templates import list_templates

    templates = [{"name": t.name, "location": str(t.location)} for t in list_templates()]
    return {
        "version": __version__,
        "limaCompatVersion": LIMA_COMPAT_VERSION,
        "templates": templates,
        "limaHome": str(dirs.limapy_home()),
        "vmTypes": ["qemu"],
        "hostOS": platform.system().lower(),
        "hostArch": lima_arch(platform.machine()),
        "identityFile": str(dirs.config_dir() / "user"),
        "cacheDir": str(dirs.cache_dir()),
    }


def instance_info(name: str) -> dict[str, Any]:
    """One instance as `limapy list --json` describes it (limapy extension: `info NAME`)."""
    from limapy import store
    from limapy.ops.list import info

    return info(store.resolve(name))


def render(name: str | None) -> str:
    """`info`'s output: the instance's or the host's information as indented JSON."""
    import json

    return json.dumps(instance_info(name) if name else host_info(), indent=2, default=str)
