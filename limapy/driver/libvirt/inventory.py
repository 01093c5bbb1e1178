"""The limapy domains on a libvirt host: `limapy list --connect URI`.

Every domain limapy defines carries `<metadata><limapy:instance name= dir= host=/>` (limapy.driver.libvirt.domain):
that is how a domain made by this machine, by another machine's limapy (a team's KVM server) or left behind
by an instance directory that is gone is told from the host's other domains, which are never listed.
"""

from __future__ import annotations

import os
from typing import Any

from limapy.driver.libvirt import conn as lvconn
from limapy.driver.libvirt import domain, target
from limapy.instance import store


def _status(dom: Any, lv: Any) -> str:
    state = dom.state()[0]
    if state in (lv.VIR_DOMAIN_RUNNING, lv.VIR_DOMAIN_BLOCKED):
        return "Running"
    if state == lv.VIR_DOMAIN_PAUSED:
        return "Paused"
    if dom.hasManagedSaveImage(0):
        return "Suspended"
    return "Stopped"


def _here(meta: dict[str, str], uri: str) -> bool:
    """Whether this machine's limapy has the instance the domain belongs to (same name, same dir, on this
    libvirt host): an instance dir that is gone, or another machine's, is not."""
    name = meta.get("name", "")
    try:
        inst = store.Instance(name, store.instance_dir(name))
    except Exception:  # a name this limapy would not accept is not one of its instances
        return False
    if str(inst.dir) != meta.get("dir") or meta.get("host", os.uname().nodename) != os.uname().nodename:
        return False
    try:
        return target.uri_of(inst) in (uri, _canonical(uri))
    except Exception:  # no libvirt instance there
        return False


def _canonical(uri: str) -> str:
    return uri.split("?", 1)[0]


def domains(uri: str | None) -> list[dict[str, Any]]:
    """limapy's domains on that host, by instance name: name, status, domain, host (the machine whose limapy
    made it), here (this machine's limapy has the instance), dir (on that machine)."""
    lv = lvconn.binding()
    conn = lvconn.connect(uri)
    try:
        asked = uri or conn.getURI()
        rows = []
        for dom in conn.listAllDomains(0):
            try:
                meta = domain.metadata_of(dom.XMLDesc(0))
                if meta is None:
                    continue
                status = _status(dom, lv)
            except lv.libvirtError:  # undefined while we looked
                continue
            rows.append({
                "name": meta.get("name", ""), "status": status, "domain": dom.name(),
                "host": meta.get("host", ""), "here": _here(meta, asked), "dir": meta.get("dir", ""),
            })  # fmt: skip
    finally:
        conn.close()
    return sorted(rows, key=lambda r: (r["name"], r["domain"]))
