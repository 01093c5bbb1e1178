"""Read one YAML document into plain Python data, keeping a line and column for every node.

Every failure is a ConfigError with `FILE:LINE:COL: message` lines; nothing here raises anything else.
Guards: a size cap, strict UTF-8, exactly one document, a mapping at the top, nesting depth, and alias
expansion (an alias bomb is refused by counting the expanded size without expanding it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from limapy.base.errors import ConfigError

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
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    # The safe loader, composing nodes ourselves: about twice as fast as the round-trip loader on a
    # commented template (start-up time is a feature), and every node still carries its start mark.
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = False
    nodes: list[Any] = []
    try:
        for node in yaml.compose_all(text):
            nodes.append(node)
            if len(nodes) > 1:
                break
        if len(nodes) > 1:
            raise _err(source, None, None, "holds several YAML documents; a lima.yaml is exactly one document")
        root_node = nodes[0] if nodes else None
        if root_node is None:
            return Parsed(source, {}, {(): (source, 1, 1)})
        if not isinstance(root_node, MappingNode):
            kind = "a list" if isinstance(root_node, SequenceNode) else "a scalar"
            raise _err(source, 1, 1, f"the document is {kind}; a lima.yaml must be a mapping of fields")
        _check_expansion(root_node, source)
        root = yaml.constructor.construct_document(root_node)
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
    if not isinstance(root, dict):
        raise _err(source, 1, 1, "the document is not a mapping of fields")
    try:
        marks: dict[NodePath, Mark] = {(): (source, 1, 1)}
        _marks(root_node, (), marks, source)  # first: it refuses deep nesting and non-text with a position
        data = _plain(root)
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
    """Count nodes as if every alias were expanded, memoised per node: linear in the real size.

    In a composed graph an alias is the very node object it refers to, so the memo sees it."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    memo: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, (MappingNode, SequenceNode)):
            return 1
        key = id(node)
        if key in memo:
            return memo[key]
        memo[key] = 1  # an alias to its own container (a cycle) reads as null, as ruamel's rt loader does
        if isinstance(node, MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1 + sum(size(v) for v in node.value)
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


def _node_key(knode: Any) -> str | None:
    """The key a scalar key node stands for, as _scalar_key spells it; None for merge keys (`<<`)."""
    tag = str(getattr(knode, "tag", "") or "")
    if tag.endswith(":merge"):
        return None
    value = getattr(knode, "value", None)
    if not isinstance(value, str):
        return None
    if tag.endswith(":bool"):
        return value.lower()
    if tag.endswith(":null"):
        return "null"
    if tag.endswith(":int") or tag.endswith(":float"):
        return None  # spelled differently once constructed (0x10 -> 16): fall back to the parent's mark
    return value


def _marks(
    node: Any, path: NodePath, marks: dict[NodePath, Mark], source: str, stack: frozenset[int] = frozenset()
) -> None:
    """Record (line, col) of every key and list item, walking the composed node tree; refuse nesting past
    MAX_DEPTH and strings that are not Unicode text, both with their position."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    def where(n: Any) -> tuple[int, int]:
        return n.start_mark.line + 1, n.start_mark.column + 1

    if isinstance(node, (MappingNode, SequenceNode)):
        if id(node) in stack:
            return  # a cycle: _plain reads it as null
        if len(path) > MAX_DEPTH:
            raise _err(source, *where(node), f"YAML nests deeper than {MAX_DEPTH} levels; refusing to read it")
        stack = stack | {id(node)}
    if isinstance(node, ScalarNode):
        try:
            str(node.value).encode("utf-8")
        except UnicodeEncodeError:
            raise _err(
                source, *where(node), "YAML: a string holds an unpaired surrogate escape (not Unicode text)"
            ) from None
    elif isinstance(node, MappingNode):
        for knode, vnode in node.value:
            _marks(knode, path, marks, source, stack)
            key = _node_key(knode)
            if key is None:
                continue
            p = (*path, key)
            if p not in marks:
                marks[p] = (source, *where(knode))
            _marks(vnode, p, marks, source, stack)
    elif isinstance(node, SequenceNode):
        for i, vnode in enumerate(node.value):
            p = (*path, i)
            marks[p] = (source, *where(vnode))
            _marks(vnode, p, marks, source, stack)


def _plain(node: Any, stack: frozenset[int] = frozenset()) -> Any:
    if isinstance(node, (dict, list)):
        if id(node) in stack:
            return None  # an alias to its own container (a cycle) reads as null, as ruamel's rt loader does
        inner = stack | {id(node)}
        if isinstance(node, dict):
            return {_scalar_key(k): _plain(v, inner) for k, v in node.items()}
        return [_plain(v, inner) for v in node]
    return _scalar(node)


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
    if isinstance(v, bytes):  # `!!binary` (how Lima embeds a binary file): text when it is UTF-8 text
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return bytes(v)  # only a data provision's content may be binary (config.schema.binary_problems)
    isoformat = getattr(v, "isoformat", None)  # timestamps (datetime/date) read back as text
    if callable(isoformat):
        return str(isoformat())
    value = getattr(v, "value", None)  # TaggedScalar and friends
    if isinstance(value, str):
        return str(value)
    return str(v)
