"""The syntax of limapy's yq subset: tokens and the parser (yq's precedences; see limapy.expr.yqlite)."""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Node = tuple[Any, ...]

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
    r"|(?P<op>\|=|\+=|-=|\*=|//=|==|!=|<=|>=|//|<|>|=|\||,|\+|-|\*|/|%)|(?P<punct>[()\[\]{}:;?])"
    r"|(?P<field>\.(?:[A-Za-z_][A-Za-z0-9_-]*)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
#: yq's precedences (operation.go): an operator binds tighter the higher it is.
PREC = {",": 10, "or": 20, "and": 20, "|": 30, "=": 40, "|=": 40, "+=": 40, "-=": 40, "*=": 40, "//=": 40,
        "==": 40, "!=": 40, "<": 40, "<=": 40, ">": 40, ">=": 40, "+": 42, "-": 42, "*": 42, "/": 42, "%": 42,
        "//": 42}  # fmt: skip
ASSIGN = ("=", "|=", "+=", "-=", "*=", "//=")
#: Operators whose chains are folded into a balanced tree (their grouping does not change the result), so a
#: long flat chain (`a or b or ...`, thousands long) neither recurses in the parser nor in the evaluator.
ASSOCIATIVE = (",", "or", "and", "|")
#: Parentheses, brackets, function arguments and right-nested operators nest at most this deep.
MAX_DEPTH = 64
FUNCS0 = ("not", "length", "keys", "unique", "sort", "reverse", "to_entries", "from_entries", "add", "any", "all",
          "min", "max", "first", "last", "flatten", "tag", "type", "ascii_downcase", "ascii_upcase", "empty",
          "tostring", "tonumber")  # fmt: skip
FUNCS1 = ("select", "not", "has", "del", "unique_by", "sort_by", "map", "with_entries", "join", "split", "any",
          "all", "first")  # fmt: skip


class YqError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        if text[pos:].lstrip().startswith("#"):  # a comment runs to the end of the line
            nl = text.find("\n", pos + len(text[pos:]) - len(text[pos:].lstrip()))
            pos = len(text) if nl < 0 else nl + 1
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            raise YqError(f"cannot read {text[pos:].strip()[:40]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def nested(self, min_prec: int = 0) -> Node:
        """An expression one level deeper (inside brackets, or right of an operator), counted against MAX_DEPTH:
        Python's own recursion limit would otherwise end a deep one in a RecursionError."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise YqError(f"the expression nests deeper than {MAX_DEPTH} levels of parentheses")
        try:
            return self.expr(min_prec)
        finally:
            self.depth -= 1

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise YqError("expected {}{}".format(value or "more", f", found {tok[1]!r}" if tok else " at the end"))
        self.i += 1
        return tok

    def binop(self) -> str | None:
        tok = self.peek()
        if tok is None:
            return None
        if tok[0] == "op" or (tok[0] == "word" and tok[1] in ("and", "or")):
            return tok[1]
        return None

    def expr(self, min_prec: int = 0) -> Node:
        left = self.postfix()
        while True:
            op = self.binop()
            if op is None or PREC[op] < min_prec:
                return left
            self.take()
            if op in ASSOCIATIVE:
                operands = [left, self.nested(PREC[op] + 1)]
                while True:
                    nxt = self.binop()
                    if nxt == op:
                        self.take()
                        operands.append(self.nested(PREC[op] + 1))
                        continue
                    if nxt is not None and PREC[nxt] == PREC[op]:  # `a or b and c`: a or (b and c), as yq
                        self.take()
                        operands[-1] = _node(nxt, operands[-1], self.nested(PREC[nxt]))
                    break
                left = _balanced(op, operands)
                continue
            right = self.nested(PREC[op])  # equal precedence binds to the right, as yq's postfix conversion does
            if op == "|":
                left = ("pipe", left, right)
            elif op == ",":
                left = ("union", left, right)
            elif op in ASSIGN:
                left = ("assign", op, left, right)
            else:
                left = ("binop", op, left, right)

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            tok = self.peek()
            if tok is not None and tok[0] == "field" and tok[1] != ".":
                self.take()
                node = ("get", node, tok[1][1:])
            elif tok == ("punct", "["):
                node = self.bracket(node)
            elif tok == ("punct", "?"):
                self.take()
            else:
                return node

    def bracket(self, node: Node) -> Node:
        self.take("[")
        if self.peek() == ("punct", "]"):
            self.take()
            return ("each", node)
        kind, text = self.take()
        if kind == "op" and text == "-" and self.peek() is not None and self.peek()[0] == "num":  # type: ignore[index]
            kind, text = "num", "-" + self.take()[1]
        if kind == "num" and text.lstrip("-").isdigit():
            key: Any = int(text)
        elif kind == "str":
            key = _string(text)
        else:
            raise YqError(f"index {text!r} is not supported (limapy's yq takes [N], [\"key\"] and [])")
        self.take("]")
        return ("get", node, key)

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "field":
            node: Node = ("id",)
            if text != ".":
                return ("get", node, text[1:])
            nxt = self.peek()
            if nxt is not None and nxt[0] == "str":  # ."key"
                self.take()
                return ("get", node, _string(nxt[1]))
            return node
        if kind == "str":
            return ("lit", _string(text))
        if kind == "num":
            return ("lit", float(text) if any(c in text for c in ".eE") else int(text))
        if kind == "op" and text == "-":
            inner = self.primary()
            if inner[0] == "lit" and isinstance(inner[1], (int, float)):
                return ("lit", -inner[1])
            raise YqError("unary minus takes a number")
        if kind == "word":
            return self.word(text)
        if (kind, text) == ("punct", "("):
            inner = self.nested()
            self.take(")")
            return inner
        if (kind, text) == ("punct", "["):
            if self.peek() == ("punct", "]"):
                self.take()
                return ("collect", None)
            inner = self.nested()
            self.take("]")
            return ("collect", inner)
        if (kind, text) == ("punct", "{"):
            return self.obj()
        raise YqError(f"{text!r} is not supported by limapy's yq")

    def word(self, text: str) -> Node:
        if text in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[text])
        if self.peek() == ("punct", "("):
            if text not in FUNCS1:
                raise YqError(f"{text}(...) is not supported by limapy's yq")
            self.take()
            arg = self.nested()
            self.take(")")
            return ("call", text, arg)
        if text not in FUNCS0:
            raise YqError(f"{text!r} is not supported by limapy's yq")
        return ("call", text, None)

    def obj(self) -> Node:
        entries = []
        while self.peek() != ("punct", "}"):
            kind, text = self.take()
            if kind == "str":
                key: Node = ("lit", _string(text))
            elif kind == "word":
                key = ("lit", text)
            elif (kind, text) == ("punct", "("):
                key = self.nested()
                self.take(")")
            else:
                raise YqError(f"an object key must be a name, a string or (an expression), not {text!r}")
            self.take(":")
            entries.append((key, self.nested(PREC[","] + 1)))
            if self.peek() == ("op", ","):
                self.take()
            elif self.peek() != ("punct", "}"):
                raise YqError("expected , or } in an object")
        self.take("}")
        return ("object", entries)


def _node(op: str, left: Node, right: Node) -> Node:
    if op == "|":
        return ("pipe", left, right)
    if op == ",":
        return ("union", left, right)
    return ("binop", op, left, right)


def _balanced(op: str, operands: list[Node]) -> Node:
    """`a op b op c ...` as a tree of depth log2(n), in the operands' order."""
    if len(operands) == 1:
        return operands[0]
    mid = len(operands) // 2
    return _node(op, _balanced(op, operands[:mid]), _balanced(op, operands[mid:]))


def _string(text: str) -> str:
    try:
        return str(json.loads(text))
    except ValueError:
        raise YqError(f"bad string {text}") from None


