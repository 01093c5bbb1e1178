"""`disk create|list|delete|resize|import|unlock`: the shared disks of `additionalDisks`, kept as Lima keeps
them in `$LIMAPY_HOME/_disks/<name>/datadisk`, with an `in_use_by` link naming the instance that holds one.

A disk is held while that instance runs or is suspended (its saved memory holds the disk's state); the link
of a stopped or deleted instance is taken over at the next boot. `delete`, `resize` and `unlock` refuse a disk
a running or suspended instance holds, whatever the flags; `delete` without `-f` also refuses one a stopped
instance names (its link, or its `additionalDisks`). Nothing under `_disks` is followed through a link
limapy did not make.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from limapy.base.errors import InstanceError, LimapyError, NotFoundError, UsageError
from limapy.instance import disk
from limapy.instance.store import validate_name

FORMATS = ("qcow2", "raw")


@dataclass(frozen=True)
class DiskInfo:
    name: str
    size: int
    format: str
    dir: str
    instance: str  # "" when no instance holds it
    instanceDir: str  # Lima's JSON key


def _existing(name: str) -> Path:
    path = disk.checked_disk_path(name)
    if not path.is_file():
        raise disk.missing_additional_disk(name)
    return path


def _refuse_running(name: str, what: str) -> None:
    held = disk.holder(name)
    if held is not None:
        owner, how = held
        hint = f"`limapy stop {owner.name}` first"
        if how == "suspended":
            hint += " (it resumes and powers down; `stop -f` discards its saved state instead)"
        raise InstanceError(f"cannot {what} disk `{name}`: it is in use by the {how} instance `{owner.name}`",
                            hint=hint)  # fmt: skip


def create(name: str, size: int, fmt: str = "qcow2") -> Path:
    validate_name(name)
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use qcow2 or raw")
    if size <= 0:
        raise UsageError("--size must be more than 0")
    disk.checked_disk_path(name)
    if disk.additional_disk_dir(name).exists():
        raise LimapyError(f"disk `{name}` already exists ({disk.additional_disk_dir(name)})")
    return disk.ensure_additional_disk(name, size, fmt)


def info(name: str) -> DiskInfo:
    path = _existing(name)
    meta = disk.info(path)
    held = disk.holder(name)
    owner = held[0] if held is not None else None
    return DiskInfo(name, int(meta.get("virtual-size", 0)), str(meta.get("format", "")), str(path.parent),
                    owner.name if owner else "", str(owner) if owner else "")  # fmt: skip


def names() -> list[str]:
    """The disks under `_disks` (a link there, at any level, is not limapy's and is not listed)."""
    root = disk.additional_disk_dir("x").parent
    if not root.is_dir() or root.is_symlink():
        return []
    return sorted(p.name for p in root.iterdir()
                  if not p.is_symlink() and not (p / disk.DATADISK).is_symlink() and (p / disk.DATADISK).is_file())


def list_disks(*, as_json: bool) -> str:
    from limapy.base.units import format_size

    items = [info(n) for n in names()]
    if as_json:
        return "".join(json.dumps(asdict(i), separators=(",", ":")) + "\n" for i in items)
    rows = [["NAME", "SIZE", "FORMAT", "LOCATION", "IN-USE-BY"]]
    rows += [[i.name, format_size(i.size), i.format, i.dir, i.instance] for i in items]
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    return "".join("    ".join(v.ljust(widths[c]) for c, v in enumerate(r)).rstrip() + "\n" for r in rows)


def _listed_by(name: str) -> list[str]:
    """The instances of this home whose `additionalDisks` name disk `name` (from their summaries)."""
    from limapy.instance import store, summary

    out = []
    for n in store.list_instances():
        try:
            if any(d.name == name for d in summary.spec(store.Instance(n, store.instance_dir(n))).additional_disks):
                out.append(n)
        except LimapyError:
            continue
    return out


def delete(name: str, *, force: bool = False) -> None:
    """A disk a stopped instance still names (its link, or its lima.yaml) needs `force`; a running or suspended
    instance's never goes. What a failed `disk create` left (a directory without an image) just goes."""
    d = disk.additional_disk_dir(name)
    path = disk.checked_disk_path(name)
    if d.is_dir() and not path.exists() and not path.is_symlink():
        shutil.rmtree(d)  # no image in it: the remains of a create that failed (an older limapy left them)
        return
    _existing(name)
    _refuse_running(name, "delete")
    owner = disk.disk_owner(name)
    users = [owner.name] if owner is not None and owner.is_dir() else _listed_by(name)
    if users and not force:
        raise InstanceError(
            f"disk `{name}` is attached to the stopped instance `{users[0]}`",
            hint=f"`limapy disk delete -f {name}` deletes it anyway",
        )
    shutil.rmtree(d)


def unlock(name: str) -> bool:
    """Remove the `in_use_by` link; False when there was none."""
    _existing(name)
    _refuse_running(name, "unlock")
    link = disk.additional_disk_dir(name) / disk.IN_USE_BY
    if not link.is_symlink():
        return False
    link.unlink()
    return True


def resize(name: str, size: int) -> bool:
    """Grow the disk (shrinking is refused, as Lima refuses it); False when it has that size already."""
    path = _existing(name)
    _refuse_running(name, "resize")
    return disk.grow(path, size)


def import_disk(name: str, source: Path) -> Path:
    """A copy of the image `source` (raw or a self-contained qcow2, kept in its format) as disk `name`: no
    backing file, external data file or other format (those name files on this host that the guest would
    then read or write; imagecheck.verify)."""
    from limapy.base import imagecheck

    disk.checked_disk_path(name)
    if not source.is_file():
        raise NotFoundError(f"{source}: no such disk image")
    imagecheck.verify(source)
    d = disk.additional_disk_dir(name)
    if d.exists():
        raise LimapyError(f"disk `{name}` already exists ({d})")
    d.mkdir(mode=0o700, parents=True)
    try:
        disk.copy(source, disk.additional_disk_path(name))
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return disk.additional_disk_path(name)
