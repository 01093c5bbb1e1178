"""Create an instance from a template: validate, fetch, build the disk, and only then make the dir appear.

Everything that can fail (config, downloads, digests, missing ISOs, swtpm) happens inside
`store.creating()`, whose temp dir is removed on any error: no half-created instance is ever left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from limapy import LIMA_COMPAT_VERSION, store
from limapy.errors import LimapyError, UsageError
from limapy.units import parse_size

Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def load_template(locator: str, sets: Sequence[str]) -> Any:
    from limapy import edits
    from limapy.config.load import load
    from limapy.ops.fetch import template_fetcher

    doc = load(locator, fetcher=template_fetcher)
    for expr in sets:
        edits.apply(doc.data, expr)
    return doc


def pick_image(cfg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    arch = cfg["arch"]
    for i, img in enumerate(cfg.get("images") or []):
        if isinstance(img, dict) and img.get("arch") == arch:
            return i, img
    have = sorted({str(i.get("arch")) for i in cfg.get("images") or [] if isinstance(i, dict)})
    raise LimapyError(
        f"the template has no image for arch {arch} (it has: {', '.join(have) or 'none'})",
        hint="pick another template, or --set '.arch = \"...\"' to one of those",
    )


def _fetch(location: str, digest: str | None, say: Say, what: str, decompress: bool = True) -> Path:
    from limapy import download

    if location.startswith(("http://", "https://")):
        say(f"downloading {what}: {location}")
        with download.ProgressReporter(what) as progress:
            return download.fetch(location, digest=digest, decompress=decompress, progress=progress)
    return download.fetch(location, digest=digest, decompress=decompress)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def windows_checks(cfg: dict[str, Any], image_pos: int, image: dict[str, Any], say: Say) -> Path:
    """The install ISO exists, is for this arch, and holds the edition asked for; swtpm when tpm is on."""
    from limapy import winmedia

    if cfg.get("tpm"):
        from limapy.qemu.tpm import find_swtpm

        find_swtpm()  # first: no progress lines before a refusal
    loc = str(image["location"])
    if loc.startswith(("http://", "https://")):
        iso = _fetch(loc, image.get("digest"), say, "Windows install ISO", decompress=False)
    else:
        iso = winmedia.require_iso(loc, cfg["arch"], image_pos=image_pos)
        if image.get("digest"):
            iso = _fetch(loc, image.get("digest"), say, "Windows install ISO", decompress=False)
    info, warnings = winmedia.inspect_iso_lenient(iso)
    win = (cfg.get("osOpts") or {}).get("Windows") or {}
    index, name, more = winmedia.choose_image(
        info, arch=cfg["arch"], edition=win.get("edition"), image_index=win.get("imageIndex")
    )
    for w in [*warnings, *more]:
        say(f"warning: {w}")
    say(f"Windows image: index {index}" + (f" ({name})" if name else ""))
    return iso.resolve()


def create(
    locator: str,
    *,
    name: str | None = None,
    sets: Sequence[str] = (),
    say: Say = _quiet,
    for_start: bool = False,
) -> store.Instance:
    """Create the instance; `for_start` also refuses what would stop the boot that follows (a taken
    ssh.localPort) before the instance exists, so a failed `start TEMPLATE` leaves nothing behind."""
    from limapy import disk
    from limapy.config import check
    from limapy.config.load import dump_yaml

    doc = load_template(locator, sets)
    name = name or doc.name_hint or "default"
    if locator == "-" and not name:
        raise UsageError("a template read from stdin needs --name")
    store.validate_name(name)
    if store.instance_dir(name).joinpath("lima.yaml").exists():
        raise LimapyError(f"instance `{name}` already exists", hint=f"run `limapy start {name}`, or pick --name")
    loaded = check(doc, name=name, instance_dir=store.instance_dir(name))
    for w in loaded.warnings:
        say(w)
    cfg = loaded.cfg
    if for_start:
        from limapy.boot import check_ssh_port

        check_ssh_port(cfg)
    pos, image = pick_image(cfg)
    size = parse_size(cfg["disk"])
    windows = cfg.get("os") == "Windows"
    iso_path = windows_checks(cfg, pos, image, say) if windows else None

    with store.creating(name) as tmp:
        store.atomic_write(tmp / "lima.yaml", dump_yaml(doc.data).encode(), 0o644)
        store.atomic_write(tmp / "lima-version", (LIMA_COMPAT_VERSION + "\n").encode(), 0o444)
        if windows:
            assert iso_path is not None
            (tmp / "iso").symlink_to(iso_path)
            disk.create_empty(tmp / "disk", size)
            for vw in (cfg.get("osOpts") or {}).get("Windows", {}).get("virtioWin") or []:
                if isinstance(vw, dict) and vw.get("arch", cfg["arch"]) == cfg["arch"]:
                    path = _fetch(str(vw["location"]), vw.get("digest"), say, "virtio-win ISO", decompress=False)
                    (tmp / "virtio-win").symlink_to(path.resolve())
                    break
        else:
            base = _fetch(str(image["location"]), image.get("digest"), say, "image")
            if disk.is_iso9660(base):
                (tmp / "iso").symlink_to(base.resolve())
                disk.create_empty(tmp / "disk", size)
            else:
                say("creating the disk (qcow2 overlay on the image)")
                disk.create_overlay(base.resolve(), tmp / "disk", size)
            for sub, fname in (("kernel", "kernel"), ("initrd", "initrd")):
                f = image.get(sub)
                if isinstance(f, dict) and f.get("location"):
                    src = _fetch(str(f["location"]), f.get("digest"), say, sub, decompress=False)
                    _link_or_copy(src, tmp / fname)
                    if sub == "kernel" and f.get("cmdline"):
                        store.atomic_write(tmp / "kernel.cmdline", str(f["cmdline"]).encode(), 0o644)
    return store.Instance(name, store.instance_dir(name))
