"""`restart`: stop (gracefully, or at once with force) and start again; a stopped instance is just started."""

from __future__ import annotations

from collections.abc import Callable

from limapy.instance import store

Show = Callable[[str], None]


def restart(inst: store.Instance, *, force: bool = False, timeout: float | None = None, show: Show) -> None:
    from limapy.ops.start import start_instance
    from limapy.ops.stop import stop

    if stop(inst, force=force, say=show):
        show(f"stopped `{inst.name}`")
    start_instance(inst, timeout=timeout, show=show)
