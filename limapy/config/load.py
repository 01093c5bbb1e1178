"""Load a template: read it through its locator, parse it, and embed its `base:` templates.

Merge rules follow Lima's embedding (lima-reference.md §8): the including template wins for scalars
and maps (a base only fills what is missing or null); lists are appended (base after template) except
`provision` and `probes`, which are prepended (base first); `dns` comes from a base only when the
template has none; `mountTypesUnsupported` is uniqued; the higher `minimumLimaVersion` and
`vmOpts.qemu.minimumVersion` win. After all bases, list entries are combined: `additionalDisks` by
name, `mounts` by mountPoint (else location), `networks` by interface.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limapy.base.errors import ConfigError
from limapy.config.listmerge import entry_key, merge_entry
from limapy.config.locate import Fetcher, Located, PluginMissing, RemoteReadsLocal, locate, remote_url
from limapy.config.yamlread import MAX_BYTES, Mark, NodePath, Parsed, format_path, parse

MAX_INLINE_BYTES = 4 << 20
PREPENDED = ("provision", "probes")
#: `base:` chains: how deep one may nest, and how many templates one document may embed in all. Lima has no
#: such limit (only its loop check and its 4 MiB size limit); without one, a server answering every URL with
#: a template naming a new one made limapy fetch hundreds before Python's recursion limit stopped it.
MAX_BASE_DEPTH = 32
MAX_BASES = 256


@dataclass
class Document:
    """A loaded, base-embedded template: plain data plus where every node came from."""

    source: str
    data: dict[str, Any]
    marks: dict[NodePath, Mark] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    name_hint: str | None = None
    incomplete: bool = False  # a base could not be embedded (missing URL plugin): fields may be absent
    #: The sources (as marks name them) that came over the network: what they say may not read host files.
    remote_sources: set[str] = field(default_factory=set)
    #: For each of those, the origin (a URL) whose scheme, host and port it may name freely: the URL it was
    #: fetched from, or, for a template made up from an image URL a network template named, that template's.
    origins: dict[str, str] = field(default_factory=dict)
    allow_local: bool = False
    #: Every local file the document was read from (itself, its bases, provision files), and whether that is
    #: all of it (False when a part came from stdin or the network): what a cache of it is keyed by.
    files: list[Path] = field(default_factory=list)
    local: bool = True
    #: The text of every source (by the name marks use): where lima.yaml's comments are read from.
    texts: dict[str, list[str]] = field(default_factory=dict)

    def mark(self, path: NodePath) -> Mark:
        p = tuple(path)
        while p:
            m = self.marks.get(p)
            if m:
                return m
            p = p[:-1]
        return self.marks.get((), (self.source, 0, 0))

    def where(self, path: NodePath) -> str:
        src, line, col = self.mark(path)
        return f"{src}:{line}:{col}" if line else src


def load(
    locator: str, *, fetcher: Fetcher | None = None, embed: bool = True, allow_local: bool = False,
    check_name: bool = False,
) -> Document:
    """`allow_local`: a remote template may read host files (`--allow-local-files`); refused by default.
    `check_name`: the file's name names the instance, so it must be a valid name (Lima's limatmpl.Read checks
    it for the template and, always, for every base)."""
    located = locate(locator, fetcher=fetcher)
    if check_name:
        check_file_name(locator, located)
    doc = _from_located(located, fetcher, allow_local)
    if embed:
        doc = _embed(doc, located, fetcher, seen={located.key}, stack=(located.key,))
    return doc


def load_bytes(raw: bytes, source: str, *, directory: Path | None = None) -> Document:
    located = Located(source, source, raw, directory, None)
    doc = _from_located(located, None, False)
    return _embed(doc, located, None, seen={source}, stack=(source,))


def _from_located(located: Located, fetcher: Fetcher | None, allow_local: bool,
                  named_from: str | None = None) -> Document:  # fmt: skip
    """`named_from`: the origin of the network template whose `base:` this is."""
    parsed: Parsed = parse(located.raw, located.display)
    doc = Document(
        parsed.source, parsed.data, parsed.marks, list(located.warnings), name_hint=located.name_hint,
        allow_local=allow_local,
    )  # fmt: skip
    doc.texts[parsed.source] = located.raw.decode("utf-8", "replace").splitlines()
    if remote_url(located) is not None:
        doc.remote_sources.add(parsed.source)
        doc.origins[parsed.source] = named_from if located.synthesized and named_from else located.key
    _note_source(doc, located)
    _inline_files(doc, located, fetcher)
    return doc


def _note_source(doc: Document, located: Located) -> None:
    if located.file is None:
        doc.local = False
    else:
        doc.files.append(located.file)
        doc.files.extend(located.shadows)  # absent now: a stamp of None that must stay None


def _inline_files(doc: Document, located: Located, fetcher: Fetcher | None) -> None:
    """`provision[].file` / `probes[].file` are read, relative to their template, and become the entry's
    text as Lima embeds it: `content` of a `data` entry, `expression` of a `yq` entry, else `script`."""
    for section in PREPENDED:
        items = doc.data.get(section)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict) or item.get("file") in (None, ""):
                continue
            ref = item["file"]
            where = doc.where((section, i, "file"))
            if isinstance(ref, dict):
                if ref.get("digest"):
                    continue  # left in place: validation reports that digests are unsupported
                ref = ref.get("url")
            if not isinstance(ref, str) or not ref:
                raise ConfigError([f"{where}: field `{section}[{i}].file` must be a locator string"])
            try:
                inner = locate(
                    ref, relative_to=located.directory, fetcher=fetcher, remote_base=remote_url(located),
                    allow_local=doc.allow_local,
                )  # fmt: skip
            except RemoteReadsLocal as e:
                raise RemoteReadsLocal([f"{where}: {p}" for p in e.problems], e.hint) from None
            _note_source(doc, inner)
            if len(inner.raw) > MAX_INLINE_BYTES:
                raise ConfigError([f"{where}: `{ref}` is larger than 4 MiB"])
            target = {"data": "content", "yq": "expression"}.get(str(item.get("mode")), "script")
            text: str | bytes
            try:
                text = inner.raw.decode("utf-8")
            except UnicodeDecodeError:
                if target != "content":
                    raise ConfigError([f"{where}: `{ref}` is not UTF-8 text"],
                                      hint="a script or expression must be text; only a `mode: data` file may be "
                                           "binary") from None  # fmt: skip
                # a binary data file stays bytes: lima.yaml holds it as `!!binary` (base64), as Lima embeds it,
                # and the guest gets the very bytes
                text = bytes(inner.raw)
            # the text takes the place of `file:` (Lima renames the key, so it keeps its position and comments)
            fields = {target if k == "file" else k: text if k == "file" else v for k, v in item.items() if k != target}
            item.clear()
            item.update(fields)
            at = (section, i, "file")
            doc.marks = {p: m for p, m in doc.marks.items() if p[: len(at)] != at or p == at}
            if at in doc.marks:
                doc.marks[(section, i, target)] = doc.marks.pop(at)


def check_file_name(locator: str, located: Located) -> None:
    """Lima's InstNameFromYAMLPath (pkg/limatmpl/locator.go line 328): the name a template's file gives
    the instance must be an identifier."""
    from limapy.config.golang import go_q
    from limapy.config.idents import validate_identifier
    from limapy.config.locate import image_url

    if locator == "-" or image_url(locator) or located.name_hint is None:
        return
    err = validate_identifier(located.name_hint)
    if err:
        shown = locator.split(":", 1)[1] if locator.startswith("template:") else locator.rsplit("/", 1)[-1]
        raise ConfigError([f"{located.display}: filename {go_q(shown)} is invalid: {err}"])


def _base_locators(doc: Document) -> list[tuple[str, NodePath]]:
    base = doc.data.get("base")
    if base is None:
        return []
    items = base if isinstance(base, list) else [base]
    out: list[tuple[str, NodePath]] = []
    for i, item in enumerate(items):
        path: NodePath = ("base", i) if isinstance(base, list) else ("base",)
        if isinstance(item, dict):
            if item.get("digest"):  # pkg/limatmpl/embed.go line 76
                raise ConfigError([f"{doc.where(path)}: base `{item.get('url')}` in `{doc.source}` has specified a "
                                   "digest; digest support is not yet implemented"])  # fmt: skip
            item = item.get("url")
        if not isinstance(item, str) or not item:
            raise ConfigError([f"{doc.where(path)}: field `base` entries must be locator strings"])
        out.append((item, path))
    return out


def _embed(doc: Document, located: Located, fetcher: Fetcher | None, seen: set[str],
           stack: tuple[str, ...]) -> Document:  # fmt: skip
    """Embed `doc`'s bases (recursively). `seen`: every template embedded so far, in this whole embedding (Lima
    embeds each template only once: a base reached twice, through a loop or two paths, is an error); `stack`:
    the chain that led here (its length is bounded)."""
    bases = _base_locators(doc)
    if not bases:
        doc.data.pop("base", None)
        return doc
    wheres = [doc.where(path) for _, path in bases]  # before the `base` marks are dropped
    if len(stack) > MAX_BASE_DEPTH:
        raise ConfigError([f"{wheres[0]}: base templates nested more than {MAX_BASE_DEPTH} deep "
                           f"({stack[0]} -> ... -> {stack[-1]})"],
                          hint="a chain of `base:` this long is a loop through ever new URLs, or a mistake")
    if len(seen) - 1 + len(bases) > MAX_BASES:
        raise ConfigError([f"{wheres[0]}: more than {MAX_BASES} base templates in all (embedding {stack[0]})"],
                          hint="a template embeds at most that many bases, however they nest")  # fmt: skip
    doc.data.pop("base", None)
    doc.marks = {p: m for p, m in doc.marks.items() if not p or p[0] != "base"}
    for (loc, _), where in zip(bases, wheres, strict=True):
        try:
            blocated = locate(
                loc, relative_to=located.directory, fetcher=fetcher, remote_base=remote_url(located),
                allow_local=doc.allow_local,
            )  # fmt: skip
        except PluginMissing as e:
            doc.warnings.append(f"{where}: warning: base not embedded: {e.problems[0]}")
            doc.incomplete = True
            doc.local = False
            continue
        except RemoteReadsLocal as e:
            raise RemoteReadsLocal([f"{where}: base: {p}" for p in e.problems], e.hint) from None
        except ConfigError as e:
            raise ConfigError([f"{where}: base `{loc}`: {p}" for p in e.problems], e.hint) from None
        try:
            check_file_name(loc, blocated)
        except ConfigError as e:
            raise ConfigError([f"{where}: base `{loc}`: {p}" for p in e.problems]) from None
        if blocated.key in seen:  # pkg/limatmpl/embed.go line 91
            raise ConfigError([f"{where}: base template loop detected: template `{loc}` already included"])
        named_from = doc.origins.get(located.display) if remote_url(located) is not None else None
        bdoc = _from_located(blocated, fetcher, doc.allow_local, named_from)
        seen.add(blocated.key)
        bdoc = _embed(bdoc, blocated, fetcher, seen, (*stack, blocated.key))
        doc.warnings.extend(bdoc.warnings)
        doc.texts.update(bdoc.texts)
        doc.remote_sources |= bdoc.remote_sources
        doc.origins.update(bdoc.origins)
        doc.files += bdoc.files
        doc.local = doc.local and bdoc.local
        doc.incomplete = doc.incomplete or bdoc.incomplete
        data, marks = _merge_map(doc.data, doc.marks, bdoc.data, bdoc.marks, (), top=True)
        doc.data, doc.marks = data, marks
    _combine_lists(doc)
    return doc


def _sub(marks: dict[NodePath, Mark], prefix: NodePath) -> dict[NodePath, Mark]:
    n = len(prefix)
    return {p[n:]: m for p, m in marks.items() if p[:n] == prefix and len(p) > n}


def _put(marks: dict[NodePath, Mark], prefix: NodePath, rel: dict[NodePath, Mark]) -> None:
    for p, m in rel.items():
        marks[(*prefix, *p)] = m


def _version_key(v: Any) -> tuple[int, ...]:
    parts = []
    for piece in str(v).lstrip("v").split("-")[0].split("."):
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts)


def _merge_map(
    t: dict[str, Any],
    tm: dict[NodePath, Mark],
    b: dict[str, Any],
    bm: dict[NodePath, Mark],
    path: NodePath,
    *,
    top: bool = False,
) -> tuple[dict[str, Any], dict[NodePath, Mark]]:
    """Merge base map `b` into template map `t`; marks are relative to `path` (the full path is for rules)."""
    out = dict(t)
    om = dict(tm)
    for k, bv in b.items():
        kp: NodePath = (k,)
        tv = t.get(k)
        full = (*path, k)
        if top and k == "base":
            continue
        if tv is None:
            out[k] = copy.deepcopy(bv)
            for p in [p for p in om if p[:1] == kp]:
                del om[p]
            if kp in bm:
                om[kp] = bm[kp]
            _put(om, kp, _sub(bm, kp))
            continue
        if full in (("minimumLimaVersion",), ("vmOpts", "qemu", "minimumVersion")):
            if _version_key(bv) > _version_key(tv):
                out[k] = bv
            continue
        if isinstance(tv, dict) and isinstance(bv, dict):
            merged, mm = _merge_map(tv, _sub(tm, kp), bv, _sub(bm, kp), full)
            out[k] = merged
            for p in [p for p in om if p[:1] == kp and len(p) > 1]:
                del om[p]
            _put(om, kp, mm)
            continue
        if isinstance(tv, list) and isinstance(bv, list):
            if full == ("dns",):
                if not tv:
                    out[k] = copy.deepcopy(bv)
                    _put(om, kp, _sub(bm, kp))
                continue
            tsub, bsub = _sub(tm, kp), _sub(bm, kp)
            if full in (("provision",), ("probes",)):
                combined = copy.deepcopy(bv) + list(tv)
                fm, sm, shift = bsub, tsub, len(bv)
            else:
                combined = list(tv) + copy.deepcopy(bv)
                fm, sm, shift = tsub, bsub, len(tv)
            if full == ("mountTypesUnsupported",):
                seen: list[Any] = []
                for item in combined:
                    if item not in seen:
                        seen.append(item)
                combined = seen
            out[k] = combined
            for p in [p for p in om if p[:1] == kp and len(p) > 1]:
                del om[p]
            _put(om, kp, fm)
            _put(om, kp, {(p[0] + shift, *p[1:]): m for p, m in sm.items() if isinstance(p[0], int)})
            continue
        # scalars (and type clashes): the template wins
    return out, om


def _combine_lists(doc: Document) -> None:
    """After embedding: merge list entries that describe the same thing (first occurrence wins)."""
    keys = {"additionalDisks": ("name",), "mounts": ("mountPoint", "location"), "networks": ("interface",)}
    for section, fields in keys.items():
        items = doc.data.get(section)
        if not isinstance(items, list):
            continue
        result: list[Any] = []
        index_of: dict[str, int] = {}
        new_marks: dict[NodePath, Mark] = {}
        for i, item in enumerate(items):
            ident = entry_key(item, fields, bare_names=section == "additionalDisks")
            if section in ("networks", "additionalDisks") and ident == "*" and isinstance(item, dict):
                # a wildcard entry fills the fields every earlier entry lacks (a bare disk name becomes a map)
                key = fields[0]
                for j, prev in enumerate(result):
                    if isinstance(prev, str) and section == "additionalDisks":
                        prev = result[j] = {"name": prev}
                    if isinstance(prev, dict):
                        for fk, fv in item.items():
                            if fk != key and prev.get(fk) is None:
                                prev[fk] = copy.deepcopy(fv)
                continue
            if ident is not None and ident in index_of:
                prev = result[index_of[ident]]
                if isinstance(prev, dict) and isinstance(item, dict):
                    merge_entry(prev, item, later_wins=False)  # first occurrence wins
                continue
            if ident is not None:
                index_of[ident] = len(result)
            rel = _sub(doc.marks, (section, i))
            j = len(result)
            if (section, i) in doc.marks:
                new_marks[(section, j)] = doc.marks[(section, i)]
            _put(new_marks, (section, j), rel)
            result.append(item)
        doc.data[section] = result
        doc.marks = {p: m for p, m in doc.marks.items() if not (len(p) > 1 and p[0] == section)}
        doc.marks.update(new_marks)


def dump_yaml(data: dict[str, Any]) -> str:
    """Plain data as block YAML (for `lima.yaml` in an instance dir and `validate --fill`)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # long URLs stay on their key's line
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


__all__ = ["Document", "dump_yaml", "format_path", "load", "load_bytes"]


def stored_yaml(data: dict[str, Any], doc: Document | None = None) -> tuple[str, str | None]:
    """lima.yaml as the instance keeps it (with `doc`'s comments, as Lima's embedding keeps them), and the
    Windows product key taken out of it (kept 0600 apart)."""

    def text(d: dict[str, Any]) -> str:
        if doc is None:
            return dump_yaml(d)
        from limapy.config import comments

        return comments.dump(d, doc.marks, doc.texts, doc.source)

    win = (data.get("osOpts") or {}).get("Windows") if isinstance(data.get("osOpts"), dict) else None
    if not isinstance(win, dict) or win.get("productKey") in (None, ""):
        return _readable(text(data)), None
    import copy

    clean = copy.deepcopy(data)
    key = str(clean["osOpts"]["Windows"].pop("productKey")).strip()
    return _readable(text(clean)), key


def _readable(text: str) -> str:
    """Refuse a lima.yaml limapy could not read back: embedded files (base64 makes a binary one a third
    larger) can take it past the reader's 4 MiB."""
    from limapy.base.units import format_size

    size = len(text.encode())
    if size > MAX_BYTES:
        raise ConfigError([f"lima.yaml with its provision files embedded would be {format_size(size)}; "
                           f"limapy reads at most {format_size(MAX_BYTES)}"],
                          hint="embed smaller `file:` data, or copy big files into the guest after boot")  # fmt: skip
    return text
