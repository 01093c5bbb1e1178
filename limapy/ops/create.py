"""Create an instance from a template: validate, fetch, build the disk, and only then make the dir appear.

Everything that can fail (config, downloads, digests, missing ISOs, swtpm) happens inside
`store.creating()`, whose temp dir is removed on any error: no half-created instance is ever left.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from limapy import LIMA_COMPAT_VERSION
from limapy.base.errors import LimapyError, UsageError
from limapy.config.model import Spec
from limapy.driver import Fetched
from limapy.expr.edits import Edit
from limapy.instance import store

Say = Callable[[str], None]
#: The netpolicy.Guard a URL needs (config.trust.guard_for: what a network template named), or None.
Guards = Callable[[str], Any]


def _quiet(_msg: str) -> None:
    pass


def _unguarded(_url: str) -> None:
    return None


def load_template(
    locator: str, sets: Sequence[str | Edit], *, allow_local: bool = False, names_instance: bool = False
) -> Any:
    """The template with the edits applied; each edited field's position names the edit (`--set '...'`,
    `--cpus 4`), so a problem with it is blamed on the flag, not on the template's first line.
    `names_instance`: the template's file name becomes the instance name, so it must be a valid one."""
    from limapy.config.load import load
    from limapy.expr import edits
    from limapy.ops.fetch import template_fetcher

    doc = load(locator, fetcher=template_fetcher, allow_local=allow_local, check_name=names_instance)
    for item in sets:
        edit = edits.Edit.of(item)
        if edit.must_exist and not edits.target_exists(doc.data, edit.expr):
            what = edit.expr.partition("=")[0].strip()
            raise UsageError(f"{edit.origin}: the template does not define `{what}`", hint="see its `param:` section")
        for path in edits.apply(doc.data, edit.expr):
            n = len(path)
            doc.marks = {p: m for p, m in doc.marks.items() if p[:n] != path}
            doc.marks[path] = (edit.origin, 0, 0)
            for k in range(1, n):  # a field the edit made to hold it (`.foo.bar = 1` makes `foo`) is the edit's too
                doc.marks.setdefault(path[:k], (edit.origin, 0, 0))
    return doc


def _fetch(location: str, digest: str | None, say: Say, what: str, decompress: bool = True,
           guards: Guards = _unguarded) -> Path:  # fmt: skip
    from limapy import download

    if location.startswith(("http://", "https://")):
        guard = guards(location)
        if guard is not None:
            guard.check_url(location)  # before anything is printed: a refusal is the only line
        # the reporter prints `downloading WHAT: URL` once bytes move: a cache hit prints nothing
        with download.ProgressReporter(what, location) as progress:
            return download.fetch(location, digest=digest, decompress=decompress, progress=progress, say=progress.say,
                                  guard=guard)  # fmt: skip
    return download.fetch(location, digest=digest, decompress=decompress)


def windows_media(spec: Spec, say: Say, guards: Guards = _unguarded) -> Fetched:
    """The install ISO exists, is for this arch, and holds the edition asked for;
    Server media is x86_64 and evaluation or keyed; virtio-win and the OpenSSH MSI are fetched and checked."""
    from limapy.guest.windows import edition as winedition
    from limapy.guest.windows import media as winmedia
    from limapy.guest.windows import msi as winmsi

    arch = spec.arch
    msi_entry = spec.openssh_msi
    if spec.windows.openssh_source == "msi" and msi_entry is None:
        have = ", ".join(sorted({f.arch for f in spec.windows.openssh_msi})) or "none"
        raise LimapyError(
            f"osOpts.Windows.opensshMsi has no entry for arch {arch} (it has: {have})",
            hint=f"add the {arch} MSI with `arch: {arch}`, or set `osOpts.Windows.opensshSource: capability` to "
            "install OpenSSH from Windows Update",
        )
    image = spec.image
    loc = image.location
    if loc.startswith(("http://", "https://")):
        iso = _fetch(loc, image.digest, say, "Windows install ISO", decompress=False, guards=guards)
    else:
        iso = winmedia.require_iso(loc, arch, image_pos=spec.images.index(image))
        if image.digest:
            iso = _fetch(loc, image.digest, say, "Windows install ISO", decompress=False)
    sel = winedition.select(iso, spec)  # refuses non-install media, and an image without a usable language
    assert sel.index is not None  # choose_image always names an index
    more = winedition.check_server_media(sel.info, arch=arch, index=sel.index, product_key=spec.windows.product_key)
    for w in [*sel.warnings, *more]:
        say(f"warning: {w}")
    say(f"Windows image: index {sel.index}" + (f" ({sel.name})" if sel.name else "") + f", language {sel.locale.ui}"
        + (f" (format and keyboard {sel.locale.locale})" if sel.locale.locale != sel.locale.ui else ""))  # fmt: skip
    msi = None
    if msi_entry is not None:
        try:
            msi = _fetch(msi_entry.location, msi_entry.digest, say, "OpenSSH MSI", decompress=False, guards=guards)
        except LimapyError as e:
            if e.hint is not None:
                raise
            raise LimapyError(
                e.message,
                hint="offline? point osOpts.Windows.opensshMsi at a local copy of the MSI (the same digest), or set "
                "`osOpts.Windows.opensshSource: capability` to install OpenSSH from Windows Update",
                exit_code=e.exit_code,
            ) from None
        winmsi.check_msi(msi, arch, msi_entry.location)
    vw = spec.virtio_win
    virtio = None
    if vw is not None:
        virtio = _fetch(vw.location, vw.digest, say, "virtio-win ISO", decompress=False, guards=guards).resolve()
    return Fetched(
        disk_size=spec.disk, iso=iso.resolve(), virtio_win=virtio, openssh_msi=msi.resolve() if msi else None
    )


def linux_media(spec: Spec, say: Say, guards: Guards = _unguarded) -> Fetched:
    """The image (a disk image to make the overlay on, or an ISO to boot), and its kernel and initrd."""
    from limapy.instance import disk

    image = spec.image
    base = _fetch(image.location, image.digest, say, "image", guards=guards).resolve()
    kernel = initrd = None
    if image.kernel is not None:
        kernel = _fetch(image.kernel.location, image.kernel.digest, say, "kernel", decompress=False, guards=guards)
    if image.initrd is not None:
        initrd = _fetch(image.initrd.location, image.initrd.digest, say, "initrd", decompress=False, guards=guards)
    iso = disk.is_iso9660(base)
    if not iso:
        from limapy.base import imagecheck

        imagecheck.verify(base, image.location)  # before anything is made; the overlay checks it again
    return Fetched(
        disk_size=spec.disk,
        base=None if iso else base,
        iso=base if iso else None,
        kernel=kernel,
        initrd=initrd,
        kernel_cmdline=image.kernel_cmdline if kernel is not None else None,
    )


class _DryRun(Exception):
    """Raised inside `store.creating` once a dry run has seen the instance: its temp dir is removed."""


def create(
    locator: str,
    *,
    name: str | None = None,
    sets: Sequence[str | Edit] = (),
    say: Say = _quiet,
    for_start: bool = False,
    allow_local: bool = False,
    driver_name: str | None = None,
    connect: str | None = None,
    inspect: Callable[[store.Instance], None] | None = None,
) -> store.Instance:
    """Create the instance; `for_start` also refuses what would stop the boot that follows (a taken
    ssh.localPort) before the instance exists, so a failed `start TEMPLATE` leaves nothing behind.

    `inspect` makes it a dry run (`start --dry-run TEMPLATE`): it is called with the instance laid out in its
    temp dir, which is then removed; nothing is created (downloads stay in the cache, as any download does)."""
    from limapy import driver
    from limapy.base import dirs
    from limapy.config import check, hostinfo, trust
    from limapy.config.load import stored_yaml
    from limapy.download import refs
    from limapy.ops import preflight

    if locator == "-" and not name:
        raise UsageError("`create -` (a template on stdin) requires --name", hint="e.g. `limapy create --name vm -`")
    doc = load_template(locator, sets, allow_local=allow_local, names_instance=name is None)
    name = name or doc.name_hint or "default"
    store.validate_name(name)
    layout = store.Instance(name, store.instance_dir(name))
    if layout.lima_yaml.exists():
        raise LimapyError(f"instance `{name}` already exists", hint=f"run `limapy start {name}`, or pick --name")
    loaded = check(doc, name=name, instance_dir=layout.dir)
    for w in loaded.warnings:
        say(w)
    spec = loaded.spec
    preflight.check(spec, instance_dir=layout.dir, host=hostinfo.detect(), say=say, where=doc.where)
    drv_name = driver.chosen_for(spec, driver_name)
    if connect and drv_name != "libvirt":
        raise UsageError(f"--connect names a libvirt host; this instance's driver is {drv_name}",
                         hint="add `--driver libvirt`")  # fmt: skip
    from limapy.driver import hosttools

    hosttools.require(hosttools.Request.of(spec, drv_name, connect))  # QEMU, qemu-img, ...: before any download
    drv = driver.load(drv_name)
    drv.check(spec, connect)  # before any download: no progress lines ahead of a refusal
    if for_start:
        driver.check_ssh_port(spec)
    text, product_key = stored_yaml(doc.data, doc)
    # From before the downloads until the instance dir is in place: `prune` (any home) cannot remove the base
    # in between, and this home is known to the cache (download.refs).
    with refs.using(dirs.limapy_home()):
        guards = functools.partial(trust.guard_for, loaded.doc)
        fetched = windows_media(spec, say, guards) if spec.is_windows else linux_media(spec, say, guards)
        with store.creating(name) as tmp:
            new = store.Instance(name, tmp)
            store.atomic_write(new.lima_yaml, text.encode(), 0o644)
            store.atomic_write(new.lima_version, (LIMA_COMPAT_VERSION + "\n").encode(), 0o444)
            if product_key is not None:
                store.atomic_write(new.product_key_file, (product_key + "\n").encode(), 0o600)
            driver.record(tmp, drv_name, connect)
            drv.create(tmp, spec, fetched, say if inspect is None else _quiet)
            if inspect is not None:
                inspect(store.Instance(name, tmp))
                raise _DryRun
    return layout


def dry_run(locator: str, plan: Callable[[store.Instance], str], **kwargs: Any) -> str:
    """What `plan` says about the instance `create(locator, **kwargs)` would make, with its paths and MAC as
    they will be (it is laid out in a temp dir that is then removed): `start --dry-run TEMPLATE`."""
    from limapy.base import netutil

    seen: list[tuple[store.Instance, str]] = []
    try:
        create(locator, inspect=lambda tmp: seen.append((tmp, plan(tmp))), **kwargs)
    except _DryRun:
        pass
    (tmp, text), final = seen[0], store.instance_dir(seen[0][0].name)
    text = text.replace(netutil.mac_address(tmp.dir), netutil.mac_address(final))
    return text.replace(str(tmp.dir), str(final))
