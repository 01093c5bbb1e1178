"""`limapy shell` in a Windows guest: Win32-OpenSSH runs the remote command through the user's DefaultShell, which
the first-logon script sets from `user.shell` (`cmd.exe /c <script>` for cmd.exe). For cmd.exe the arguments are
quoted for CommandLineToArgvW and every cmd special character is `^`-escaped; PowerShell gets the command text as
`-EncodedCommand` (DESIGN.md, "`limapy shell` on Windows")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from limapy.base import proc
from limapy.base.errors import UsageError


def shell_script(
    spec: Any,
    command: Sequence[str],
    *,
    workdir: str | None = None,
    shell: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    host_home: Path | None = None,
) -> str:
    """The remote command `limapy shell` sends (`spec`: limapy.ssh.ShellSpec); the host's directory and `env` do
    not reach a Windows guest."""
    default_shell = spec.user.shell
    return _windows_script(shell or default_shell, command, workdir, default_shell)


CMD_SPECIAL = frozenset('()%!^"<>&|')
#: Characters no Windows path holds (besides control characters).
_WIN_PATH_BAD = frozenset('"<>|?*')


def cmd_escape(line: str) -> str:
    """Caret-escape every character cmd.exe would interpret, quotes included, so cmd passes `line` on intact.

    With every `"` escaped cmd never enters quote mode and removes each caret; `%VAR%` becomes
    `%VAR^%`, a variable name that does not exist, which cmd leaves alone before removing the caret.
    """
    return "".join("^" + c if c in CMD_SPECIAL else c for c in line)


def _shell_name(shell: str) -> str:
    return shell.rsplit("\\", 1)[-1].rsplit("/", 1)[-1].lower()


def _windows_script(shell: str, command: Sequence[str], workdir: str | None, default_shell: str) -> str:
    """The remote command for a Windows guest. Win32-OpenSSH runs it with the user's DefaultShell, which
    limapy's first-logon script sets from `user.shell` (`cmd.exe /c <script>` for cmd.exe)."""
    name = _shell_name(shell)
    from limapy.guest.windows.rules import WINDOWS_SHELLS

    if name not in WINDOWS_SHELLS:
        raise UsageError(
            f"shell `{shell}` cannot be used with a Windows guest",
            hint=f"use one of {', '.join(WINDOWS_SHELLS)}",
        )
    # Quote the shell only when it must be: sshd's own `cmd.exe /c` strips a leading quote pair.
    shell = f'"{shell}"' if any(c.isspace() for c in shell) else shell
    bad = workdir is not None and (not workdir or bool(_WIN_PATH_BAD & set(workdir)) or not workdir.isprintable())
    if bad:
        raise UsageError(
            f"--workdir {workdir!r} is not a Windows path", hint='a Windows path has no `"`, `<`, `>`, `|`, `?` or `*`'
        )
    if name == "cmd.exe":
        # The cd is escaped like the command: every cmd special character, quotes included, is literal.
        cd = cmd_escape(f'cd /d "{workdir}"') if workdir else ""
        if not command:
            return f"{shell} /k {cd}" if cd else shell
        # Arguments are literal (as on Linux guests): quoted for CommandLineToArgvW, then escaped for the
        # one cmd.exe that parses the line, sshd's own `cmd.exe /c`.
        joined = cmd_escape(proc.windows_cmdline(command))
        line = f"{cd} && {joined}" if cd else joined
        if _shell_name(default_shell) == "cmd.exe":
            return line
        return f'{shell} /c "{line}"'  # under another DefaultShell: Lima's form
    # PowerShell: the text is what `-Command` would run (arguments joined with spaces, as PowerShell does);
    # it travels base64-encoded so neither ssh nor the guest's cmd.exe can mangle quotes or metacharacters.
    text = " ".join(command)
    if workdir:
        cd = "Set-Location -LiteralPath '" + workdir.replace("'", "''") + "'"
        text = f"{cd}; {text}" if text else cd
    if not text:
        return shell
    import base64

    encoded = base64.b64encode(text.encode("utf-16-le")).decode()
    no_exit = " -NoExit" if not command else ""
    return f"{shell} -NoLogo{no_exit} -EncodedCommand {encoded}"
