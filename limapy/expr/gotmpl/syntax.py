"""Go's text/template syntax: values as Go prints them, the lexer and the parser (see limapy.expr.gotmpl)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

NO_VALUE = "<no value>"
_SPACE = " \t\r\n"


class TemplateError(ValueError):
    pass


class _Missing:
    """Go's invalid reflect.Value: a key a map does not have."""

    def __repr__(self) -> str:
        return NO_VALUE


MISSING = _Missing()


def go_str(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if value is MISSING:
        return NO_VALUE
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, "", nil, empty collections and missing values are false."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, Mapping)):
        return bool(value)
    return True


def go_type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float64", str: "string"}.get(type(value), "[]interface {}" if isinstance(
        value, (list, tuple)) else type(value).__name__)  # fmt: skip



# -- lexing -----------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)|(?P<char>'(?:[^'\\\n]|\\.)+')"""
    r"""|(?P<num>[+-]?(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))"""
    r"""|(?P<decl>:=)|(?P<punct>[|(),=])|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)"""
    r"""|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"""
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}  # fmt: skip
_HEX = "0123456789abcdefABCDEF"


def _unquote(text: str) -> str:
    r"""A quoted Go string or char literal's value, as Go's strconv.Unquote reads it (\xHH, \NNN octal, \uHHHH,
    \UHHHHHHHH and the one-letter escapes); anything else is Go's "invalid syntax"."""
    out, i, body = [], 0, text[1:-1]
    bad = TemplateError(f"invalid syntax in the string {text}")
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or any(d not in _HEX for d in digits):
                raise bad
            value = int(digits, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise bad
            out.append(chr(value))
            i += 2 + width
        elif nxt and nxt in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise bad
            out.append(chr(int(digits, 8)))
            i += 4
        elif nxt and nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise bad
    return "".join(out)


def _tokens(action: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(action):
        m = _TOKEN.match(action, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"unexpected {action[pos]!r} in {{{{{action.strip()}}}}}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _split(template: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", body) pieces, trimming applied and comments dropped."""
    pieces: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    while True:
        start = template.find("{{", pos)
        text = template[pos:] if start < 0 else template[pos:start]
        if trim_next:
            text = text.lstrip(_SPACE)
        if start < 0:
            pieces.append(("text", text))
            return pieces
        inner = start + 2
        if template.startswith("- ", inner) or template.startswith("-\t", inner) or template.startswith("-\n", inner):
            text, inner = text.rstrip(_SPACE), inner + 1
        pieces.append(("text", text))
        end, j = -1, inner
        while j < len(template):  # "}}" inside a quoted string does not end the action
            c = template[j]
            if c in "\"`'":
                close = template.find(c, j + 1) if c == "`" else _end_quote(template, j)
                if close < 0:
                    raise TemplateError("unterminated quoted string")
                j = close + 1
                continue
            if template.startswith("/*", j):
                close = template.find("*/", j + 2)
                if close < 0:
                    raise TemplateError("unclosed comment")
                j = close + 2
                continue
            if template.startswith("}}", j):
                end = j
                break
            j += 1
        if end < 0:
            raise TemplateError("unclosed action")
        body, trim_next = template[inner:end], False
        if len(body) >= 2 and body[-1] == "-" and body[-2] in _SPACE:
            body, trim_next = body[:-1], True
        if not body.strip().startswith("/*"):
            pieces.append(("action", body))
        pos = end + 2


def _end_quote(text: str, start: int) -> int:
    q, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == q:
            return i
        if text[i] == "\n":
            return -1
        i += 1
    return -1


# -- parsing ----------------------------------------------------------------------------------------------

Node = tuple[Any, ...]
_CONTROL = ("if", "with", "range")


class Parser:
    def __init__(self, template: str, funcs: Mapping[str, Callable[..., Any]]) -> None:
        self.pieces = _split(template)
        self.i = 0
        self.funcs = funcs
        self.scopes: list[set[str]] = [{"$"}]
        self.loops = 0

    def parse(self) -> list[Node]:
        nodes, stop = self.list_until()
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop[0]}}}}}")
        return nodes

    def list_until(self) -> tuple[list[Node], tuple[str, list[tuple[str, str]]] | None]:
        nodes: list[Node] = []
        while self.i < len(self.pieces):
            kind, body = self.pieces[self.i]
            self.i += 1
            if kind == "text":
                if body:
                    nodes.append(("text", body))
                continue
            toks = _tokens(body)
            if not toks:
                raise TemplateError("missing value for command")
            head = toks[0][1] if toks[0][0] == "ident" else ""
            if head in ("end", "else"):
                return nodes, (head, toks[1:])
            if head in _CONTROL:
                nodes.append(self.control(head, toks[1:]))
            elif head in ("break", "continue"):
                if not self.loops:
                    raise TemplateError(f"{{{{{head}}}}} outside {{{{range}}}}")
                nodes.append((head,))
            elif head in ("define", "template", "block"):
                raise TemplateError(f'"{head}" is not supported')
            else:
                nodes.append(("action", self.pipeline(toks, allow_decl=True)))
        return nodes, None

    def control(self, head: str, toks: list[tuple[str, str]]) -> Node:
        self.scopes.append(set())
        pipe = self.pipeline(toks, allow_decl=True, range_decl=head == "range")
        self.loops += head == "range"
        body, stop = self.list_until()
        self.loops -= head == "range"
        other: list[Node] = []
        if stop is None:
            raise TemplateError(f"unexpected EOF: {{{{{head}}}}} without {{{{end}}}}")
        if stop[0] == "else":
            rest = stop[1]
            if rest and rest[0][0] == "ident" and rest[0][1] in ("if", "with"):
                self.scopes.append(set())
                other = [self.control(rest[0][1], rest[1:])]  # `else if` ends at the same {{end}}
                self.scopes.pop()
            else:
                if rest:
                    raise TemplateError("unexpected words after {{else}}")
                other, stop = self.list_until()
                if stop is None or stop[0] != "end":
                    raise TemplateError(f"{{{{{head}}}}}: expected {{{{end}}}}")
        self.scopes.pop()
        return (head, pipe, body, other)

    def pipeline(self, toks: list[tuple[str, str]], *, allow_decl: bool = False, range_decl: bool = False) -> Node:
        decl: list[str] = []
        op = ""
        if allow_decl and toks and toks[0][0] == "var":
            if len(toks) > 1 and toks[1] in (("decl", ":="), ("punct", "=")):
                decl, op, toks = [toks[0][1]], toks[1][1], toks[2:]
            elif range_decl and len(toks) > 3 and toks[1] == ("punct", ",") and toks[2][0] == "var" \
                    and toks[3] == ("decl", ":="):  # fmt: skip
                decl, op, toks = [toks[0][1], toks[2][1]], ":=", toks[4:]
        if op == "=" and not any(decl[0] in s for s in self.scopes):
            raise TemplateError(f"undefined variable: {decl[0]}")
        cmds: list[list[Node]] = [[]]
        pos = 0
        while pos < len(toks):
            tok = toks[pos]
            if tok == ("punct", "|"):
                if not cmds[-1]:
                    raise TemplateError("missing command before |")
                cmds.append([])
                pos += 1
                continue
            term, pos = self.term(toks, pos)
            cmds[-1].append(term)
        if not cmds[-1]:
            raise TemplateError("missing value for command")
        if op == ":=":
            self.scopes[-1].update(decl)
        for cmd in cmds:
            if len(cmd) > 1 and cmd[0][0] != "func":
                raise TemplateError("can't give argument to non-function")
        return ("pipe", decl, op, cmds)

    def term(self, toks: list[tuple[str, str]], pos: int) -> tuple[Node, int]:
        kind, text = toks[pos]
        if kind == "punct" and text == "(":
            depth, j = 0, pos
            while j < len(toks):
                if toks[j] == ("punct", "("):
                    depth += 1
                elif toks[j] == ("punct", ")"):
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(toks):
                raise TemplateError("unclosed left paren")
            inner = self.pipeline(toks[pos + 1 : j])
            if j + 1 < len(toks) and toks[j + 1][0] == "field" and toks[j + 1][1] != ".":
                return ("chain", inner, toks[j + 1][1].split(".")[1:]), j + 2
            return ("sub", inner), j + 1
        if kind == "field":
            return ("field", [p for p in text.split(".") if p]), pos + 1
        if kind == "var":
            name, _, rest = text.partition(".")
            if not any(name in s for s in self.scopes):
                raise TemplateError(f"undefined variable: {name}")
            fields = [p for p in rest.split(".") if p]
            return ("var", name, fields), pos + 1
        if kind == "str":
            return ("lit", _unquote(text)), pos + 1
        if kind == "raw":
            return ("lit", text[1:-1]), pos + 1
        if kind == "char":
            return ("lit", ord(_unquote('"' + text[1:-1] + '"'))), pos + 1
        if kind == "num":
            clean = text.replace("_", "")
            try:
                value: Any = int(clean, 0)
            except ValueError:
                value = float(clean)
            return ("lit", value), pos + 1
        if kind == "ident":
            if text in ("true", "false"):
                return ("lit", text == "true"), pos + 1
            if text == "nil":
                return ("lit", None), pos + 1
            if text not in self.funcs:
                raise TemplateError(f'function "{text}" not defined')
            return ("func", text), pos + 1
        raise TemplateError(f"unexpected {text!r}")


