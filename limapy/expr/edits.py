"""`--set EXPR` and the shortcut flags: a small, safe subset of yq applied to template data.

Supported, joined with `|`: `.a.b = VALUE`, `.a[0].b = VALUE`, `.a += VALUE` (lists), `.a = VALUE + .a`
(prepend to a list), `.a[].b = VALUE` (every entry of a list), `del(.a.b)`.
VALUE is YAML (`"str"`, `4`, `true`, `[1, 2]`, `{k: v}`). Anything else is a usage error naming the
unsupported part, never a silent no-op.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limapy.base.errors import UsageError

if TYPE_CHECKING:
    from limapy.base.records import Config

_SEG = r"(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\[\]|\[\"[^\"]+\"\])"
_PATH_RE = re.compile(r"\.?" + _SEG + r"*\Z")
_TOKEN_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[\"([^\"]+)\"\]|(\[\])")
#: `[]` in a path: every entry of the list there.
EACH = -1
_PREPEND_RE = re.compile(r"(.+?)\s*\+\s*(\.[A-Za-z_][A-Za-z0-9_.\-\[\]\"]*)\s*\Z", re.S)


def _shown(expr: str, limit: int = 80) -> str:
    """An expression for a message: whole when short, else its start and how long it is (one readable line)."""
    return expr if len(expr) <= limit else f"{expr[:limit]}... ({len(expr)} characters)"


def _path(text: str, expr: str) -> list[str | int]:
    text = text.strip()
    if not _PATH_RE.fullmatch(text):
        raise UsageError(f"--set `{_shown(expr)}`: `{_shown(text, 40)}` is not a field path such as .cpus or "
                         ".images[0].location")  # fmt: skip
    out: list[str | int] = []
    for m in _TOKEN_RE.finditer(text):
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        elif m.group(3) is not None:
            out.append(m.group(3))
        else:
            out.append(EACH)
    if not out:
        raise UsageError(f"--set `{_shown(expr)}`: `{text}` is the whole document; set or delete a field in it, "
                         "such as .cpus")  # fmt: skip
    return out


@dataclass(frozen=True)
class Edit:
    """An edit of the template and where it came from, for messages (`--set '...'`, `--cpus 4`)."""

    expr: str
    origin: str
    #: The field must exist before the edit (`--param K=V`: Lima refuses a param the template does not define).
    must_exist: bool = False

    @classmethod
    def of(cls, item: str | Edit) -> Edit:
        return item if isinstance(item, Edit) else cls(item, f"--set '{item}'")


def _value(text: str, expr: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        raise UsageError(f"--set `{_shown(expr)}`: cannot read the value `{_shown(text.strip(), 40)}` as YAML",
                         ) from None
    except (ValueError, OverflowError, RecursionError) as e:
        if "digits" in str(e):  # Python's limit on int(): a number no field of lima.yaml can hold anyway
            digits = sum(c.isdigit() for c in text)
            why = f"it is a number of {digits} digits; no field takes a number that long"
        else:
            why = str(e)
        raise UsageError(f"--set `{_shown(expr)}`: the value `{_shown(text.strip(), 40)}` cannot be read: {why}",
                         ) from None


def _parent(data: Config, path: list[str | int], expr: str, create: bool) -> tuple[Any, str | int]:
    cur: Any = data
    for i, part in enumerate(path[:-1]):
        nxt_is_index = isinstance(path[i + 1], int)
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                raise UsageError(f"--set `{_shown(expr)}`: index [{part}] does not exist")
            cur = cur[part]
            continue
        if not isinstance(cur, dict):
            raise UsageError(f"--set `{_shown(expr)}`: `{part}` is not inside a mapping")
        if cur.get(part) is None:
            if not create:
                return None, path[-1]
            cur[part] = [] if nxt_is_index else {}
        cur = cur[part]
    return cur, path[-1]


#: `.images = [.images[] | select(.variant == "V")]`: Lima's --image-variant/--arch-variant (editflags.go l.401).
_FILTER_RE = re.compile(r'\.([A-Za-z_]\w*)\s*=\s*\[\s*\.\1\[\]\s*\|\s*select\(\s*\.([A-Za-z_]\w*)\s*==\s*'
                        r'("(?:[^"\\]|\\.)*")\s*\)\s*\]')


def _filter(data: Config, m: re.Match[str]) -> tuple[str, ...]:
    import json

    key, field, want = m.group(1), m.group(2), json.loads(m.group(3))
    items = data.get(key)
    data[key] = [i for i in items if isinstance(i, dict) and i.get(field) == want] if isinstance(items, list) else []
    return (key,)


def apply(data: Config, expr: str) -> list[tuple[str | int, ...]]:
    """Apply `expr`; returns the paths it set or removed (so messages can name the edit, not the file)."""
    changed: list[tuple[str | int, ...]] = []
    for part in _split(expr):
        part = part.strip()
        fm = _FILTER_RE.fullmatch(part)
        if fm:
            changed.append(_filter(data, fm))
            continue
        m = re.fullmatch(r"del\((.+)\)", part)
        if m:
            del_path = _path(m.group(1), expr)
            changed.append(tuple(del_path))
            parent, key = _parent(data, del_path, expr, create=False)
            if isinstance(parent, dict):
                parent.pop(str(key), None)
            elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
                del parent[key]
            continue
        m = re.fullmatch(r"(\.[^=+]*?)\s*(\+?=)\s*(.+)", part, flags=re.S)
        if not m:
            raise UsageError(
                f"--set `{_shown(expr)}`: unsupported expression `{part}`",
                hint="limapy supports `.a.b = VALUE`, `.list += [VALUE]` and `del(.a.b)`",
            )
        path = _path(m.group(1), expr)
        text, prepend = m.group(3), False
        pm = _PREPEND_RE.fullmatch(text) if m.group(2) == "=" else None
        if pm and _path(pm.group(2), expr) == path:
            text, prepend = pm.group(1), True
        value = _value(text, expr)
        if prepend and not isinstance(value, list):
            raise UsageError(f"--set `{_shown(expr)}`: only a list can be prepended to a list")
        if EACH in path:
            i = path.index(EACH)
            items, _ = _parent(data, [*path[:i], 0], expr, create=False)  # the list at path[:i]
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    apply_one(item, path[i + 1 :], value, m.group(2), expr, prepend)
            path = path[:i]
        else:
            apply_one(data, path, value, m.group(2), expr, prepend)
        changed.append(tuple(path))
    return changed


def target_exists(data: Config, expr: str) -> bool:
    """Whether the field a `PATH = VALUE` expression sets is already there."""
    m = re.fullmatch(r"(\.[^=+]*?)\s*=.*", expr.strip(), flags=re.S)
    if not m:
        return False
    cur: Any = data
    for part in _path(m.group(1), expr):
        if isinstance(part, str) and isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(part, int) and isinstance(cur, list) and 0 <= part < len(cur):
            cur = cur[part]
        else:
            return False
    return True


def apply_one(data: Config, path: list[str | int], value: Any, op: str, expr: str, prepend: bool) -> None:
    """One `=` / `+=` at `path` under `data` (no `[]` left in `path`)."""
    if EACH in path:
        raise UsageError(f"--set `{_shown(expr)}`: only one `[]` is supported")
    parent, key = _parent(data, path, expr, create=True)
    if isinstance(key, int):
        if not isinstance(parent, list):
            raise UsageError(f"--set `{_shown(expr)}`: [{key}] needs a list")
        while len(parent) <= key:
            parent.append({})
    elif not isinstance(parent, dict):
        raise UsageError(f"--set `{_shown(expr)}`: `{key}` is not inside a mapping")
    if op == "+=" or prepend:
        old = parent[key] if isinstance(parent, list) and isinstance(key, int) else parent.get(key)
        if old is None:
            old = []
        if not isinstance(old, list):
            raise UsageError(f"--set `{_shown(expr)}`: `{'+=' if op == '+=' else '+'}` needs a list field")
        new = value if isinstance(value, list) else [value]
        value = new + old if prepend else old + new
    parent[key] = value


def _split(expr: str) -> list[str]:
    """Split on `|` outside quotes and brackets."""
    out, buf, depth, quote = [], "", 0, ""
    for ch in expr:
        if quote:
            buf += ch
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(buf)
            buf = ""
            continue
        buf += ch
    out.append(buf)
    return [p for p in out if p.strip()]


def shortcut_sets(cpus: int | None, memory: float | None, disk: float | None) -> list[Edit]:
    """Lima's `--cpus/--memory/--disk` flags as the yq expressions Lima writes for them."""
    out = []
    if cpus is not None:
        out.append(Edit(f".cpus = {int(cpus)}", f"--cpus {cpus}"))
    if memory is not None:
        out.append(Edit(f'.memory = "{_num(memory, "--memory")}GiB"', f"--memory {_typed(memory)}"))
    if disk is not None:
        out.append(Edit(f'.disk = "{_num(disk, "--disk")}GiB"', f"--disk {_typed(disk)}"))
    return out


def _typed(v: float) -> str:
    """A flag's number as the user would have typed it, for messages (`1e+30`, not 31 digits)."""
    return str(int(v)) if math.isfinite(v) and float(v).is_integer() and abs(v) < 1e16 else repr(float(v))


def _num(v: float, flag: str) -> str:
    if not math.isfinite(v):
        raise UsageError(f"{flag} {v}: not a size in GiB")
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))
