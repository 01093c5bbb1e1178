"""An instance disk's backing chain: the file a qcow2 names as its backing (read from its header), and the chain
followed through the read-only layers suspended clones share (limapy.instance.layers) down to the image they stand
on (the cached download). Nothing else is followed: a backing file that is not such a layer ends the chain."""

from __future__ import annotations

import os
import re
from pathlib import Path

from limapy.base import dirs
from limapy.base.errors import LimapyError

PATTERN = re.compile(r"layer-\d+\.qcow2")
#: a chain longer than this is not one limapy made (a loop, a hand-made file)
MAX_DEPTH = 32


def is_layer(path: Path) -> bool:
    """A layer limapy froze: `layer-N.qcow2` directly in an instance directory under $LIMAPY_HOME."""
    return bool(PATTERN.fullmatch(path.name)) and path.parent.parent == dirs.limapy_home()


def chain(disk: Path) -> list[Path]:
    """The limapy layers under `disk`, nearest first, and then the base image they stand on (if any): what
    `disk.backing_file` names, followed through layers. Raises when a layer is missing."""
    out: list[Path] = []
    current = disk
    for _ in range(MAX_DEPTH):
        nxt = backing_file(current)
        if nxt is None:
            return out
        out.append(nxt)
        if not is_layer(nxt):
            return out
        if not nxt.exists():
            raise LimapyError(
                f"the shared disk layer under `{disk.parent.name}` is gone: {nxt}",
                hint=f"it belonged to instance `{nxt.parent.name}`, which its disk is an overlay on; "
                "restore that file, or delete this instance",
            )
        current = nxt
    raise LimapyError(f"the disk of `{disk.parent.name}` has a backing chain deeper than {MAX_DEPTH} layers")


def base_image(disk: Path) -> Path | None:
    """The image at the bottom of `disk`'s chain that is not a limapy layer (the cached download), or None."""
    found = chain(disk)
    if found and not is_layer(found[-1]):
        return found[-1]
    return None


def drop_half_frozen(directory: Path, disk: Path) -> None:
    """Remove a layer name that is still `disk` itself: a freeze (limapy.instance.layers) killed between its hard
    link and its switch. The disk is as it was; only that second name goes (links.check, before every lock)."""
    try:
        disk_inode = disk.stat(follow_symlinks=False).st_ino
        for entry in os.scandir(directory):
            if PATTERN.fullmatch(entry.name) and entry.is_file(follow_symlinks=False) and entry.inode() == disk_inode:
                os.unlink(entry.path)
    except FileNotFoundError:
        pass


def backing_file(path: Path) -> Path | None:
    """The backing file a qcow2 names in its header (read directly: no qemu-img round trip)."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(20)
            if len(head) < 20 or head[:4] != b"QFI\xfb":
                return None
            offset, size = struct.unpack(">QI", head[8:20])
            if not offset or not size or size > 4096:
                return None
            f.seek(offset)
            name = f.read(size).decode("utf-8", "replace")
    except OSError:
        return None
    p = Path(name)
    return p if p.is_absolute() else path.parent / p
