"""The part of Go's text/template that `limactl list --format '{{...}}'` users write, over JSON-like data.

Supported: text with actions `{{ PIPELINE }}` (with `{{-`/`-}}` trimming), where a pipeline is commands
joined by `|` (the value on the left becomes the last argument on the right); a command is a field chain
(`.`, `.Name`, `.Config.cpus`), a string or integer literal, or one of Lima's functions `json`, `yaml`,
`indent [N] S` and `missing [MSG] S`. Field names are matched to the data's keys ignoring case (`.CPUs` is
`cpus`, `.SSHLocalPort` is `sshLocalPort`), through `aliases` first (`.Networks` is Lima's `network`).
Values print as Go prints them: strings raw, `<no value>` for a missing field, `map[k:v]` and `[a b]`.

Anything else (`if`, `range`, variables, other functions) is refused with a `TemplateError` naming it,
rather than printed wrongly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r'\s*(?:("(?:[^"\\]|\\.)*")|(`[^`]*`)|(-?\d+)|(\|)|(\.[A-Za-z0-9_.]*)|([A-Za-z_][A-Za-z0-9_]*)|(\S))'
)
NO_VALUE = "<no value>"


class TemplateError(ValueError):
    pass


def _field(value: Any, name: str, aliases: Mapping[str, str]) -> Any:
    if not isinstance(value, Mapping):
        raise TemplateError(f"can't evaluate field {name} in a {type(value).__name__}")
    want = aliases.get(name, name).lower()
    for k, v in value.items():
        if str(k).lower() == want:
            return v
    return _Missing()


class _Missing:
    pass


def go_str(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if isinstance(value, _Missing) or value is None:
        return NO_VALUE if isinstance(value, _Missing) else "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def _json(v: Any) -> str:
    return json.dumps(None if isinstance(v, _Missing) else v, separators=(",", ":"), ensure_ascii=False)


def _yaml(v: Any) -> str:
    from limapy.config.load import dump_yaml

    return dump_yaml(None if isinstance(v, _Missing) else v)  # type: ignore[arg-type]  # any plain value dumps


def _indent(*args: Any) -> str:
    n, s = (args[0], args[1]) if len(args) == 2 else (2, args[0]) if len(args) == 1 else (None, None)
    if not isinstance(n, int) or s is None:
        raise TemplateError("indent takes [N] STRING")
    if not 0 <= n <= 1000:
        raise TemplateError(f"indent {n}: use 0 to 1000 spaces")
    pad = " " * n
    return "\n".join(pad + line if line else line for line in go_str(s).split("\n"))


def _missing(*args: Any) -> str:
    msg, s = (args[0], args[1]) if len(args) == 2 else ("<missing>", args[0]) if len(args) == 1 else (None, None)
    if not isinstance(msg, str):
        raise TemplateError("missing takes [MESSAGE] STRING")
    return msg if isinstance(s, _Missing) or s in (None, "", [], {}) else go_str(s)


FUNCS: dict[str, Callable[..., str]] = {"json": lambda *a: _json(a[-1]), "yaml": lambda *a: _yaml(a[-1]),
                                        "indent": _indent, "missing": _missing}


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        kinds = ("str", "raw", "int", "pipe", "field", "ident", "other")
        kind = next(k for k, g in zip(kinds, m.groups(), strict=True) if g is not None)
        out.append((kind, m.group(m.lastindex or 0)))
        pos = m.end()
    return out


def _eval_command(words: list[tuple[str, str]], dot: Any, piped: list[Any], aliases: Mapping[str, str]) -> Any:
    if not words:
        raise TemplateError("empty command")
    kind, text = words[0]
    if kind == "ident":
        fn = FUNCS.get(text)
        if fn is None:
            raise TemplateError(f'function "{text}" is not supported (limapy knows: {", ".join(FUNCS)})')
        args = [_eval_command([w], dot, [], aliases) for w in words[1:]] + piped
        if not args:
            raise TemplateError(f"{text} needs an argument")
        return fn(*args)
    if len(words) > 1 or piped:
        raise TemplateError(f"can't give arguments to {text}")
    if kind == "str":
        return go_unquote(text)
    if kind == "raw":
        return text[1:-1]
    if kind == "int":
        return int(text)
    if kind == "field":
        value = dot
        for name in (p for p in text.split(".") if p):
            value = _field(value, name, aliases)
        return value
    raise TemplateError(f"unexpected {text!r}")


_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX = frozenset("0123456789abcdefABCDEF")


def go_unquote(literal: str) -> str:
    """A Go interpreted string literal (`"a\\tb\\x00"`) as its text: Go's escapes, `\\x`/octal as bytes of
    UTF-8 (invalid bytes become U+FFFD); anything else is a TemplateError, as Go's parser says."""
    body, out, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        e, octal = body[i + 1 : i + 2], body[i + 1 : i + 4]
        width = {"x": 2, "u": 4, "U": 8}.get(e, 0)
        digits = body[i + 2 : i + 2 + width]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif width and len(digits) == width and set(digits) <= _HEX:
            n = int(digits, 16)
            if e == "x":
                out.append(n)
            elif n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
                raise TemplateError(f"invalid escape \\{e}{digits} in the string {literal}")
            else:
                out += chr(n).encode()
            i += 2 + width
        elif len(octal) == 3 and set(octal) <= set("01234567") and int(octal, 8) < 256:
            out.append(int(octal, 8))
            i += 4
        else:
            raise TemplateError(f"invalid syntax in the string {literal} (at \\{e})")
    return out.decode("utf-8", "replace")


_KEYWORDS = ("if", "range", "with", "define", "template", "block", "else", "end")
#: How many arguments (the piped value counted) each function takes.
_ARITY = {"json": (1, 1), "yaml": (1, 1), "indent": (1, 2), "missing": (1, 2)}


def _commands(action: str) -> list[list[tuple[str, str]]]:
    """An action's pipeline as commands (lists of tokens), refusing what limapy's subset has no meaning for
    (reads no data: the same for every row)."""
    tokens = _tokens(action)
    if not tokens:
        raise TemplateError("empty action {{}}")
    if tokens[0][0] == "ident" and tokens[0][1] in _KEYWORDS:
        raise TemplateError(f'"{tokens[0][1]}" is not supported in limapy\'s --format templates')
    if any(k == "other" for k, _ in tokens):
        bad = next(t for k, t in tokens if k == "other")
        raise TemplateError(f"unexpected {bad!r} in {{{{{action.strip()}}}}}")
    commands: list[list[tuple[str, str]]] = [[]]
    for tok in tokens:
        if tok[0] == "pipe":
            commands.append([])
        else:
            commands[-1].append(tok)
    for n, cmd in enumerate(commands):
        if not cmd:
            raise TemplateError("missing command in a pipeline")
        kind, text = cmd[0]
        if kind == "ident":
            if text not in FUNCS:
                raise TemplateError(f'function "{text}" is not supported (limapy knows: {", ".join(FUNCS)})')
            low, high = _ARITY[text]
            got = len(cmd) - 1 + (1 if n else 0)
            if not low <= got <= high:
                raise TemplateError(f"wrong number of arguments for {text}: want {low}"
                                    + (f" or {high}" if high != low else "") + f", got {got}")  # fmt: skip
            args = cmd[1:]
        else:
            if len(cmd) > 1 or n:
                raise TemplateError(f"can't give arguments to {text}")
            args = cmd
        for kind, text in args:
            if kind == "ident":
                raise TemplateError(f"{text} must come first in a command (or be piped into)")
            if kind == "str":
                go_unquote(text)
            if kind == "int" and len(text.lstrip("-")) > 18:
                raise TemplateError(f"the number {text[:20]}... is out of range (Go's int is 64 bits)")
    return commands


def _eval(action: str, dot: Any, aliases: Mapping[str, str]) -> str:
    value: list[Any] = []
    for cmd in _commands(action):
        value = [_eval_command(cmd, dot, value, aliases)]
    return go_str(value[0])


def render(template: str, data: Any, aliases: Mapping[str, str] | None = None) -> str:
    """`template` applied to `data`; raises TemplateError for what it does not support."""
    aliases = aliases or {}
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if m.group(1):
            text = text.rstrip()
        out.append(text)
        out.append(_eval(m.group(2), data, aliases))
        pos = m.end()
        if m.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    tail = template[pos:]
    if "{{" in tail:
        raise TemplateError("unclosed action")
    out.append(tail)
    return "".join(out)


def check(template: str) -> None:
    """Raise TemplateError now for a template `render` would refuse whatever the data (its syntax, functions
    and literals: before anything is printed). What depends on a row (a field of a value that is no mapping)
    is an error of that row, as in Go."""
    pos = 0
    for m in _ACTION.finditer(template):
        _commands(m.group(2))
        pos = m.end()
    if "{{" in template[pos:]:
        raise TemplateError("unclosed action")
