"""A safe subset of yq (mikefarah/yq v4) over JSON-like data: `list --yq/--filter`, `limapy yq`, and the
`mode: yq` provision steps, which run this very file in the guest (the seed carries it; see yqcli.py).

    .name   .config.images[0].location   .param["KEY"]   .images[]   .a.b-c          paths
    "s" 1 2.5 true false null   [.a, .b]   {"k": .v}                                  literals, collections
    .cpus >= 2 and .arch == "x86_64"   not   select(.protected)   .a // "default"     conditions
    .a = 1 | .b.c = "x"   .l += [1]   .n |= . + 1   del(.a)                            updates (yq's forms)
    length keys has("k") unique unique_by(.x) sort sort_by(.x) reverse map(f) to_entries from_entries
    with_entries(f) add any all min max first last flatten join(", ") split(",") tag type ascii_downcase

Grammar and precedence are yq's (pkg/yqlib/operation.go): `,` (10) < `and`/`or` (20) < `|` (30) <
assignments and comparisons (40) < `+ - * / % //` (42), an operator of equal precedence binding to the right;
`=` evaluates its right side against the input, `|=` against each target. Truthiness is yq's: only false and
null are false. Nothing here reads files or the environment (yq's `env`, `load`, `system` do not exist), and
anything outside the grammar is a `YqError`, never a guess. It runs on Python 3.7 (old guests): no newer syntax.
"""

from __future__ import annotations

import copy
import json

from limapy.expr.yqparse import Parser, YqError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from limapy.expr.yqparse import Node

    Expr = Callable[[Any], Any]
    Path = tuple[Any, ...]

__all__ = ["YqError", "compile_expr", "evaluate", "matches", "parse", "run", "run_node", "truthy"]
_SKIP = object()  # compile_expr's value when a `select` dropped the input


# -- evaluation -------------------------------------------------------------------------------------------


def truthy(v: Any) -> bool:
    return v is not None and v is not False


def _tag(v: Any) -> str:
    if v is None:
        return "!!null"
    if isinstance(v, bool):
        return "!!bool"
    if isinstance(v, int):
        return "!!int"
    if isinstance(v, float):
        return "!!float"
    if isinstance(v, str):
        return "!!str"
    return "!!seq" if isinstance(v, list) else "!!map"


def _step(value: Any, key: Any) -> Any:
    if value is None:
        return None
    if isinstance(key, int) and isinstance(value, list):
        return value[key] if -len(value) <= key < len(value) else None
    if isinstance(value, dict):
        return value.get(key)
    raise YqError(f"cannot index a {_tag(value)[2:]} with {json.dumps(key)}")


def get_path(value: Any, path: Path) -> Any:
    for key in path:
        value = _step(value, key)
    return value


def set_path(root: Any, path: Path, new: Any) -> Any:
    """`root` with `new` at `path` (containers made on the way, as yq does); returns the (maybe new) root."""
    if not path:
        return new
    key = path[0]
    if root is None:
        root = [] if isinstance(key, int) else {}
    if isinstance(root, list) and isinstance(key, int):
        if key < 0:
            key += len(root)
        while len(root) <= key:
            root.append(None)
        root[key] = set_path(root[key], path[1:], new)
    elif isinstance(root, dict):
        root[key] = set_path(root.get(key), path[1:], new)
    else:
        raise YqError(f"cannot set {json.dumps(key)} inside a {_tag(root)[2:]}")
    return root


def _delete(root: Any, path: Path) -> None:
    parent = get_path(root, path[:-1])
    key = path[-1]
    if isinstance(parent, dict):
        parent.pop(key, None)
    elif isinstance(parent, list) and isinstance(key, int) and -len(parent) <= key < len(parent):
        del parent[key]


def paths(node: Node, value: Any) -> list[Path]:
    """Where `node` points inside `value` (the targets of an update or a `del`)."""
    kind = node[0]
    if kind == "id":
        return [()]
    if kind == "get":
        out = []
        for p in paths(node[1], value):
            cur, key = get_path(value, p), node[2]
            if not (cur is None or isinstance(cur, dict) or (isinstance(cur, list) and isinstance(key, int))):
                raise YqError(f"cannot index a {_tag(cur)[2:]} with {json.dumps(key)}")
            out.append((*p, key))
        return out
    if kind == "each":
        out = []
        for p in paths(node[1], value):
            cur = get_path(value, p)
            keys = range(len(cur)) if isinstance(cur, list) else list(cur) if isinstance(cur, dict) else []
            out += [(*p, k) for k in keys]
        return out
    if kind == "pipe":
        return [p + q for p in paths(node[1], value) for q in paths(node[2], get_path(value, p))]
    if kind == "union":
        return paths(node[1], value) + paths(node[2], value)
    if kind == "call" and node[1] == "select":
        return [()] if any(truthy(r) for r in run_node(node[2], value)) else []
    raise YqError("cannot update or delete through this expression (use paths such as .a.b, .a[0], .a[])")


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return copy.deepcopy(b)
    if b is None:
        return a
    if isinstance(a, list):
        return a + (copy.deepcopy(b) if isinstance(b, list) else [copy.deepcopy(b)])
    if isinstance(a, dict) and isinstance(b, dict):
        out = copy.copy(a)
        out.update(copy.deepcopy(b))
        return out
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    if _number(a) and _number(b):
        return a + b
    raise YqError(f"cannot add a {_tag(b)[2:]} and a {_tag(a)[2:]}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = copy.copy(a)
        for k, v in b.items():
            out[k] = _merge(out.get(k), v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(b)


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        return _add(a, b)
    if op == "-":
        if isinstance(a, list):
            drop = b if isinstance(b, list) else [b]
            return [x for x in a if x not in drop]
        if _number(a) and _number(b):
            return a - b
    if op == "*":
        if isinstance(a, dict) and isinstance(b, dict):
            return _merge(a, b)
        if _number(a) and _number(b):
            return a * b
    if op == "/":
        if isinstance(a, str) and isinstance(b, str):
            return a.split(b)
        if _number(a) and _number(b):
            if b == 0:
                raise YqError("division by zero")
            return a / b
    if op == "%" and isinstance(a, int) and isinstance(b, int) and b:
        return a % b
    raise YqError(f"cannot apply {op} to a {_tag(a)[2:]} and a {_tag(b)[2:]}")


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b and _tag(a) == _tag(b)) or (_number(a) and _number(b) and a == b)
    if op == "!=":
        return not _compare("==", a, b)
    if not ((_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def _first(node: Node, value: Any, what: str) -> Any:
    results = run_node(node, value)
    if not results:
        raise YqError(f"{what} produced no value")
    return results[0]


def _assign(node: Node, value: Any) -> list[Any]:
    _, op, lhs, rhs = node
    targets = paths(lhs, value)
    if op == "=":
        new = _first(rhs, value, "the right side of =")
        for p in targets:
            value = set_path(value, p, copy.deepcopy(new))
        return [value]
    if op == "|=":
        for p in targets:
            value = set_path(value, p, copy.deepcopy(_first(rhs, get_path(value, p), "the right side of |=")))
        return [value]
    operand = _first(rhs, value, "the right side of " + op)
    for p in targets:
        cur = get_path(value, p)
        new = (cur if truthy(cur) else operand) if op == "//=" else _arith(op[:-1], cur, operand)
        value = set_path(value, p, new)
    return [value]


def _call(name: str, arg: Node | None, v: Any) -> list[Any]:
    if name == "select":
        return [v] if any(truthy(r) for r in run_node(arg, v)) else []  # type: ignore[arg-type]
    if name == "not":
        return [not truthy(r) for r in run_node(arg, v)] if arg is not None else [not truthy(v)]
    if name == "del":
        targets = paths(arg, v)  # type: ignore[arg-type]
        # deepest first, and a list's later entries before its earlier ones (their indexes stay right)
        for p in sorted(targets, key=lambda t: (len(t), t[-1] if t and isinstance(t[-1], int) else -1), reverse=True):
            if not p:
                return [None]
            _delete(v, p)
        return [v]
    if name == "empty":
        return []
    if arg is not None and name in ("map", "with_entries", "unique_by", "sort_by", "any", "all", "first"):
        if not isinstance(v, list) and name not in ("with_entries",):
            raise YqError(f"{name} needs a list")
        if name == "map":
            return [[r for x in v for r in run_node(arg, x)]]
        if name == "with_entries":
            entries = [r for x in _entries(v) for r in run_node(arg, x)]
            return [_from_entries(entries)]
        keyed = [(json.dumps(run_node(arg, x), sort_keys=True, default=str), x) for x in v]
        if name == "unique_by":
            seen: dict[str, object] = {}
            for k, x in keyed:
                seen.setdefault(k, x)
            return [list(seen.values())]
        if name == "sort_by":
            return [[x for _, x in sorted(keyed, key=lambda kx: kx[0])]]
        tests = [any(truthy(r) for r in run_node(arg, x)) for x in v]
        if name == "first":
            return [next((x for x, t in zip(v, tests) if t), None)]  # noqa: B905 (3.7: no strict=)
        return [any(tests) if name == "any" else all(tests)]
    if arg is not None:
        a = _first(arg, v, name)
        if name == "has":
            return [a in v if isinstance(v, dict) else isinstance(a, int) and isinstance(v, list) and 0 <= a < len(v)]
        if name == "join" and isinstance(v, list):
            return [str(a).join("" if x is None else x if isinstance(x, str) else json.dumps(x) for x in v)]
        if name == "split" and isinstance(v, str):
            return [v.split(str(a))]
        raise YqError(f"{name}({json.dumps(a)}) does not apply to a {_tag(v)[2:]}")
    return [_call0(name, v)]


def _entries(v: Any) -> list[Any]:
    if isinstance(v, dict):
        return [{"key": k, "value": x} for k, x in v.items()]
    if isinstance(v, list):
        return [{"key": i, "value": x} for i, x in enumerate(v)]
    raise YqError("to_entries needs a map")


def _from_entries(v: Any) -> Any:
    if not isinstance(v, list):
        raise YqError("from_entries needs a list")
    out = {}
    for e in v:
        if not isinstance(e, dict):
            raise YqError("from_entries needs {key, value} maps")
        out[e.get("key", e.get("name"))] = e.get("value")
    return out


def _call0(name: str, v: Any) -> Any:
    if name in ("length",):
        if v is None:
            return 0
        if isinstance(v, (str, list, dict)):
            return len(v)
        if _number(v):
            return abs(v)
    elif name == "keys" and isinstance(v, (dict, list)):
        return list(v) if isinstance(v, dict) else list(range(len(v)))
    elif name in ("tag", "type"):
        return _tag(v)
    elif name == "to_entries":
        return _entries(v)
    elif name == "from_entries":
        return _from_entries(v)
    elif name == "tostring":
        return v if isinstance(v, str) else json.dumps(v)
    elif name == "tonumber" and _number(v):
        return v
    elif name == "tonumber" and isinstance(v, str):
        try:
            return float(v) if any(c in v for c in ".eE") else int(v)
        except ValueError:
            raise YqError(f"cannot convert {json.dumps(v)} to a number") from None
    elif name in ("ascii_downcase", "ascii_upcase") and isinstance(v, str):
        return v.lower() if name == "ascii_downcase" else v.upper()
    elif isinstance(v, list):
        if name == "unique":
            out: list[Any] = []
            for x in v:
                if x not in out:
                    out.append(x)
            return out
        if name in ("sort", "min", "max"):
            s = sorted(v, key=lambda x: json.dumps(x, sort_keys=True) if not _number(x) else f"{x:030.10f}")
            return s if name == "sort" else (s[0] if s else None) if name == "min" else (s[-1] if s else None)
        if name == "reverse":
            return list(reversed(v))
        if name in ("add",):
            total = None
            for x in v:
                total = _add(total, x)
            return total
        if name in ("any", "all"):
            return any(truthy(x) for x in v) if name == "any" else all(truthy(x) for x in v)
        if name in ("first", "last"):
            return (v[0] if name == "first" else v[-1]) if v else None
        if name == "flatten":
            return [y for x in v for y in (x if isinstance(x, list) else [x])]
    raise YqError(f"{name} does not apply to a {_tag(v)[2:]}")


def run_node(node: Node, v: Any) -> list[Any]:
    kind = node[0]
    if kind == "id":
        return [v]
    if kind == "lit":
        return [copy.deepcopy(node[1])]
    if kind == "get":
        return [_step(x, node[2]) for x in run_node(node[1], v)]
    if kind == "each":
        out = []
        for x in run_node(node[1], v):
            if isinstance(x, list):
                out += x
            elif isinstance(x, dict):
                out += list(x.values())
            elif x is not None:
                raise YqError(f"cannot iterate over a {_tag(x)[2:]}")
        return out
    if kind == "pipe":
        return [r for x in run_node(node[1], v) for r in run_node(node[2], x)]
    if kind == "union":
        return run_node(node[1], v) + run_node(node[2], v)
    if kind == "collect":
        return [[] if node[1] is None else run_node(node[1], v)]
    if kind == "object":
        results: list[Any] = [{}]
        for knode, vnode in node[1]:
            results = [dict(r, **{str(k): x}) for r in results for k in run_node(knode, v) for x in run_node(vnode, v)]
        return results
    if kind == "assign":
        return _assign(node, v)
    if kind == "call":
        return _call(node[1], node[2], v)
    if kind == "binop":
        op, lhs, rhs = node[1], node[2], node[3]
        if op == "//":
            left = [x for x in run_node(lhs, v) if truthy(x)]
            return left or run_node(rhs, v)
        if op in ("and", "or"):
            return [_logic(op, a, lambda: run_node(rhs, v)) for a in run_node(lhs, v)]
        rights = run_node(rhs, v)
        lefts = run_node(lhs, v)
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return [_compare(op, a, b) for b in rights for a in lefts]
        return [_arith(op, a, b) for b in rights for a in lefts]
    raise YqError(f"internal: unknown node {kind}")


def _logic(op: str, a: Any, right: Callable[[], list[Any]]) -> bool:
    if op == "and":
        return truthy(a) and any(truthy(b) for b in right())
    return truthy(a) or any(truthy(b) for b in right())


def parse(text: str) -> Node:
    """The expression's tree; a YqError for what the subset does not cover."""
    p = Parser(text)
    if not p.toks:
        raise YqError("empty expression")
    node = p.expr()
    if p.peek() is not None:
        raise YqError(f"unexpected {p.peek()[1]!r}")  # type: ignore[index]
    return node


def run(text: str, value: Any) -> list[Any]:
    """Every result of `text` applied to `value` (yq's output stream); updates change `value` in place."""
    return run_node(parse(text), value)


def compile_expr(text: str) -> Expr:
    """`text` as a function of one value giving its first result (or _SKIP); raises YqError now for what the
    subset does not cover."""
    node = parse(text)

    def first(v: Any) -> Any:
        results = run_node(node, v)
        return results[0] if results else _SKIP

    return first


def evaluate(text: str, value: Any) -> tuple[bool, Any]:
    """(kept, result): kept is False when the expression gave nothing (a `select` dropped the value)."""
    out = compile_expr(text)(value)
    return (out is not _SKIP, None if out is _SKIP else out)


def matches(text: str, value: Any) -> bool:
    """`-l/--filter`: Lima's `select(EXPR)`: some result of EXPR is true."""
    return any(truthy(r) for r in run(text, value))
