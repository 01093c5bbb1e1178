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
from limapy.expr.edits import Edit
from limapy.guest import Get
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


def getter(say: Say, guards: Guards = _unguarded) -> Get:
    """How the guest OS's `fetch` (limapy.guest.GuestOS.fetch) gets a file: through the download cache, with
    progress and the network template's guard."""

    def get(location: str, digest: str | None, what: str, decompress: bool) -> Path:
        return _fetch(location, digest, say, what, decompress=decompress, guards=guards)

    return get


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
    from limapy import driver, guest
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
    os_ = guest.for_spec(spec)  # an `os` limapy cannot run is refused here, before anything else
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
        fetched = os_.fetch(spec, getter(say, guards), say)  # the image, or the install media and drivers
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
