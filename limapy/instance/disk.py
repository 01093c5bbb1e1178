"""Instance disks with qemu-img: a qcow2 overlay on the cached base image (never a copy), empty disks for
install ISOs, growing, checking, and additional disks under `$LIMAPY_HOME/_disks/<name>/datadisk`.

The overlay is limapy's choice (DESIGN: creation costs the same for a 100 MiB or a 10 GiB image); Lima >= 2.1
renames the downloaded image instead. The base stays untouched in the download cache; the overlay names it
by absolute path.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from limapy.base import dirs, imagecheck, proc
from limapy.base.errors import ExternalToolError as ExternalToolError  # re-exported: callers catch it from here
from limapy.base.errors import InstanceError, LimapyError, NotFoundError
from limapy.base.units import format_size
from limapy.instance import chain
from limapy.instance.chain import backing_file as backing_file  # re-exported: callers ask it here
from limapy.instance.store import validate_name

if TYPE_CHECKING:
    from limapy.base.records import ImageInfo

QEMU_IMG = "qemu-img"
DATADISK = "datadisk"
IN_USE_BY = "in_use_by"


def info(path: Path) -> ImageInfo:
    """`qemu-img info --output=json` (with -U so it works while a VM holds the image) of one of limapy's own
    disks, with the format named (`-f`, from the magic bytes: qemu-img never probes; a guest can write a qcow2
    header into a raw disk). A qcow2 whose header names a data file is refused before qemu-img opens it;
    a backing file is what limapy's overlays have."""
    if not path.exists():
        raise NotFoundError(f"{path}: no such disk image")
    fmt = image_format(path)
    if fmt == "qcow2":
        imagecheck.check_header(path, str(path), allow_backing=True)
    return imagecheck.info(path, fmt)


def is_iso9660(path: Path) -> bool:
    """True for an ISO 9660 image (install media): `CD001` at byte 32769."""
    try:
        with path.open("rb") as f:
            f.seek(0x8001)
            return f.read(5) == b"CD001"
    except OSError:
        return False


def image_format(path: Path) -> str:
    """"qcow2" when `path` starts with qcow2's magic, else "raw" (the two formats `disk create` makes)."""
    try:
        with open(path, "rb") as f:
            return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"
    except OSError:
        return "raw"


def attach_format(path: Path, name: str) -> str:
    """The format QEMU opens additional disk `name` with: "qcow2" or "raw" by its magic, and a qcow2 only when
    its header names no other file (a raw disk's guest can write any header into it)."""
    fmt = image_format(path)
    if fmt == "qcow2":
        imagecheck.check_header(path, f"additional disk `{name}`")
    return fmt


def virtual_size(disk: Path) -> int:
    return int(info(disk)["virtual-size"])


@contextlib.contextmanager
def _written_as(final: Path) -> Iterator[Path]:
    """A temp name beside `final` to write; renamed over `final` when the block succeeds, removed when it fails,
    so a failed or killed write never leaves a half disk under the final name."""
    tmp = final.with_name(f".{final.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _create(argv: list[str | Path], disk: Path) -> None:
    """Run a `qemu-img create` into a temp name and rename: a failed create leaves no disk behind."""
    if disk.exists():
        raise InstanceError(f"{disk} already exists; refusing to overwrite it")
    with _written_as(disk) as tmp:
        proc.run([*argv[:-1], tmp, argv[-1]])


def create_overlay(base: Path, disk: Path, size_bytes: int, what: str | None = None) -> None:
    """`disk` = qcow2 overlay backed by `base`, at least `size_bytes` big (never smaller than the base).
    `base` must be raw or a self-contained qcow2, cached download or not (imagecheck.verify; `what` names it
    in the refusal), and `-F` is the format verified, so QEMU never probes it."""
    base = base.absolute()
    verified = imagecheck.verify(base, what)
    size = max(size_bytes, verified.virtual_size)
    _create([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", verified.format, str(size)], disk)


def overlay_on_layer(layer: Path, disk: Path, *, relative: bool = False) -> None:
    """`disk` (made, or replaced in one rename) = an empty qcow2 overlay of the same size on `layer`, a read-only
    layer limapy froze (limapy.instance.layers); `relative`: named by file name (it is in the overlay's directory)."""
    mode = disk.stat().st_mode & 0o777 if disk.exists() else 0o600
    with _written_as(disk) as tmp:
        proc.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", layer.name if relative else layer.absolute(),
                  "-F", "qcow2", tmp])  # fmt: skip
        os.chmod(tmp, mode)


def commit_into_backing(disk: Path) -> None:
    """Write what the qcow2 `disk` holds into its backing file, and keep it in `disk` too (`-d`: a kill half-way
    leaves `disk` whole)."""
    proc.run([QEMU_IMG, "commit", "-q", "-d", "-f", "qcow2", disk])


def rebase_name(disk: Path, backing: Path) -> None:
    """Make `disk` name its (unchanged) qcow2 backing file `backing` by absolute path: a copy of an overlay
    that named its backing relatively, from another directory. Its contents stay as they were (`rebase -u`)."""
    proc.run([QEMU_IMG, "rebase", "-q", "-u", "-f", "qcow2", "-b", backing.absolute(), "-F", "qcow2", disk])


def create_empty(disk: Path, size_bytes: int) -> None:
    """An empty qcow2 disk (install-ISO guests such as Windows install onto it)."""
    _create([QEMU_IMG, "create", "-q", "-f", "qcow2", str(size_bytes)], disk)


def grow(disk: Path, size_bytes: int) -> bool:
    """Grow `disk` to `size_bytes`; True if it changed. Shrinking is refused with Lima's message."""
    meta = info(disk)
    current = int(meta["virtual-size"])
    if size_bytes == current:
        return False
    if size_bytes < current:
        raise LimapyError(
            f"shrinking the disk ({format_size(current)} --> {format_size(size_bytes)}) is not supported",
            hint="set `disk:` to at least the current size",
        )
    proc.run([QEMU_IMG, "resize", "-q", "-f", str(meta.get("format", "qcow2")), disk, str(size_bytes)])
    return True


def copy(src: Path, dst: Path, *, full: bool = False) -> None:
    """`dst` = a copy of the disk `src`: its qcow2 file as it is (an overlay stays an overlay on the same base,
    so the copy holds only the guest's own changes), or with `full` one self-contained qcow2 (no backing file).
    Written under a temp name: a failed copy leaves no disk behind."""
    import shutil

    if dst.exists():
        raise InstanceError(f"{dst} already exists; refusing to overwrite it")
    with _written_as(dst) as tmp:
        if full:
            proc.run([QEMU_IMG, "convert", "-q", "-O", "qcow2", src, tmp])
        else:
            shutil.copyfile(src, tmp)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    corruptions: int
    leaks: int
    message: str


def check(disk: Path) -> CheckResult:
    """`qemu-img check`: ok unless the image is corrupt or could not be checked (leaks are harmless)."""
    meta = info(disk)
    if meta.get("format") != "qcow2":
        return CheckResult(True, 0, 0, f"{meta.get('format')} images have nothing to check")
    cp = proc.run([QEMU_IMG, "check", "-f", "qcow2", "--output=json", disk], check=False)
    try:
        data = json.loads(cp.stdout or b"{}")
    except ValueError:
        data = {}
    corrupt = int(data.get("corruptions", 0))
    leaks = int(data.get("leaks", 0))
    ok = cp.returncode in (0, 3) and corrupt == 0 and int(data.get("check-errors", 0)) == 0
    err = (cp.stderr or b"").decode(errors="replace").strip()
    msg = "ok" if ok else (err or f"{corrupt} corruptions, check-errors {data.get('check-errors', '?')}")
    return CheckResult(ok, corrupt, leaks, msg)


# -- additional disks -------------------------------------------------------------------------------------


def additional_disk_dir(name: str) -> Path:
    return dirs.disks_dir() / name


def additional_disk_path(name: str) -> Path:
    """`_disks/<name>/datadisk`, where Lima keeps an additional disk's image."""
    return additional_disk_dir(name) / DATADISK


def checked_disk_path(name: str) -> Path:
    """`_disks/<name>/datadisk`, refusing a symbolic link at every level (limapy makes none there but
    `in_use_by`) and an image with other names (a hard link): resizing or booting it would change a file
    elsewhere."""
    validate_name(name)
    path = additional_disk_path(name)
    for p in (dirs.disks_dir(), path.parent, path):
        if p.is_symlink():
            raise InstanceError(f"{p} is a symbolic link; limapy does not follow links in {dirs.disks_dir()}",
                                hint="remove the link (limapy makes none there except `in_use_by`)")  # fmt: skip
    try:
        nlink = path.stat().st_nlink
    except OSError:
        return path
    if nlink > 1 and path.is_file():
        raise InstanceError(f"{path} has {nlink} names (a hard link); limapy does not write to it in place",
                            hint="remove that name, or `limapy disk import` a copy")  # fmt: skip
    return path


def missing_additional_disk(name: str) -> NotFoundError:
    path = additional_disk_path(name)
    return NotFoundError(
        f"additional disk `{name}` does not exist ({path})",
        hint=f"create it first: `limapy disk create {name} --size 10GiB`",
    )


def ensure_additional_disk(name: str, size_bytes: int | None = None, fmt: str = "qcow2") -> Path:
    """`_disks/<name>/datadisk`, created (0700 dir) when missing and a size is given; a failed create leaves
    no directory behind (a name that could be neither created nor deleted)."""
    disk = checked_disk_path(name)
    d = disk.parent
    if disk.exists():
        return disk
    if size_bytes is None:
        raise missing_additional_disk(name)
    made = not d.exists()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        _create([QEMU_IMG, "create", "-q", "-f", fmt, str(size_bytes)], disk)
    except BaseException:
        if made:
            import shutil

            shutil.rmtree(d, ignore_errors=True)
        raise
    return disk


def disk_owner(name: str) -> Path | None:
    """The instance dir `_disks/<name>/in_use_by` names, if any (it may be stopped, or gone)."""
    link = additional_disk_dir(name) / IN_USE_BY
    return Path(os.readlink(link)) if link.is_symlink() else None


def owner_running(owner: Path) -> bool:
    """Whether the instance in `owner` runs now (its host agent is alive): only then does it hold the disk."""
    from limapy.instance import store

    return owner.is_dir() and store.ha_pid(store.Instance(owner.name, owner)) is not None


def owner_suspended(owner: Path) -> bool:
    """Whether the instance in `owner` is suspended: its saved memory holds the disk's state, so the disk stays
    its own until it resumes or its state is discarded."""
    from limapy.instance import store

    inst = store.Instance(owner.name, owner)
    return inst.lima_yaml.is_file() and inst.suspend_record.is_file() and not owner_running(owner)


def holder(name: str) -> tuple[Path, str] | None:
    """The instance dir holding disk `name` and how ("running" or "suspended"); None when none does."""
    owner = disk_owner(name)
    if owner is None:
        return None
    if owner_running(owner):
        return owner, "running"
    if owner_suspended(owner):
        return owner, "suspended"
    return None


def claim_additional_disk(name: str, instance_dir: Path) -> Path:
    """Mark `_disks/<name>` as used by `instance_dir` (symlink `in_use_by`, as Lima does). A disk another
    running or suspended instance holds is refused; the mark of a stopped or deleted one is taken over."""
    path = checked_disk_path(name)
    link = path.parent / IN_USE_BY
    held = holder(name)
    if held is not None and held[0] != instance_dir:
        owner, how = held
        raise InstanceError(
            f"additional disk `{name}` is in use by the {how} instance `{owner.name}`",
            hint=f"stop `{owner.name}` first" + (" (`limapy stop` resumes and powers it down; `stop -f` discards "
                                                  "its saved state)" if how == "suspended" else ""),
        )
    if link.is_symlink():
        link.unlink()
    link.symlink_to(instance_dir)
    return path


def release_additional_disk(name: str, instance_dir: Path) -> None:
    link = additional_disk_dir(name) / IN_USE_BY
    if link.is_symlink() and Path(os.readlink(link)) == instance_dir:
        link.unlink()


def move_claims(old_dir: Path, new_dir: Path) -> None:
    """After an instance dir moved (`rename`): the `in_use_by` marks that named the old dir name the new one."""
    root = dirs.disks_dir()
    if not root.is_dir() or root.is_symlink():
        return
    for d in sorted(root.iterdir()):
        link = d / IN_USE_BY
        if d.is_symlink() or not link.is_symlink() or Path(os.readlink(link)) != old_dir:
            continue
        tmp = d / f".{IN_USE_BY}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(new_dir)
        os.replace(tmp, link)


# -- the base image an overlay stands on --------------------------------------------------------------------

def record_base(record: Path, base: Path) -> None:
    """Remember which bytes an instance's overlay was created on (`record`, the instance's base-image.json,
    0600): the base's stat, and its digest when the cache knows it for this version of the file (a download,
    a pinned local image). Never reads the base: a digest-less local image is recorded by its stat alone."""
    from limapy.base.fsutil import atomic_write
    from limapy.download import known_identity

    ident = known_identity(base)
    data = {"path": ident.path, "stat": ident.stat, **({"digest": ident.digest} if ident.digest else {})}
    atomic_write(record, (json.dumps(data) + "\n").encode(), 0o600)


def verify_base(record: Path, disk: Path, name: str) -> bool:
    """Refuse to boot an overlay whose base no longer holds the bytes it was created on (a re-download, a
    replaced file, one rewritten in place): the guest would read a different disk. Cheap while the base's stat
    (size, mtime, inode, ctime, device) is unchanged; when it changed, a recorded digest is checked by hashing
    (once per version of the file), and a base recorded by its stat alone (no digest pinned it) is refused.

    Reads only; True when the record should be (re)written (`record_base`): an instance made by an older
    limapy has none, and a base that was touched but holds the same bytes has a new stat."""
    base = chain.base_image(disk)  # through the read-only layers a suspended clone shares
    if base is None:
        return False
    if not base.exists():
        raise LimapyError(
            f"the base image of `{name}` is gone: {base}",
            hint="the instance disk is an overlay on it; restore that file, or delete and re-create the instance",
        )
    imagecheck.check_header(base, f"the base image of `{name}`")  # made by a limapy that did not check it
    try:
        known = json.loads(record.read_text())
    except FileNotFoundError:
        return True
    except ValueError:
        known = {}
    if not isinstance(known, dict) or not (known.get("stat") or known.get("digest")):
        return True  # unreadable: as if there were none (the instance dir is the user's own)
    from limapy.download import ALGORITHMS, cache, identity

    want = str(known.get("digest") or "")
    try:
        if known.get("path") == str(base) and known.get("stat") == cache.stat_key(base):
            return False
    except OSError:
        pass
    changed = f"the base image of `{name}` changed since the instance was created"
    if not want:
        raise LimapyError(
            f"{changed}: {base} is not the file it was made on (its size, times, inode or device differ), and no "
            "digest pins it",
            hint=f"its disk is an overlay on that image: restore the original file, or delete and re-create the "
            f"instance; if the file holds the very same bytes (only touched or copied back), remove {record} and "
            "start it again",
        )
    algo = want.partition(":")[0]
    now = identity(base, algo=algo if algo in ALGORITHMS else "sha256")
    if now.digest != want:
        raise LimapyError(
            f"{changed}: {base} holds {now.digest}, the instance was made on {want}",
            hint="its disk is an overlay on that image: restore the original file, or delete and re-create it",
        )
    return True


def partition_table(disk: Path) -> str | None:
    """"gpt" or "mbr" when the guest has partitioned `disk` (read through qcow2 and its backing chain),
    else None. `qemu-img dd` reads the first two sectors; the image must not be in use by a running QEMU."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix="limapy-head.", suffix=".tmp")  # not in the instance dir: reads only
    os.close(fd)
    try:
        os.unlink(tmp)  # qemu-img dd creates its output itself
        with open(disk, "rb") as f:
            fmt = "qcow2" if f.read(4) == b"QFI\xfb" else "raw"
        proc.run([QEMU_IMG, "dd", "-f", fmt, "-O", "raw", "bs=512", "count=2", f"if={disk}", f"of={tmp}"])
        head = Path(tmp).read_bytes()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if len(head) >= 520 and head[512:520] == b"EFI PART":
        return "gpt"
    if len(head) >= 512 and head[510:512] == b"\x55\xaa":
        entries = [head[446 + 16 * i : 462 + 16 * i] for i in range(4)]
        if any(e[4] != 0 for e in entries):  # a partition type is set
            return "mbr"
    return None
