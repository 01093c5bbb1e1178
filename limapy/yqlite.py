"""A safe, small subset of yq expressions for `list --yq` and `list -l/--filter`, over JSON-like data.

    .name                 .config.images[0].location          .param["KEY"]
    .status == "Running"  .cpus >= 2 and .arch == "x86_64"     select(.protected) | .name
    not(.protected)       .memory > 4294967296 or .disk < 1e11

Grammar: PIPE := EXPR ('|' EXPR)* ; EXPR := AND ('or' AND)* ; AND := CMP ('and' CMP)* ;
CMP := TERM (OP TERM)? with OP in == != < <= > >= ; TERM := PATH | LITERAL | select(PIPE) | not(PIPE) |
'(' PIPE ')'. Literals: JSON strings, numbers, true, false, null. Truthiness is yq's: only false and
null are false. Nothing here reads files or the environment (yq's `env`, `load`, `system` do not exist),
and anything outside the grammar is a `YqError`, never a guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<op>==|!=|<=|>=|<|>)'
    r"|(?P<punct>[|()\[\]])|(?P<path>\.(?:[A-Za-z_][A-Za-z0-9_]*)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_SKIP = object()  # `select` that did not match: the value disappears
#: Parentheses, `select(...)` and `not(...)` nest at most this deep (Python's own recursion limit is far above).
MAX_DEPTH = 64
Expr = Callable[[Any], Any]


class YqError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise YqError(f"cannot read {text[pos:].strip()!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def nested(self) -> Expr:
        """A pipe inside `(`...`)`, counted against MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise YqError(f"the expression nests deeper than {MAX_DEPTH} levels of parentheses")
        inner = self.pipe()
        self.depth -= 1
        return inner

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise YqError(f"expected {value or 'more'}" + (f", found {tok[1]!r}" if tok else " at the end"))
        self.i += 1
        return tok

    def pipe(self) -> Expr:
        stages = [self.expr()]
        while self.peek() == ("punct", "|"):
            self.take()
            stages.append(self.expr())

        def run(v: Any) -> Any:
            for st in stages:
                v = st(v)
                if v is _SKIP:
                    return _SKIP
            return v

        return run

    def expr(self) -> Expr:
        terms = [self.conj()]
        while self.peek() == ("word", "or"):
            self.take()
            terms.append(self.conj())
        return terms[0] if len(terms) == 1 else _any(terms)  # a flat list: 5000 `or`s do not nest 5000 calls

    def conj(self) -> Expr:
        terms = [self.cmp()]
        while self.peek() == ("word", "and"):
            self.take()
            terms.append(self.cmp())
        return terms[0] if len(terms) == 1 else _all(terms)

    def cmp(self) -> Expr:
        left = self.term()
        tok = self.peek()
        if tok is None or tok[0] != "op":
            return left
        self.take()
        right = self.term()
        return lambda v: _compare(tok[1], left(v), right(v))

    def term(self) -> Expr:
        kind, text = self.take()
        if kind == "str":
            s = _string(text)
            return lambda v: s
        if kind == "num":
            n = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda v: n
        if kind == "word" and text in ("true", "false", "null"):
            lit = {"true": True, "false": False, "null": None}[text]
            return lambda v: lit
        if kind == "word" and text in ("select", "not"):
            self.take("(")
            inner = self.nested()
            self.take(")")
            if text == "not":
                return lambda v: not _truthy(inner(v))
            return lambda v: v if _truthy(inner(v)) else _SKIP
        if (kind, text) == ("punct", "("):
            inner = self.nested()
            self.take(")")
            return inner
        if kind == "path":
            return self.path(text[1:])
        raise YqError(f"{text!r} is not supported (limapy's --yq knows paths, comparisons, and/or, select, not)")

    def path(self, first: str) -> Expr:
        steps: list[str | int] = [first] if first else []
        while True:
            tok = self.peek()
            if tok is not None and tok[0] == "path" and tok[1] != ".":
                self.take()
                steps.append(tok[1][1:])
            elif tok == ("punct", "["):
                self.take()
                k, t = self.take()
                if k == "num" and t.lstrip("-").isdigit():
                    steps.append(int(t))
                elif k == "str":
                    steps.append(_string(t))
                else:
                    raise YqError(f"index {t!r} is not supported")
                self.take("]")
            else:
                break
        return lambda v: _walk(v, steps)


def _string(text: str) -> str:
    """A double-quoted string literal (JSON's escapes), or a YqError saying why not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise YqError(f"cannot read the string {text}: {e.msg}") from None
    return str(value)


def _any(terms: list[Expr]) -> Expr:
    return lambda v: any(_truthy(t(v)) for t in terms)


def _all(terms: list[Expr]) -> Expr:
    return lambda v: all(_truthy(t(v)) for t in terms)


def _walk(value: Any, steps: list[str | int]) -> Any:
    for s in steps:
        if isinstance(s, int):
            value = value[s] if isinstance(value, list) and -len(value) <= s < len(value) else None
        else:
            value = value.get(s) if isinstance(value, dict) else None
    return value


def _truthy(v: Any) -> bool:
    return v is not _SKIP and v is not None and v is not False


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    num = (int, float)
    if not (isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool)):
        if not (isinstance(a, str) and isinstance(b, str)):
            return False
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def compile_expr(text: str) -> Expr:
    """`text` as a function of one value; raises YqError for what the subset does not cover."""
    p = _Parser(text)
    if not p.toks:
        raise YqError("empty expression")
    fn = p.pipe()
    if p.peek() is not None:
        raise YqError(f"unexpected {p.peek()[1]!r}")  # type: ignore[index]
    return fn


def evaluate(text: str, value: Any) -> tuple[bool, Any]:
    """(kept, result): kept is False when a `select` dropped the value."""
    out = compile_expr(text)(value)
    return (out is not _SKIP, None if out is _SKIP else out)


def matches(text: str, value: Any) -> bool:
    """`-l/--filter`: Lima's `select(EXPR)`."""
    out = compile_expr(text)(value)
    return _truthy(out)
