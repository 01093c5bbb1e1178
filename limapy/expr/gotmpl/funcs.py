"""Go's template functions (text/template's builtins) and Lima's `list --format` ones (pkg/textutil)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from limapy.expr.gotmpl.syntax import MISSING, TemplateError, go_str, go_type, truth

# -- Go's builtin functions -------------------------------------------------------------------------------


def _kind(v: Any) -> str:
    if v is MISSING:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("missing argument for comparison")
    for b in others:
        ka, kb = _kind(a), _kind(b)
        if ka != kb:
            if ka != "invalid" and kb != "invalid":
                raise TemplateError("incompatible types for comparison")
            continue
        if ka == "other" and not ((a is None) or (b is None)):
            raise TemplateError("non-comparable types")
        if a == b:
            return True
    return False


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        ka, kb = _kind(a), _kind(b)
        if "invalid" in (ka, kb) or "other" in (ka, kb) or "bool" in (ka, kb):
            raise TemplateError("invalid type for comparison")
        if ka != kb:
            raise TemplateError("incompatible types for comparison")
        return op(a, b)

    return compare


def _len(v: Any) -> int:
    if isinstance(v, (str, list, tuple, Mapping)):
        return len(v.encode()) if isinstance(v, str) else len(v)
    raise TemplateError(f"len of type {go_type(v)}")


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, Mapping):
            v = v.get(k, MISSING)
        elif isinstance(v, (list, tuple)) and isinstance(k, int):
            if not 0 <= k < len(v):
                raise TemplateError(f"index out of range: {k}")
            v = v[k]
        else:
            raise TemplateError(f"can't index item of type {go_type(v)}")
    return v


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([vsdqtxXfeEgGc%])")


def _printf(fmt: str, *args: Any) -> str:
    values = list(args)

    def verb(m: re.Match[str]) -> str:
        flags, width, prec, v = m.groups()
        if v == "%":
            return "%"
        if not values:
            return f"%!{v}(MISSING)"
        a = values.pop(0)
        if v in "vs":
            s = go_str(a)
        elif v == "q":
            s = json.dumps(go_str(a), ensure_ascii=False)
        elif v == "t":
            s = go_str(a)
        elif v == "c":
            s = chr(a) if isinstance(a, int) else go_str(a)
        else:
            spec = f"{flags}{'' if prec is None else '.' + prec}{v}"
            try:
                s = format(a, spec)
            except (TypeError, ValueError):
                s = f"%!{v}({go_type(a)}={go_str(a)})"
        return s.rjust(int(width)) if width and "-" not in flags else s.ljust(int(width)) if width else s

    out = _VERB.sub(verb, fmt)
    return out + "".join(f"%!(EXTRA {go_type(a)}={go_str(a)})" for a in values)


def _print(*args: Any) -> str:
    out = ""
    for i, a in enumerate(args):  # Go's Sprint: a space between operands when neither is a string
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(a)
    return out


def _html(*args: Any) -> str:
    s = _print(*args)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;").replace(
        '"', "&#34;").replace("\0", "\ufffd")  # fmt: skip


def _urlquery(*args: Any) -> str:
    import urllib.parse

    return urllib.parse.quote_plus(_print(*args))


BUILTINS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: a[-1], "or": lambda *a: a[-1], "not": lambda a: not truth(a), "len": _len, "index": _index,
    "eq": _eq, "ne": lambda a, b: not _eq(a, b), "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b), "gt": _ordered(lambda a, b: a > b), "ge": _ordered(lambda a, b: a >= b),
    "print": _print, "printf": _printf, "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "html": _html, "urlquery": _urlquery,
}  # fmt: skip


# -- Lima's list --format functions (pkg/textutil/textutil.go TemplateFuncMap) ------------------------------


def _json(v: Any) -> str:
    return json.dumps(None if v is MISSING else v, separators=(",", ":"), ensure_ascii=False)


def _yaml(v: Any) -> str:
    from limapy.config.load import dump_yaml

    return "---\n" + dump_yaml(None if v is MISSING else v).rstrip("\n")  # type: ignore[arg-type]


def _indent(*args: Any) -> str:
    n, s = (args[0], args[1]) if len(args) == 2 else (2, args[0]) if len(args) == 1 else (None, None)
    if not isinstance(n, int) or not isinstance(s, str):
        raise TemplateError("indent takes [N] STRING")
    pad = " " * n
    return "\n".join(pad + line if line else line for line in s.split("\n"))


def _missing(*args: Any) -> str:
    msg, s = (args[0], args[1]) if len(args) == 2 else ("<missing>", args[0]) if len(args) == 1 else (None, None)
    if not isinstance(msg, str):
        raise TemplateError("missing takes [MESSAGE] STRING")
    return msg if s is MISSING or s in (None, "", [], {}) else go_str(s)


LIMA_FUNCS: dict[str, Callable[..., Any]] = {"json": _json, "yaml": _yaml, "indent": _indent, "missing": _missing}
FUNCS = LIMA_FUNCS  # the name list.py used


