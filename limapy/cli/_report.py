"""How an error reaches the user: `limapy: ...` lines and one hint (the CLI's and its fast path's)."""

from __future__ import annotations

import sys

from limapy.base.errors import ConfigError, LimapyError


def report(err: LimapyError) -> None:
    """Every error as `limapy: ...` lines, one per problem (a ConfigError lists several), and one
    `limapy: hint: ...`.

    A message that spans lines (a tool's output appended to it) is folded into one line: the first line
    says what failed, the rest follows after a `: ` separator."""
    problems = err.problems if isinstance(err, ConfigError) else [err.message]
    for problem in problems:
        lines = [ln.strip() for ln in str(problem).splitlines() if ln.strip()]
        if not lines:
            continue
        text = lines[0] if len(lines) == 1 else lines[0].rstrip(":") + ": " + " | ".join(lines[1:])
        print(f"limapy: {text}", file=sys.stderr)
    if err.hint:
        hint = " ".join(ln.strip() for ln in err.hint.splitlines() if ln.strip())
        print(f"limapy: hint: {hint}", file=sys.stderr)
