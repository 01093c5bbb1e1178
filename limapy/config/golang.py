"""Go's formats as Lima's validation messages show them: semver parsing (versionutil + go-semver), %#q and %q
quoting, and how Go prints a []string."""

from __future__ import annotations

import re
from typing import Any

_SEMVER_IDENT_RE = re.compile(r"^[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*\Z")
_INT_RE = re.compile(r"^[+-]?[0-9]+\Z")

Semver = tuple[int, int, int]


def parse_semver(v: str) -> Semver:
    """Lima's versionutil.Parse: drop a leading `v` and everything from the first `-` (so a
    `git describe` version like `1.1.1-114-g5bf5e513` is 1.1.1), then go-semver's rules, whose
    error messages Lima shows. Raises ValueError with that message."""
    v = v.removeprefix("v").split("-", 1)[0]
    v, _, metadata = v.partition("+")
    parts = v.split(".", 2)
    if len(parts) != 3:
        raise ValueError(f"{v} is not in dotted-tri format")
    if metadata and not _SEMVER_IDENT_RE.fullmatch(metadata):
        raise ValueError(f"failed to validate metadata: {metadata} is not a valid semver identifier")
    out = []
    for part in parts:
        if not _INT_RE.fullmatch(part):
            raise ValueError(f'strconv.ParseInt: parsing "{part}": invalid syntax')
        out.append(int(part))
    return out[0], out[1], out[2]


def go_q(s: Any) -> str:
    """Go's %#q: `s` in backquotes when it can be, else a double-quoted Go string."""
    text = str(s)
    if "`" not in text and all(c == "\t" or (c.isprintable() and c != "\ufeff") for c in text):
        return f"`{text}`"
    return go_quote(text)


def go_quote(text: str) -> str:
    """Go's %q for a string (strconv.Quote)."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[c])
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x10000:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x80 else f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def go_list(items: list[str], quote: bool = False) -> str:
    if quote:
        return "[" + " ".join(f"`{i}`" for i in items) + "]"
    return "[" + " ".join(items) + "]"
