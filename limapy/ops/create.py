"""Create an instance from a template: validate, fetch, build the disk, and only then make the dir appear.

Everything that can fail (config, downloads, digests, missing ISOs, swtpm) happens inside
`store.creating()`, whose temp dir is removed on any error: no half-created instance is ever left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limapy import LIMA_COMPAT_VERSION, store
from limapy.edits import Edit
from limapy.errors import LimapyError, UsageError
from limapy.units import parse_size

Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def load_template(locator: str, sets: Sequence[str | Edit], *, allow_local: bool = False) -> Any:
    """The template with the edits applied; each edited field's position names the edit (`--set '...'`,
    `--cpus 4`), so a problem with it is blamed on the flag, not on the template's first line."""
    from limapy import edits
    from limapy.config.load import load
    from limapy.ops.fetch import template_fetcher

    doc = load(locator, fetcher=template_fetcher, allow_local=allow_local)
    for item in sets:
        edit = edits.Edit.of(item)
        for path in edits.apply(doc.data, edit.expr):
            n = len(path)
            doc.marks = {p: m for p, m in doc.marks.items() if p[:n] != path}
            doc.marks[path] = (edit.origin, 0, 0)
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
            return download.fetch(location, digest=digest, decompress=decompress, progress=progress, say=progress.say)
    return download.fetch(location, digest=digest, decompress=decompress)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


@dataclass
class WindowsMedia:
    """What `create` fetched and checked for a Windows instance, to link into its directory."""

    iso: Path
    virtio_win: Path | None
    openssh_msi: Path | None


def windows_checks(cfg: dict[str, Any], image_pos: int, image: dict[str, Any], say: Say) -> WindowsMedia:
    """The install ISO exists, is for this arch, and holds the edition asked for; swtpm when tpm is on;
    Server media is x86_64 and evaluation or keyed; virtio-win and the OpenSSH MSI are fetched and checked."""
    from limapy import winedition, winmedia, winmsi
    from limapy.config import winopts

    if cfg.get("tpm"):
        from limapy.qemu.tpm import find_swtpm

        find_swtpm()  # first: no progress lines before a refusal
    arch = str(cfg["arch"])
    msi_entry = winopts.openssh_msi(cfg)
    if winopts.openssh_msis(cfg) and msi_entry is None:
        have = ", ".join(winopts.entry_arches(winopts.windows_opts(cfg).get("opensshMsi"), arch))
        raise LimapyError(
            f"osOpts.Windows.opensshMsi has no entry for arch {arch} (it has: {have})",
            hint=f"add the {arch} MSI with `arch: {arch}`, or remove opensshMsi to install OpenSSH from Windows Update",
        )
    loc = str(image["location"])
    if loc.startswith(("http://", "https://")):
        iso = _fetch(loc, image.get("digest"), say, "Windows install ISO", decompress=False)
    else:
        iso = winmedia.require_iso(loc, arch, image_pos=image_pos)
        if image.get("digest"):
            iso = _fetch(loc, image.get("digest"), say, "Windows install ISO", decompress=False)
    info, warnings = winmedia.inspect_iso_lenient(iso)
    win = winopts.windows_opts(cfg)
    index, name, more = winedition.choose_image(
        info, arch=arch, edition=win.get("edition"), image_index=win.get("imageIndex")
    )
    more += winedition.check_server_media(info, arch=arch, index=index, product_key=winopts.product_key(cfg))
    for w in [*warnings, *more]:
        say(f"warning: {w}")
    say(f"Windows image: index {index}" + (f" ({name})" if name else ""))
    msi = None
    if msi_entry is not None:
        mloc = str(msi_entry["location"])
        msi = _fetch(mloc, msi_entry.get("digest"), say, "OpenSSH MSI", decompress=False)
        winmsi.check_msi(msi, arch, mloc)
    vw = winopts.virtio_win(cfg)
    virtio = None
    if vw is not None:
        virtio = _fetch(str(vw["location"]), vw.get("digest"), say, "virtio-win ISO", decompress=False).resolve()
    return WindowsMedia(iso.resolve(), virtio, msi.resolve() if msi else None)


def stored_yaml(data: dict[str, Any]) -> tuple[str, str | None]:
    """lima.yaml as the instance keeps it, and the Windows product key taken out of it (kept 0600 apart)."""
    from limapy.config.load import dump_yaml

    win = (data.get("osOpts") or {}).get("Windows") if isinstance(data.get("osOpts"), dict) else None
    if not isinstance(win, dict) or win.get("productKey") in (None, ""):
        return dump_yaml(data), None
    import copy

    clean = copy.deepcopy(data)
    key = str(clean["osOpts"]["Windows"].pop("productKey")).strip()
    return dump_yaml(clean), key


def create(
    locator: str,
    *,
    name: str | None = None,
    sets: Sequence[str | Edit] = (),
    say: Say = _quiet,
    for_start: bool = False,
    allow_local: bool = False,
) -> store.Instance:
    """Create the instance; `for_start` also refuses what would stop the boot that follows (a taken
    ssh.localPort) before the instance exists, so a failed `start TEMPLATE` leaves nothing behind."""
    from limapy import disk
    from limapy.config import check

    doc = load_template(locator, sets, allow_local=allow_local)
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
    from limapy import preflight
    from limapy.config import hostinfo

    preflight.check(cfg, instance_dir=store.instance_dir(name), host=hostinfo.detect(), say=say)
    if for_start:
        from limapy.boot import check_ssh_port

        check_ssh_port(cfg)
    pos, image = pick_image(cfg)
    size = parse_size(cfg["disk"])
    windows = cfg.get("os") == "Windows"
    media = windows_checks(cfg, pos, image, say) if windows else None
    text, product_key = stored_yaml(doc.data)

    with store.creating(name) as tmp:
        store.atomic_write(tmp / "lima.yaml", text.encode(), 0o644)
        store.atomic_write(tmp / "lima-version", (LIMA_COMPAT_VERSION + "\n").encode(), 0o444)
        if product_key is not None:
            store.atomic_write(tmp / "windows-product-key", (product_key + "\n").encode(), 0o600)
        if media is not None:
            (tmp / "iso").symlink_to(media.iso)
            disk.create_empty(tmp / "disk", size)
            if media.virtio_win is not None:
                (tmp / "virtio-win").symlink_to(media.virtio_win)
            if media.openssh_msi is not None:
                (tmp / "openssh-msi").symlink_to(media.openssh_msi)
        else:
            base = _fetch(str(image["location"]), image.get("digest"), say, "image")
            if disk.is_iso9660(base):
                (tmp / "iso").symlink_to(base.resolve())
                disk.create_empty(tmp / "disk", size)
            else:
                say("creating the disk (qcow2 overlay on the image)")
                disk.create_overlay(base.resolve(), tmp / "disk", size)
                disk.record_base(tmp, base.resolve())
            for sub, fname in (("kernel", "kernel"), ("initrd", "initrd")):
                f = image.get(sub)
                if isinstance(f, dict) and f.get("location"):
                    src = _fetch(str(f["location"]), f.get("digest"), say, sub, decompress=False)
                    _link_or_copy(src, tmp / fname)
                    if sub == "kernel" and f.get("cmdline"):
                        store.atomic_write(tmp / "kernel.cmdline", str(f["cmdline"]).encode(), 0o644)
    return store.Instance(name, store.instance_dir(name))
