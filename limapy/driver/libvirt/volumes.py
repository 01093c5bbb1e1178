"""The libvirt driver's effects: the instance's files as volumes on the libvirt host, the domain defined, and
everything removed again at `delete`."""

from __future__ import annotations

import logging
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from typing import Any

from limapy import guest, ssh
from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.driver import media
from limapy.driver.libvirt import conn as lvconn
from limapy.driver.libvirt import domain, target
from limapy.driver.plan import BootPlan
from limapy.guest.boot import CD_DRIVERS
from limapy.instance import disk, store

log = logging.getLogger("limapy.driver.libvirt")

#: The volumes an instance owns (limapy.driver.libvirt.conn.vol_name); bases are shared by digest.
OWN_VOLUMES = (".qcow2", "-cidata.iso", "-install.iso", "-virtio-win.iso", "-kernel", "-initrd")


def _say(msg: str) -> None:
    log.info("%s", msg)


def _import_disk(conn: Any, pool: Any, inst: store.Instance) -> Any:
    """The instance's disk as volume `limapy-NAME.qcow2`: an overlay on the shared base (uploaded once, by
    digest) when the local disk is an overlay, else the local disk's bytes. The local disk stays as it was
    created; from now on the volume is the instance's disk."""
    name = lvconn.vol_name(inst.name, ".qcow2")
    base = disk.backing_file(inst.disk)
    if base is not None:
        from limapy.base import imagecheck
        from limapy.download import identity

        fmt = imagecheck.verify(base, f"the base image of `{inst.name}`").format  # libvirt is told, never probes
        base_path = lvconn.ensure_base(conn, pool, lvconn.base_name(identity(base).digest), base, _say)
        return lvconn.create_overlay(pool, name, base_path, disk.virtual_size(inst.disk), fmt)
    return lvconn.upload(conn, pool, name, inst.disk, _say)


def _upload_if_missing(conn: Any, pool: Any, name: str, src: Any) -> None:
    if lvconn.volume(pool, name) is None:
        lvconn.upload(conn, pool, name, src.resolve(), _say)


def write_ssh_config(inst: store.Instance, spec: Spec, port: int) -> None:
    """ssh.config as for QEMU; for a remote libvirt host the guest's port is that host's, reached through it
    (`ssh.proxy` holds the hop, limapy.ssh adds it to every ssh it runs)."""
    jump = target.parse(target.uri_of(inst))
    proxy = inst.dir / target.PROXY_FILE
    if jump is None:
        proxy.unlink(missing_ok=True)
    else:
        # `ssh -W` through the host, as ProxyJump does, with the URI's key and host-key policy
        store.atomic_write(proxy, f"ProxyCommand {jump.proxy_command()}\n".encode(), 0o600)
    key_path, _ = store.ensure_user_key()
    ssh.write_ssh_config(inst, spec, key_path, port)


def materialize(inst: store.Instance, spec: Spec, plan: BootPlan) -> None:
    from limapy.driver import suspended

    store.check_links(inst)
    if plan.discard_state:
        suspended.discard(inst)
    conn = lvconn.connect(target.uri_of(inst))
    lv = lvconn.binding()
    try:
        pool = lvconn.ensure_pool(conn)
        dname = domain.domain_name(inst.name)
        dom = lvconn.lookup_domain(conn, dname)
        if plan.discard_state and dom is not None and dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)
        vol = lvconn.volume(pool, lvconn.vol_name(inst.name, ".qcow2"))
        if vol is None:
            vol = _import_disk(conn, pool, inst)
        if not plan.resume and lvconn.capacity(vol) < plan.disk_size:
            vol.resize(plan.disk_size, 0)
        if plan.media is not None:
            media.write(inst, spec, plan.media)
            lvconn.upload(conn, pool, lvconn.vol_name(inst.name, "-cidata.iso"), plan.media.path)
        # install media while an install goes on, an ISO image (a guest that boots it) whenever there is one
        installs = guest.for_spec(spec).installs
        if plan.install or (not installs and inst.iso.exists()):
            _upload_if_missing(conn, pool, lvconn.vol_name(inst.name, "-install.iso"), inst.iso)
        elif installs:
            for what in ("-install.iso", "-virtio-win.iso"):  # installed: the media go
                lvconn.delete_volume(pool, lvconn.vol_name(inst.name, what))
        drivers = plan.devices is not None and any(cd.media == CD_DRIVERS for cd in plan.devices.cds)
        if plan.install and drivers and inst.virtio_win.exists():
            _upload_if_missing(conn, pool, lvconn.vol_name(inst.name, "-virtio-win.iso"), inst.virtio_win)
        if inst.kernel.exists():
            _upload_if_missing(conn, pool, lvconn.vol_name(inst.name, "-kernel"), inst.kernel)
            if inst.initrd.exists():
                _upload_if_missing(conn, pool, lvconn.vol_name(inst.name, "-initrd"), inst.initrd)
        if not plan.resume:
            xml = plan.document
            if dom is not None:  # a redefinition keeps the domain's identity (libvirt refuses another UUID)
                root = domain.parse(xml)
                ET.SubElement(root, "uuid").text = dom.UUIDString()
                xml = ET.tostring(root, encoding="unicode")
            try:
                conn.defineXML(xml)
            except lv.libvirtError as e:
                raise LimapyError(f"libvirt refused the domain of `{inst.name}`: {lvconn.error_text(e)}") from None
    finally:
        conn.close()
    if plan.rdp_port:
        store.atomic_write(inst.rdp_port_file, f"{plan.rdp_port}\n".encode(), 0o600)
    write_ssh_config(inst, spec, plan.ssh_port)


def remove(inst: store.Instance) -> None:
    """Undefine the domain (with its NVRAM, TPM state and saved state) and delete the instance's volumes, and
    a base no other volume stands on: nothing of the instance is left on the libvirt host."""
    try:
        uri = target.uri_of(inst)
    except LimapyError:
        return  # never got as far as a libvirt host
    conn = lvconn.connect(uri)
    lv = lvconn.binding()
    try:
        dom = lvconn.lookup_domain(conn, domain.domain_name(inst.name))
        if dom is not None:
            if dom.isActive():
                dom.destroy()
            flags = (lv.VIR_DOMAIN_UNDEFINE_NVRAM | lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                     | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                     | getattr(lv, "VIR_DOMAIN_UNDEFINE_TPM", 0))  # fmt: skip
            try:
                dom.undefineFlags(flags)
            except lv.libvirtError as e:
                raise LimapyError(f"libvirt could not undefine {dom.name()}: {lvconn.error_text(e)}") from None
        try:
            pool = conn.storagePoolLookupByName(lvconn.pool_name())
        except lv.libvirtError:
            return
        pool.refresh(0)
        for what in OWN_VOLUMES:  # by exact name: instance `a` never takes `a-b`'s volumes
            lvconn.delete_volume(pool, lvconn.vol_name(inst.name, what))
        lvconn.remove_unused_bases(pool)
    finally:
        conn.close()


def to_png(data: bytes, mime: str) -> bytes:
    """A libvirt screenshot (PPM, P6) as PNG; a PNG is returned as it is."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", data)  # one whitespace byte, then the pixels
    if m is None:
        raise LimapyError(f"libvirt returned a screenshot limapy cannot read ({mime})")
    width, height, maxval = int(m[1]), int(m[2]), int(m[3])
    if maxval != 255:
        raise LimapyError(f"libvirt screenshot with {maxval + 1} levels per colour; limapy reads 256")
    pixels = data[m.end() : m.end() + width * height * 3]
    if len(pixels) != width * height * 3:
        raise LimapyError(f"libvirt returned a truncated screenshot ({len(pixels)} of {width * height * 3} bytes)")
    raw = b"".join(b"\x00" + pixels[y * width * 3 : (y + 1) * width * 3] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
