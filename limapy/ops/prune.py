"""`prune`: remove download-cache entries no instance uses.

Lima removes the whole download cache (its instances hold renamed copies of their images). A limapy
instance's disk is a qcow2 overlay on a cached image, so the blobs instances stand on (disk backing files,
linked install ISOs, virtio-win, the OpenSSH MSI) are always kept, or their disks would lose their base.
That holds for every instance of every `$LIMAPY_HOME` sharing the cache (download.refs: the homes that
made or started instances are registered there; each of their instance dirs is looked at now), and a URL
entry whose last download is such a blob is kept with it (a digest-less "latest" could not be fetched
back). `prune` takes the cache's lock exclusively: it waits for creates that are between their download and
their overlay. `--keep-referred` also keeps what any instance's lima.yaml names (each image, kernel, initrd,
virtio-win ISO and MSI URL, for every arch), so re-creating those needs no download. It also removes what a
killed create, clone or delete left in $LIMAPY_HOME (`limapy.instance.leftovers`; `list` warns about them).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from limapy.instance import store

Say = Callable[[str], None]


@dataclass
class Pruned:
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    freed: int = 0
    leftovers: list[Path] = field(default_factory=list)  # what killed creates, clones and deletes left in the home


def _used_paths(inst: store.Instance) -> list[Path]:
    from limapy.base.errors import LimapyError
    from limapy.instance import chain

    out = []
    try:  # the cached image under the disk, through the layers a suspended clone shares (limapy.instance.layers)
        out += chain.chain(inst.disk) if inst.disk.exists() else []
    except LimapyError:
        pass
    for link in (inst.iso, inst.virtio_win, inst.openssh_msi, inst.kernel, inst.initrd):
        if link.is_symlink():
            out.append(link)
    return [p.resolve() for p in out]


def _referred_urls(inst: store.Instance) -> Iterable[str]:
    from limapy import config
    from limapy.base.errors import LimapyError

    try:
        spec = config.instance_spec(inst)
    except LimapyError:
        return []
    out = [f.location for f in (*spec.windows.virtio_win, *spec.windows.openssh_msi)]
    for img in spec.images:
        out += [img.location, *(f.location for f in (img.kernel, img.initrd) if f is not None)]
    return out


def _leftovers(result: Pruned) -> None:
    from limapy.instance import leftovers

    for path in leftovers.find():
        result.freed += leftovers.remove(path)
        result.leftovers.append(path)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def instance_dirs(home: Path) -> list[Path]:
    """Every instance dir of `home`, Broken ones too (a dir without lima.yaml may still hold a disk); not the
    reserved `_x` dirs, nor `.x` ones (a create's temp dir is covered by the lock)."""
    try:
        entries = list(home.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if not p.name.startswith(("_", ".")) and p.is_dir() and not p.is_symlink())


def _homes() -> list[Path]:
    """This home and every other registered one that still exists (the entries of vanished ones are dropped)."""
    from limapy.base import dirs
    from limapy.download import refs

    here = dirs.limapy_home()
    out = [here]
    for home, entry in refs.homes().items():
        if home == here:
            continue
        if home.is_dir():
            out.append(home)
        else:
            refs.forget(entry)
    return out


def prune(*, keep_referred: bool = False, say: Say | None = None) -> Pruned:
    from limapy.base import dirs
    from limapy.download import cache, refs

    root = cache.root()
    result = Pruned()
    _leftovers(result)
    if not root.is_dir():
        return result
    with refs.pruning(say):
        refs.register(dirs.limapy_home())
        instances = [store.Instance(d.name, d) for home in _homes() for d in instance_dirs(home)]
        used = [p for inst in instances for p in _used_paths(inst)]
        urls = {u for inst in instances if inst.lima_yaml.is_file() for u in _referred_urls(inst)} \
            if keep_referred else set()  # fmt: skip
        _remove_unused(root, used, urls, result)
    return result


def _remove_unused(root: Path, used: list[Path], urls: set[str], result: Pruned) -> None:
    from limapy.download import cache

    def in_use(d: Path) -> bool:
        d = d.resolve()
        return any(p == d or d in p.parents for p in used)

    keep_blobs: set[str] = set()
    url_dirs = sorted((root / "by-url-sha256").glob("*")) if (root / "by-url-sha256").is_dir() else []
    keep_urls = set()
    for d in url_dirs:
        blob = cache.read(d / "content")
        blob_used = bool(blob) and in_use(cache.content_dir(str(blob)))
        if in_use(d) or blob_used or (cache.read(d / "url") in urls):
            keep_urls.add(d)
            if blob:
                keep_blobs.add(blob)
    for kind in ("by-content-sha256", "by-url-sha256", "by-path-sha256"):
        top = root / kind
        for d in sorted(top.glob("*")) if top.is_dir() else []:
            keep = in_use(d) or d in keep_urls or (kind == "by-content-sha256" and d.name in keep_blobs)
            if keep:
                result.kept.append(d)
                continue
            if d.is_symlink() or not d.is_dir():  # not an entry limapy made (or what a killed decompression
                d.unlink()  # left: one under way holds the cache lock): the link goes, never its target
                result.removed.append(d)
                continue
            with cache.locked(d):  # not while a download of that URL is under way
                result.freed += _size(d)
                shutil.rmtree(d)
            result.removed.append(d)
