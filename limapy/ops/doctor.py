"""`limapy doctor`: which host tools limapy needs for what the user asks, which are missing, how to install them.

The needs and the install lines come from limapy.driver.hosttools, which `create` and `start` check too. Exit 1
when a needed tool is missing, 0 otherwise (an optional one missing is shown, and fine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from limapy.driver import hosttools
from limapy.driver.hosttools import Request
from limapy.instance import store

Out = Callable[[str], None]


def request_for(
    target: str | None,
    *,
    arches: Sequence[str] = (),
    windows: bool = False,
    mount_type: str | None = None,
    driver_name: str | None = None,
    connect: str | None = None,
) -> Request:
    """What to check: a template's or an instance's needs when one is named, else the flags' (by default Linux
    guests of this host's arch with the QEMU driver)."""
    if target:
        return _of_target(target, driver_name, connect)
    chosen = hosttools.ARCHES if "all" in arches else tuple(arches)
    driver = driver_name or _default_driver()
    return Request(chosen, tpm=windows, windows=windows, virtiofs=mount_type == "virtiofs",
                   smb=mount_type == "smb", driver=driver,
                   connect=connect)  # fmt: skip


def _default_driver() -> str:
    import os

    from limapy.driver import ENV_DRIVER

    return os.environ.get(ENV_DRIVER) or "qemu"


def _of_target(target: str, driver_name: str | None, connect: str | None) -> Request:
    from limapy import config, driver
    from limapy.ops.start import looks_like_template

    if looks_like_template(target):
        from limapy.ops.create import load_template

        spec = config.check(load_template(target, ())).spec
        return Request.of(spec, driver.chosen_for(spec, driver_name), connect)
    inst = store.resolve(target)
    return hosttools.for_instance(inst, config.instance_spec(inst))


def report(req: Request, out: Out) -> int:
    """The table, then the install lines for what is missing; 1 when something needed is missing."""
    rows = hosttools.needs(req)
    cells = [("TOOL", "STATUS", "NEEDED FOR")]
    for n in rows:
        status = n.found if n.found else ("MISSING" if n.required else "missing (optional)")
        cells.append((n.tool.name, status, n.why))
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    for c in cells:
        out("    ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
    missing = [n for n in rows if n.found is None]
    for note in _accelerators(req):
        out(note)
    if not missing:
        out("limapy has what it needs for this.")
        return 0
    here = hosttools.system()
    out("")
    out("To install what is missing:")
    for name, command in hosttools.install_lines([n.tool for n in missing]):
        mark = "  (this host)" if here and name == dict((k, v) for k, v, _ in hosttools.SYSTEMS)[here] else ""
        out(f"  {name + ':':<18} {command}{mark}")
    for n in missing:
        if n.tool.note:
            out(f"  {n.tool.name}: {n.tool.note}")
    return 1 if any(n.missing for n in rows) else 0


def _accelerators(req: Request) -> list[str]:
    """How each local guest arch would run: KVM/HVF, or TCG (slow) and why."""
    if req.remote:
        return []
    return [f"{arch} guests run with: {hosttools.accelerator(arch)}" for arch in req.arches]
