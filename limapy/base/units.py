"""Sizes the way Lima (go-units) reads and prints them: "4G", "4GB" and "4GiB" are all 4 x 1024^3; and
durations as `--timeout` takes them."""

from __future__ import annotations

import re

_RAM_RE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")
_MULT = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_ABBRS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def parse_size(value: str | int) -> int:
    """go-units RAMInBytes. Raises ValueError with go-units' wording on bad input."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size: '{value}'")
    if isinstance(value, int):
        return value
    m = _RAM_RE.fullmatch(value)
    if not m:
        raise ValueError(f"invalid size: '{value}'")
    number = float(m.group(1)) if m.group(1).count(".") <= 1 else None
    if number is None:
        raise ValueError(f"invalid size: '{value}'")
    unit = (m.group(2) or "").lower()
    return int(number * _MULT.get(unit, 1))


def format_size(size: float) -> str:
    """go-units BytesSize: binary units, %.4g ("4GiB", "3.812GiB")."""
    i = 0
    size = float(size)
    while size >= 1024 and i < len(_ABBRS) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{_ABBRS[i]}"


def format_duration(seconds: float) -> str:
    """`45 s`, `2 min`, `1 h 30 min`: how long, as a person says it."""
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    h, m = divmod(s // 60, 60)
    return f"{h} h {m} min" if h and m else f"{h} h" if h else f"{m} min"


def format_transfer(size: float) -> str:
    """A byte count as Lima's download progress bar prints it (cheggaaa/pb v3 `formatBytes`, binary units, two
    decimals and a space: "512 B", "12.34 MiB", "1.05 GiB"). Sizes in lima.yaml and `list` use format_size."""
    n = int(size)
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.2f} {unit}"
    return f"{n} B"


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1h30m` -> seconds."""
    from limapy.base.errors import UsageError

    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise UsageError(f"--timeout {text!r}: use a duration such as 90s, 10m or 1h")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
