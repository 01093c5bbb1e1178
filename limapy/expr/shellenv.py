"""Which host environment variables `limapy shell --preserve-env` sends to the guest (Lima's envutil rules).

A variable is sent unless it matches the block list; one matching the allow list is sent even when blocked.
Patterns are comma-separated, blanks ignored, `*` matches any run of characters anywhere in the pattern.

- `LIMAPY_SHELLENV_BLOCK` (or Lima's `LIMA_SHELLENV_BLOCK`) replaces the default block list; a leading `+`
  adds to it instead.
- `LIMAPY_SHELLENV_ALLOW` (or `LIMA_SHELLENV_ALLOW`) names what passes in any case.

The default block list is Lima's (pkg/envutil): what describes the host session rather than the work
(HOME, PATH, USER, SHELL, TERM, SSH_*, XDG_*, LD_*/DYLD_*, shell internals). `info` shows it as
`shellEnvBlock`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from limapy.base.errors import UsageError

DEFAULT_BLOCK = (
    "BASH*", "DISPLAY", "DYLD_*", "EUID", "FPATH", "GID", "GROUP", "HOME", "HOSTNAME", "LD_*", "LOGNAME",
    "OLDPWD", "PATH", "PWD", "SHELL", "SHLVL", "SSH_*", "TERM", "TERMINFO", "TMPDIR", "UID", "USER",
    "XAUTHORITY", "XDG_*", "ZDOTDIR", "ZSH*", "_*",
)  # fmt: skip
ENV_BLOCK = ("LIMAPY_SHELLENV_BLOCK", "LIMA_SHELLENV_BLOCK")
ENV_ALLOW = ("LIMAPY_SHELLENV_ALLOW", "LIMA_SHELLENV_ALLOW")
_PATTERN = re.compile(r"[A-Za-z0-9_*]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PatternError(UsageError):
    pass


def _setting(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    for n in names:
        value = env.get(n)
        if value is not None and value.strip():
            return n, value
    return None


def patterns(text: str, origin: str) -> list[str]:
    out = []
    for part in text.split(","):
        p = part.strip()
        if not p:
            continue
        if not _PATTERN.fullmatch(p):
            bad = next(c for c in p if not (c.isascii() and (c.isalnum() or c in "_*")))
            raise PatternError(
                f"{origin}: pattern {p!r} holds {bad!r}", hint="patterns are letters, digits, `_` and `*`"
            )
        out.append(p)
    return out


def block_list(env: Mapping[str, str]) -> list[str]:
    found = _setting(env, ENV_BLOCK)
    if found is None:
        return list(DEFAULT_BLOCK)
    origin, value = found
    value = value.strip()
    if value.startswith("+"):
        return [*DEFAULT_BLOCK, *patterns(value[1:], origin)]
    return patterns(value, origin)


def allow_list(env: Mapping[str, str]) -> list[str]:
    found = _setting(env, ENV_ALLOW)
    return patterns(found[1], found[0]) if found else []


def _compile(pats: Sequence[str]) -> re.Pattern[str] | None:
    if not pats:
        return None
    return re.compile("|".join("(?:" + ".*".join(map(re.escape, p.split("*"))) + ")" for p in pats))


def filtered(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of `env` to send, in name order. Raises PatternError for a bad pattern."""
    block = _compile(block_list(env))
    allow = _compile(allow_list(env))
    out = {}
    for name in sorted(env):
        if not _NAME.fullmatch(name):
            continue  # not a name a shell can receive
        if block is not None and block.fullmatch(name) and not (allow is not None and allow.fullmatch(name)):
            continue
        out[name] = env[name]
    return out
