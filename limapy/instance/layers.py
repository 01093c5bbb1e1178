"""Read-only disk layers that suspended clones share with their source (`limapy clone` of a suspended instance).

A suspended guest's saved memory describes its disk exactly as it was at the suspend, so a clone that resumes
from that memory needs that very disk, and so does the source. Instead of copying it, the source's disk file is
*frozen*: it becomes `layer-<ns>.qcow2` in the source's directory (read-only, 0400, never opened for writing
again), and the source and every clone get a new, empty qcow2 overlay on it. Each writes only to its own overlay:
a clone's writes are seen by neither the source nor the other clones.

    cache image  <-  <src>/layer-N.qcow2  <-  <src>/disk      (the source's overlay: a relative backing name,
                                          <-  <w1>/disk        so a rename of the source keeps its own disk)
                                          <-  <w2>/disk       (clones: the layer's absolute path)

Freezing happens once per suspend: a source still suspended on the layer it was frozen at (its suspend record names
the layer, limapy.driver.suspended) gives each further clone another overlay on the same layer. A source that
resumed, ran and was suspended again is frozen again: a second layer over the first while clones still stand on
the first; otherwise its overlay is folded into the layer under it (`qemu-img commit`, what it wrote since), so a
base that is cloned, run and cloned again every day keeps one layer, not one more each time (the chain would
otherwise end at MAX_DEPTH, and every block overwritten since would be kept twice). A disk with internal
snapshots is not frozen: the new overlay would not have them (`limapy snapshot` works on the instance's own file).
While another instance
stands on one of its layers, the source may not be deleted or renamed (`dependents`), and `factory-reset` keeps its
layers; a layer goes with the source's directory.

The chain under an instance's disk is walked through these layers only (limapy.instance.chain): a backing file
anywhere else ends it, and the download cache's images are self-contained (limapy.base.imagecheck).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.instance import store
from limapy.instance.chain import backing_file, chain, drop_half_frozen, is_layer


def dependents(inst: store.Instance, layer: Path | None = None) -> list[str]:
    """The other instances whose disks stand on a layer in `inst`'s directory (on `layer` only, when given)."""
    out = []
    for name in store.list_instances():
        if name == inst.name:
            continue
        other = store.Instance(name, store.instance_dir(name)).disk
        try:
            layers = chain(other) if other.exists() else []
        except LimapyError:
            layers = []
        if any(is_layer(p) and p.parent == inst.dir and (layer is None or p == layer) for p in layers):
            out.append(name)
    return out


def refuse_if_shared(inst: store.Instance, what: str) -> None:
    found = dependents(inst)
    if found:
        names = ", ".join(f"`{n}`" for n in found)
        raise LimapyError(
            f"cannot {what} `{inst.name}`: {names} stand{'s' if len(found) == 1 else ''} on its disk (a read-only "
            "layer made when it was cloned suspended)",
            hint=f"delete {'that clone' if len(found) == 1 else 'those clones'} first",
        )


def freeze(inst: store.Instance) -> Path:
    """Make `inst`'s disk a read-only layer and give `inst` a new, empty overlay on it (the guest sees the same
    bytes). The instance is stopped or suspended and locked by the caller.

    Order, for a kill at any point: the layer is first a second name of the disk (a hard link); the overlay is
    made under a temp name; renaming it over `disk` is the switch. Before the switch the disk is as it was (a
    stray second name is removed at the next lock, chain.drop_half_frozen); after it, the old disk
    lives on only as the layer. Refused for a disk with snapshots; folded into the source's own layer when no
    other instance stands on it (`_fold`)."""
    from limapy.instance import disk

    drop_half_frozen(inst.dir, inst.disk)
    snaps = disk.info(inst.disk).get("snapshots") or []
    if snaps:
        raise LimapyError(
            f"cannot clone `{inst.name}` suspended: its disk has {len(snaps)} snapshot(s), which the read-only layer "
            "its clones would share keeps out of its reach",
            hint=f"`limapy snapshot list {inst.name}`; delete them, or stop `{inst.name}` and clone it stopped",
        )
    under = backing_file(inst.disk)
    if under is not None and is_layer(under) and under.parent == inst.dir and not dependents(inst, under):
        return _fold(inst, under)
    layer = inst.dir / f"layer-{time.time_ns()}.qcow2"
    os.link(inst.disk, layer)
    try:
        disk.overlay_on_layer(layer, inst.disk, relative=True)
    except BaseException:
        layer.unlink(missing_ok=True)
        raise
    os.chmod(layer, 0o400)  # QEMU opens a backing file read-only; nothing of limapy's writes it again
    return layer


def _fold(inst: store.Instance, layer: Path) -> Path:
    """Freeze again onto `layer`, the source's own layer that no other instance stands on any more: what the
    overlay holds is written into it and the overlay replaced by an empty one. A kill at any point leaves the
    guest's view unchanged: until the switch the overlay still holds every block it wrote (the commit keeps
    them), and nothing else reads the layer."""
    from limapy.instance import disk

    os.chmod(layer, 0o600)
    try:
        disk.commit_into_backing(inst.disk)
        disk.overlay_on_layer(layer, inst.disk, relative=True)
    finally:
        os.chmod(layer, 0o400)
    return layer
