"""Read one YAML document into plain Python data, keeping a line and column for every node.

Every failure is a ConfigError with `FILE:LINE:COL: message` lines; nothing here raises anything else.
Guards: a size cap, strict UTF-8, exactly one document, a mapping at the top, nesting depth, and alias
expansion (an alias bomb is refused by counting the expanded size without expanding it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from limapy.errors import ConfigError

MAX_BYTES = 4 << 20  # Lima inlines templates up to 4 MiB
MAX_EXPANDED_NODES = 200_000
# Lima's deepest field is ~6 levels; ruamel's parser is quadratic in flow nesting ([[[[...) and recursive
# in composing, so anything deeper than this is refused before (flow) or while (block) parsing.
MAX_DEPTH = 100

NodePath = tuple[str | int, ...]
# (source, line, col), 1-based; line 0 means "no position"
Mark = tuple[str, int, int]

_BRACKET_RE = re.compile(r"[\[\]{}]")


@dataclass
class Parsed:
    source: str
    data: dict[str, Any]
    marks: dict[NodePath, Mark] = field(default_factory=dict)


def format_path(path: NodePath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _err(source: str, line: int | None, col: int | None, msg: str) -> ConfigError:
    if line:
        return ConfigError([f"{source}:{line}:{col or 1}: {msg}"])
    return ConfigError([f"{source}: {msg}"])


def parse(raw: bytes, source: str) -> Parsed:
    if len(raw) > MAX_BYTES:
        raise _err(
            source, None, None, f"file is {len(raw) / (1 << 20):.1f} MiB; a lima.yaml may be at most 4 MiB"
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise _err(source, line, col, "not valid UTF-8 text (a YAML file must be UTF-8)") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise _err(source, line, 1, "contains a NUL character; this is not a YAML text file")

    _check_flow_depth(text, source)

    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    docs: list[Any] = []
    try:
        for doc in yaml.load_all(text):
            docs.append(doc)
            if len(docs) > 1:
                break
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = (e.problem or e.context or "invalid YAML").strip()
        if "duplicate key" in problem.lower() or type(e).__name__ == "DuplicateKeyError":
            problem = _duplicate_key_message(e)
        problem = problem.replace("\t", "\\t")
        if mark is not None:
            raise _err(source, mark.line + 1, mark.column + 1, f"YAML: {problem}") from None
        raise _err(source, None, None, f"YAML: {problem}") from None
    except RecursionError:
        raise _err(source, None, None, f"YAML nests deeper than {MAX_DEPTH} levels; refusing to read it") from None
    except YAMLError as e:
        raise _err(source, None, None, f"YAML: {str(e).splitlines()[0] if str(e) else 'invalid'}") from None
    except (ValueError, TypeError, OverflowError) as e:
        # ruamel's constructors raise these for e.g. out-of-range timestamps
        raise _err(source, None, None, f"YAML: {e}") from None

    if len(docs) > 1:
        raise _err(source, None, None, "holds several YAML documents; a lima.yaml is exactly one document")
    root = docs[0] if docs else None
    if root is None:
        return Parsed(source, {}, {(): (source, 1, 1)})
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(root, CommentedMap):
        kind = "a list" if isinstance(root, list) else "a scalar"
        raise _err(source, 1, 1, f"the document is {kind}; a lima.yaml must be a mapping of fields")
    try:
        _check_expansion(root, source)
        marks: dict[NodePath, Mark] = {(): (source, 1, 1)}
        data = _plain(root, (), marks, source)
    except RecursionError:
        raise _err(source, None, None, f"YAML nests deeper than {MAX_DEPTH} levels; refusing to read it") from None
    assert isinstance(data, dict)
    return Parsed(source, data, marks)


def _check_flow_depth(text: str, source: str) -> None:
    """Refuse `[[[[...` / `{a: {a: ...` nesting past MAX_DEPTH cheaply (brackets in strings count too)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for m in _BRACKET_RE.finditer(text):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                pos = m.start()
                line = text.count("\n", 0, pos) + 1
                col = pos - (text.rfind("\n", 0, pos) + 1) + 1
                raise _err(source, line, col, f"YAML nests deeper than {MAX_DEPTH} levels; refusing to read it")
        elif depth:
            depth -= 1


def _duplicate_key_message(e: Exception) -> str:
    text = str(getattr(e, "problem", "") or e)
    first = text.strip().splitlines()[0] if text.strip() else "duplicate key"
    # ruamel: 'found duplicate key "cpus" with value "2" (original value: "4")'
    return first


def _check_expansion(root: Any, source: str) -> None:
    """Count nodes as if every alias were expanded, memoised per object: linear in the real size."""
    memo: dict[int, int] = {}

    def size(node: Any) -> int:
        if isinstance(node, dict):
            key = id(node)
            if key in memo:
                return memo[key]
            memo[key] = MAX_EXPANDED_NODES + 1  # a cycle counts as too big
            total = 1 + sum(size(v) for v in node.values()) + len(node)
        elif isinstance(node, list):
            key = id(node)
            if key in memo:
                return memo[key]
            memo[key] = MAX_EXPANDED_NODES + 1
            total = 1 + sum(size(v) for v in node)
        else:
            return 1
        total = min(total, MAX_EXPANDED_NODES + 1)
        memo[key] = total
        return total

    if size(root) > MAX_EXPANDED_NODES:
        raise _err(
            source,
            None,
            None,
            f"the document expands past {MAX_EXPANDED_NODES:,} nodes through aliases (an alias bomb?); "
            "refusing to read it",
        )


def _position(container: Any, key: str | int, is_seq: bool) -> tuple[int, int] | None:
    lc = getattr(container, "lc", None)
    if lc is None:
        return None
    try:
        pos = lc.item(key) if is_seq else lc.key(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if not pos:
        return None
    return int(pos[0]) + 1, int(pos[1]) + 1


def _plain(node: Any, path: NodePath, marks: dict[NodePath, Mark], source: str) -> Any:
    if len(path) > MAX_DEPTH and isinstance(node, (dict, list)):
        _, line, col = marks.get(path, (source, 0, 0))
        raise _err(source, line, col, f"YAML nests deeper than {MAX_DEPTH} levels; refusing to read it")
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            key = _scalar_key(k)
            p = (*path, key)
            pos = _position(node, k, False)
            if pos:
                marks[p] = (source, *pos)
            _check_unicode(key, p, marks, source)
            out[key] = _plain(v, p, marks, source)
        return out
    if isinstance(node, list):
        items = []
        for i, v in enumerate(node):
            p = (*path, i)
            pos = _position(node, i, True)
            if pos:
                marks[p] = (source, *pos)
            items.append(_plain(v, p, marks, source))
        return items
    value = _scalar(node)
    if isinstance(value, str):
        _check_unicode(value, path, marks, source)
    return value


def _check_unicode(text: str, path: NodePath, marks: dict[NodePath, Mark], source: str) -> None:
    """`"\\ud800"` escapes decode to lone surrogates, which no file name, terminal or encoder accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        _, line, col = marks.get(path, (source, 0, 0))
        raise _err(source, line, col, "YAML: a string holds an unpaired surrogate escape (not Unicode text)") from None


def _scalar_key(k: Any) -> str:
    v = _scalar(k)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    isoformat = getattr(v, "isoformat", None)  # timestamps (datetime/date) read back as text
    if callable(isoformat):
        return str(isoformat())
    value = getattr(v, "value", None)  # TaggedScalar and friends
    if isinstance(value, str):
        return str(value)
    return str(v)
