"""What a template from the network may name (DESIGN, "Threat model"): no file on this host, and no loopback,
link-local or private address, unless the user passes `--allow-local-files`.

`base:` and provision/probe `file:` references are checked while they are read (config.locate). Everything
limapy reads or fetches later is checked here, on the embedded document, by where each field came from (its
mark): a field set by a network template (directly or through any chain of `base:` from the network) may not
- name host files to read or write later (`copyToHost[].host`, `caCerts.files`);
- name a host path as a file to use (`images[].location`, its `kernel`/`initrd`, `firmware.images[]`,
  `osOpts.Windows.virtioWin[]`/`opensshMsi`): the file would become the guest's disk, kernel, firmware or
  install media (`location: ~/.ssh/id_rsa`);
- name a URL whose host is, as written, a local address. What it resolves to is checked when it is fetched
  (`guard_for` gives create the Guard for each URL; limapy.base.netpolicy).
Each refusal is one line: position, field, value, and why; the hint names `--allow-local-files`. A URL on the
network template's own origin is allowed: the user chose to fetch from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from limapy.base import netpolicy
from limapy.config.yamlread import NodePath, format_path

#: Fields naming host files that limapy reads or writes later (not at load time, unlike provision `file:`).
HOST_FILE_FIELDS = (("copyToHost", "host", "write"), ("caCerts", "files", "read"))


def _entries(node: Any) -> list[tuple[int | None, Any]]:
    """A list's (index, item); a lone mapping (opensshMsi may be one) as (None, it)."""
    if isinstance(node, list):
        return list(enumerate(node))
    return [(None, node)] if isinstance(node, dict) else []


def located_fields(data: dict[str, Any]) -> Iterator[tuple[NodePath, Any]]:
    """(path, value) of every field naming a file limapy fetches or uses: images and their kernel/initrd,
    firmware images, the Windows virtio-win ISOs and OpenSSH MSIs."""
    for i, img in _entries(data.get("images")):
        if not isinstance(img, dict) or i is None:
            continue
        yield ("images", i, "location"), img.get("location")
        for part in ("kernel", "initrd"):
            if isinstance(img.get(part), dict):
                yield ("images", i, part, "location"), img[part].get("location")
    fw = data.get("firmware")
    for i, f in _entries(fw.get("images") if isinstance(fw, dict) else None):
        if isinstance(f, dict) and i is not None:
            yield ("firmware", "images", i, "location"), f.get("location")
    os_opts = data.get("osOpts")
    win = os_opts.get("Windows") if isinstance(os_opts, dict) else None
    if isinstance(win, dict):
        for key in ("virtioWin", "opensshMsi"):
            for i, f in _entries(win.get(key)):
                if isinstance(f, dict):
                    yield ("osOpts", "Windows", key, *(() if i is None else (i,)), "location"), f.get("location")


def _host_file_items(data: dict[str, Any]) -> Iterator[tuple[NodePath, Any, str, str]]:
    for section, key, verb in HOST_FILE_FIELDS:
        if section == "copyToHost":
            for i, e in _entries(data.get("copyToHost")):
                if isinstance(e, dict) and i is not None:
                    yield ("copyToHost", i), e.get("host"), f"{section}.{key}", verb
        else:
            ca = data.get("caCerts")
            for i, f in _entries(ca.get("files") if isinstance(ca, dict) else None):
                if i is not None:
                    yield ("caCerts", "files", i), f, f"{section}.{key}", verb


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def problems(doc: Any) -> list[str]:
    """Every refusal for what the network parts of `doc` name (empty when it has none, or the user allowed)."""
    if not doc.remote_sources or doc.allow_local:
        return []
    out = []
    for path, value, field, verb in _host_file_items(doc.data):
        if doc.mark(path)[0] in doc.remote_sources:
            out.append(f"{doc.where(path)}: refusing to {verb} the host file `{value}` ({field}): this template "
                       "came from the network")  # fmt: skip
    for path, value in located_fields(doc.data):
        source = doc.mark(path)[0]
        if source not in doc.remote_sources or not isinstance(value, str) or not value:
            continue
        field = format_path(path)
        if not is_url(value):
            out.append(f"{doc.where(path)}: refusing to use the host file `{value}` ({field}): this template came "
                       "from the network")  # fmt: skip
            continue
        origin = doc.origins.get(source, source)
        why = None if netpolicy.same_origin(value, origin) else netpolicy.literal_problem(value)
        if why is not None:
            out.append(f"{doc.where(path)}: refusing to fetch `{value}` ({field}): {why}, and this template came "
                       "from the network")  # fmt: skip
    return out


def guard_for(doc: Any, url: str) -> netpolicy.Guard | None:
    """The Guard a fetch of `url` at create needs: when the document came (in part) from the network and the
    user did not allow local files, every URL is guarded unless only local parts of it name it; the origin
    exempted is the network template's that names it."""
    if not doc.remote_sources or doc.allow_local or not is_url(url):
        return None
    named_by = [(path, doc.mark(path)[0]) for path, value in located_fields(doc.data) if value == url]
    if named_by and all(source not in doc.remote_sources for _, source in named_by):
        return None  # the user's own file (or --set) names it
    remote = [(path, source) for path, source in named_by if source in doc.remote_sources]
    if not remote:  # named by a layer not in the document (_config/*.yaml): guarded, no origin
        return netpolicy.Guard()
    path, source = remote[0]
    return netpolicy.Guard(f"{doc.where(path)}: {format_path(path)}", origin=doc.origins.get(source, source))
