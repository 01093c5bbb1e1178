"""A Windows guest path of `limapy copy` (`win:C:\\x`, `win:C:/x`, `win:docs\\a.txt`) as scp gives it to the guest's
Win32-OpenSSH.

limapy's scp speaks SFTP (OpenSSH 9.0's default), so the path reaches Win32-OpenSSH's sftp-server, never a shell.
Its rules (PowerShell/openssh-portable, contrib/win32/win32compat/misc.c): `sanitized_path` drops the `/` before
`X:` (`/C:/x` -> `C:/x`; `/C:` -> `C:\\`), and `realpath` answers in the same `/C:/Users/...` form, with forward
slashes, which Windows accepts as separators. A backslash, though, is the glob escape of the scp client, which globs
every remote source (`C:\\Windows` would reach the guest as `C:Windows`). So: backslashes become `/`, a drive path
gets sftp-server's leading `/`, a relative path stays relative to the user's home (sftp-server's starting
directory). Refused, with one line: a drive-relative path (`C:x`), a UNC path (`\\\\server\\share`) and the
characters no Windows path holds.
"""

from __future__ import annotations

import re

from limapy.base.errors import UsageError

_DRIVE = re.compile(r"/?([A-Za-z]):(.*)", re.DOTALL)
#: No Windows file name holds these (Microsoft, "Naming Files, Paths, and Namespaces"); `*` and `?` stay, as scp's
#: wildcards for sources.
_BAD = frozenset('"<>|')


def copy_path(path: str) -> str:
    """`path` as scp's remote operand for a Windows guest (limapy.guest.GuestOS.copy_path)."""
    if _BAD & set(path) or any(ord(c) < 32 for c in path):
        hint = 'a Windows path holds no ", <, >, | or control character'
        raise UsageError(f"{path!r} is not a Windows path", hint=hint)
    slashed = path.replace("\\", "/")
    if slashed.startswith("//"):
        raise UsageError(f"{path!r} is a network (UNC) path", hint="copy to a path on one of the guest's drives")
    m = _DRIVE.fullmatch(slashed)
    if m is None:
        return slashed  # relative to the user's home, or rooted on the current drive (`\\x`)
    drive, rest = m.groups()
    if rest and not rest.startswith("/"):
        raise UsageError(
            f"{path!r} is relative to the current directory of drive {drive}:",
            hint=f"write the full path, {drive}:/{rest} or {drive}:\\{rest} in quotes (a shell drops unquoted "
            "backslashes)",
        )
    return f"/{drive}:{rest or '/'}"
