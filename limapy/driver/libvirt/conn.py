"""Talking to libvirtd: the binding (imported only here, only when a libvirt instance is used), the
connection, limapy's storage pool and its volumes.

Every file a domain uses is a volume in the pool `limapy` on the libvirt host (DESIGN.md, "libvirt driver"):
the same code serves a local daemon, whose QEMU runs as another user and cannot enter the 0700 instance
dir, and a remote one, which cannot see this machine's files at all. Bases are shared by content digest and
removed with the last overlay on them; everything else is the instance's own and goes with it.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from limapy.base.errors import ExternalToolError, LimapyError
from limapy.driver.libvirt.domain import parse as parse_xml

log = logging.getLogger("limapy.driver.libvirt")

POOL = "limapy"
ENV_POOL = "LIMAPY_LIBVIRT_POOL"
#: A base volume is complete only once its marker volume exists (an interrupted upload is not a base).
DONE_SUFFIX = ".done"
CHUNK = 1 << 20
INSTALL_HINT = (
    "install the libvirt Python binding in limapy's environment (`pip install libvirt-python`, which needs "
    "Debian's `libvirt-dev`; hack/setup.sh does it) and a libvirt daemon (`libvirt-daemon-system`)"
)

Say = Callable[[str], None]


def vol_name(instance: str, what: str) -> str:
    """An instance's own volume: `limapy-NAME.qcow2` (its disk), `limapy-NAME-cidata.iso`, ..."""
    return f"limapy-{instance}{what}"


def base_name(digest: str) -> str:
    """A shared base, named by its content digest."""
    return f"limapy-base-{digest.split(':')[-1][:24]}.qcow2"


def binding() -> Any:
    """The `libvirt` module, or one line naming what to install."""
    try:
        import libvirt  # type: ignore[import-untyped]
    except ImportError:
        raise ExternalToolError("the libvirt driver needs the libvirt Python binding", hint=INSTALL_HINT) from None
    # libvirt prints every error on stderr by default: limapy reports them itself, once
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def error_text(e: Exception) -> str:
    get = getattr(e, "get_error_message", None)
    msg = get() if callable(get) else None
    return str(msg or e)


def connect(uri: str | None) -> Any:
    lv = binding()
    try:
        return lv.open(uri)
    except lv.libvirtError as e:
        raise LimapyError(
            f"cannot connect to libvirt at {uri or 'the default URI'}: {error_text(e)}",
            hint="is libvirtd running there (`virsh -c URI version`)?",
        ) from None


def lookup_domain(conn: Any, name: str) -> Any | None:
    lv = binding()
    try:
        return conn.lookupByName(name)
    except lv.libvirtError as e:
        if e.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
            return None
        raise LimapyError(f"libvirt: {error_text(e)}") from None


def pool_name() -> str:
    return (os.environ.get(ENV_POOL) or "").strip() or POOL


def pool_target(conn: Any) -> str:
    """Where a new limapy pool keeps its volumes: beside libvirt's `default` pool when there is one."""
    lv = binding()
    try:
        default = conn.storagePoolLookupByName("default")
        path = parse_xml(default.XMLDesc(0)).findtext("target/path")
        if path:
            return str(Path(path) / "limapy")
    except lv.libvirtError:
        pass
    if conn.getURI().rstrip("/").endswith("/system"):
        return "/var/lib/libvirt/images/limapy"
    raise LimapyError(
        f"libvirt at {conn.getURI()} has no storage pool `{pool_name()}` and no `default` pool to put it beside",
        hint=f"create a directory pool named {pool_name()} (`virsh pool-define-as {pool_name()} dir --target DIR`)",
    )


def ensure_pool(conn: Any) -> Any:
    """limapy's storage pool on that host, defined, built and started when missing."""
    lv = binding()
    name = pool_name()
    try:
        pool = conn.storagePoolLookupByName(name)
    except lv.libvirtError:
        root = ET.Element("pool", {"type": "dir"})
        ET.SubElement(root, "name").text = name
        ET.SubElement(ET.SubElement(root, "target"), "path").text = pool_target(conn)
        try:
            pool = conn.storagePoolDefineXML(ET.tostring(root, encoding="unicode"), 0)
            pool.build(0)
            pool.setAutostart(1)
        except lv.libvirtError as e:
            raise LimapyError(f"cannot create libvirt storage pool `{name}`: {error_text(e)}") from None
    try:
        if not pool.isActive():
            pool.create(0)
        pool.refresh(0)
    except lv.libvirtError as e:
        raise LimapyError(f"libvirt storage pool `{name}` cannot be started: {error_text(e)}") from None
    return pool


def volume(pool: Any, name: str) -> Any | None:
    lv = binding()
    try:
        return pool.storageVolLookupByName(name)
    except lv.libvirtError:
        return None


def _vol_xml(name: str, capacity: int, fmt: str, backing: tuple[str, str] | None = None) -> str:
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", {"unit": "bytes"}).text = str(capacity)
    ET.SubElement(root, "allocation", {"unit": "bytes"}).text = "0"
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", {"type": fmt})
    ET.SubElement(ET.SubElement(target, "permissions"), "mode").text = "0600"
    if backing is not None:
        bs = ET.SubElement(root, "backingStore")
        ET.SubElement(bs, "path").text = backing[0]
        ET.SubElement(bs, "format", {"type": backing[1]})
    return ET.tostring(root, encoding="unicode")


def delete_volume(pool: Any, name: str) -> bool:
    vol = volume(pool, name)
    if vol is None:
        return False
    lv = binding()
    try:
        vol.delete(0)
    except lv.libvirtError as e:
        raise LimapyError(f"cannot delete libvirt volume {name}: {error_text(e)}") from None
    return True


def upload(conn: Any, pool: Any, name: str, src: Path, say: Say | None = None) -> Any:
    """`src`'s bytes as volume `name` (replaced when present), streamed (works on a remote host)."""
    lv = binding()
    delete_volume(pool, name)
    size = src.stat().st_size
    try:
        vol = pool.createXML(_vol_xml(name, max(size, 512), "raw"), 0)
        stream = conn.newStream(0)
        vol.upload(stream, 0, size, 0)
        sent, step = 0, max(size // 10, 64 << 20)
        next_report = step
        with open(src, "rb") as f:
            while chunk := f.read(CHUNK):
                stream.send(chunk)
                sent += len(chunk)
                if say is not None and sent >= next_report and size > (256 << 20):
                    say(f"uploading {src.name}: {sent * 100 // size}% of {size >> 20} MiB")
                    next_report += step
        stream.finish()
    except lv.libvirtError as e:
        delete_volume(pool, name)
        raise LimapyError(f"uploading {src} to libvirt volume {name} failed: {error_text(e)}") from None
    except BaseException:
        delete_volume(pool, name)  # a partial upload is never left to be mistaken for a complete one
        raise
    pool.refresh(0)  # libvirt reads the format (qcow2) back from the uploaded bytes
    return pool.storageVolLookupByName(name)


def ensure_base(conn: Any, pool: Any, name: str, src: Path, say: Say) -> str:
    """The shared base volume `name` (by content digest), uploaded once; its path on the libvirt host."""
    vol, done = volume(pool, name), volume(pool, name + DONE_SUFFIX)
    if vol is None or done is None:
        if done is not None:
            delete_volume(pool, name + DONE_SUFFIX)
        say(f"uploading the base image to libvirt storage pool `{pool.name()}` ({src.stat().st_size >> 20} MiB)")
        vol = upload(conn, pool, name, src, say)
        pool.createXML(_vol_xml(name + DONE_SUFFIX, 512, "raw"), 0)
    return str(vol.path())


def create_overlay(pool: Any, name: str, base_path: str, capacity: int, base_format: str = "qcow2") -> Any:
    lv = binding()
    delete_volume(pool, name)
    try:
        return pool.createXML(_vol_xml(name, capacity, "qcow2", (base_path, base_format)), 0)
    except lv.libvirtError as e:
        raise LimapyError(f"cannot create the disk volume {name}: {error_text(e)}") from None


def backing_of(vol: Any) -> str | None:
    return parse_xml(vol.XMLDesc(0)).findtext("backingStore/path")


def capacity(vol: Any) -> int:
    return int(vol.info()[1])


def allocation(vol: Any) -> int:
    return int(vol.info()[2])


def remove_unused_bases(pool: Any) -> list[str]:
    """Delete the base volumes no volume is backed by any more (with their markers); their names."""
    pool.refresh(0)
    vols = {v.name(): v for v in pool.listAllVolumes(0)}
    used = {b for v in vols.values() if (b := backing_of(v))}
    removed = []
    for name, vol in vols.items():
        if name.startswith("limapy-base-") and not name.endswith(DONE_SUFFIX) and str(vol.path()) not in used:
            delete_volume(pool, name)
            delete_volume(pool, name + DONE_SUFFIX)
            removed.append(name)
    return removed
