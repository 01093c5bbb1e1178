"""Checking a document against schemas/lima.schema.json, and warning about unknown keys.

jsonschema costs ~100 ms to import, more than the whole CLI start-up budget, so a document that passed
once is remembered by a digest of (schema, document) in the cache dir and not re-checked; anything else
(and any document that fails) goes through jsonschema every time.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from limapy.base import dirs
from limapy.config.validate import Problem
from limapy.config.yamlread import NodePath, format_path

# Lima's own messages cover these; the schema's enum errors would only repeat them.
SEMANTIC_PATHS = {("os",), ("arch",), ("vmType",), ("mountType",)}


@functools.lru_cache(maxsize=1)
def _schema_bytes() -> bytes:
    return dirs.schema_path().read_bytes()


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_schema_bytes())
    return data


def _ok_marker(doc: dict[str, Any]) -> Path | None:
    try:
        blob = _schema_bytes() + b"\0" + json.dumps(doc, sort_keys=True, default=str).encode()
    except (TypeError, ValueError, OSError):
        return None
    return dirs.cache_dir() / "schema-ok" / hashlib.sha256(blob).hexdigest()


def _binary_paths(node: Any, path: NodePath = ()) -> list[NodePath]:
    if isinstance(node, bytes):
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _binary_paths(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _binary_paths(v, (*path, i))]
    return []


def binary_problems(doc: dict[str, Any]) -> list[Problem]:
    """Binary data (a `!!binary` that is not UTF-8, or an embedded binary file) anywhere but in a provision
    entry's `content`, where Lima keeps a binary data file; every other field is text."""
    return [Problem(p, f"field `{format_path(p)}` holds binary data; it must be UTF-8 text "
                       "(only a provision's `content` may be binary)")
            for p in _binary_paths(doc) if not (len(p) == 3 and p[0] == "provision" and p[2] == "content")]  # fmt: skip


def _textual(node: Any) -> Any:
    """`node` with bytes as text for the schema, which knows strings only (Lima's content is a string)."""
    if isinstance(node, bytes):
        return node.decode("latin-1")
    if isinstance(node, dict):
        return {k: _textual(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_textual(v) for v in node]
    return node


def schema_problems(doc: dict[str, Any]) -> list[Problem]:
    if _binary_paths(doc):
        doc = _textual(doc)
    from limapy.base import cachedir

    marker = _ok_marker(doc)
    if marker is not None and cachedir.read_memo(marker) is not None:
        return []
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems: list[Problem] = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        path: NodePath = tuple(p if isinstance(p, int) else str(p) for p in err.absolute_path)
        if path in SEMANTIC_PATHS or _lima_checks_locator(path, err.instance):
            continue
        label = format_path(path) or "(document)"
        problems.append(Problem(path, f"field `{label}`: {_short(err)}"))
    if not problems and marker is not None:
        cachedir.write_memo(marker, b"")
    return problems


def _lima_checks_locator(path: NodePath, instance: Any) -> bool:
    """`provision[i].file` / `probes[i].file` as a mapping: Lima's rules report its url/digest (the
    schema's `url` is required, Lima's is not: `{digest: x}` must give Lima's digest message)."""
    return (
        len(path) == 3
        and path[0] in ("provision", "probes")
        and path[2] == "file"
        and isinstance(instance, dict)
        and all(k in ("url", "digest") for k in instance)
    )


def _short(err: Any) -> str:
    msg = str(err.message)
    if err.validator in ("oneOf", "anyOf"):
        types = []
        for sub in err.validator_value:
            t = sub.get("type") if isinstance(sub, dict) else None
            if t is None and isinstance(sub, dict) and "$ref" in sub:
                t = sub["$ref"].rsplit("/", 1)[-1]
            if t is not None:
                types.append("/".join(t) if isinstance(t, list) else str(t))
        got = type(err.instance).__name__
        got = {"str": "string", "int": "integer", "dict": "mapping", "list": "list", "bool": "boolean"}.get(
            got, got
        )
        if types:
            return f"must be one of: {', '.join(types)}; got a {got}"
    if len(msg) > 200:
        msg = msg[:200] + "..."
    return msg


def _resolve(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a node may be (through $ref, anyOf/oneOf/allOf)."""
    out: list[dict[str, Any]] = []
    stack = [node]
    seen = 0
    while stack and seen < 50:
        seen += 1
        n = stack.pop()
        if "$ref" in n:
            ref = n["$ref"]
            if ref.startswith("#/$defs/"):
                target = schema().get("$defs", {}).get(ref.split("/")[-1])
                if isinstance(target, dict):
                    stack.append(target)
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in n.get(key, []):
                if isinstance(sub, dict):
                    stack.append(sub)
        if "properties" in n or "additionalProperties" in n or "items" in n:
            out.append(n)
    return out


def unknown_keys(doc: Any, node: dict[str, Any] | None = None, path: NodePath = ()) -> list[NodePath]:
    """Paths of keys the schema does not know, where the schema describes a struct (not a free map)."""
    if node is None:
        node = schema()
    found: list[NodePath] = []
    shapes = _resolve(node)
    if isinstance(doc, dict):
        props: dict[str, Any] = {}
        free_map = False
        struct = False
        for s in shapes:
            if "properties" in s:
                struct = True
                props.update(s["properties"])
            ap = s.get("additionalProperties")
            if isinstance(ap, dict) or ap is True:
                free_map = True
        for k, v in doc.items():
            if k in props:
                found += unknown_keys(v, props[k], (*path, k))
            elif struct and not free_map:
                found.append((*path, k))
    elif isinstance(doc, list):
        for s in shapes:
            items = s.get("items")
            if isinstance(items, dict):
                for i, v in enumerate(doc):
                    found += unknown_keys(v, items, (*path, i))
                break
    return found
