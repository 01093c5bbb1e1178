"""`limapy shell` quoting for Windows guests (limapy.ssh.shell_script), with hostile arguments.

Win32-OpenSSH hands the remote command to the user's default shell (cmd.exe): `cmd.exe /c <script>`.
- cmd.exe: the script is the line itself; sshd's cmd.exe removes carets (every special character is
  ^-escaped, quotes included, so cmd never enters quote mode) and runs the line, whose program splits it
  with the MS C runtime rules (CommandLineToArgvW), modelled below.
- powershell.exe / pwsh.exe: the script carries the command text base64(UTF-16LE) in -EncodedCommand, so
  nothing between host and PowerShell can alter it: the outer script has only base64-safe characters.
"""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from limapy import ssh
from limapy.config.model import Spec

S = Spec.from_cfg

WINDOWS = {"os": "Windows", "user": {"name": "lima", "shell": "cmd.exe"}}
CMD_META = set("&|<>^()%!")


def argv_w(line: str) -> list[str]:
    """CommandLineToArgvW / MSVCRT (2008+) splitting of the arguments after the program name."""
    args: list[str] = []
    cur: list[str] = []
    in_quotes = have_arg = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                    i += n + 1
                else:
                    i += n
                have_arg = True
                continue
            cur.append("\\" * n)
            i += n
            have_arg = True
            continue
        if c == '"':
            if in_quotes and i + 1 < len(line) and line[i + 1] == '"':
                cur.append('"')
                i += 2
                have_arg = True
                continue
            in_quotes = not in_quotes
            have_arg = True
        elif c in " \t" and not in_quotes:
            if have_arg:
                args.append("".join(cur))
                cur, have_arg = [], False
        else:
            cur.append(c)
            have_arg = True
        i += 1
    if have_arg:
        args.append("".join(cur))
    return args


def cmd_line(script: str) -> str:
    """What the program receives after sshd's `cmd.exe /c <script>`: carets outside quotes removed.

    Also asserts cmd.exe would interpret nothing: no metacharacter outside quotes without a caret."""
    assert unescaped_meta(script) == [], script
    out, in_quotes, i = [], False, 0
    while i < len(script):
        c = script[i]
        if c == '"':
            in_quotes = not in_quotes
        elif c == "^" and not in_quotes and i + 1 < len(script):
            out.append(script[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def unescaped_meta(line: str) -> list[str]:
    """cmd.exe's view: metacharacters outside double quotes and not ^-escaped (cmd ignores backslashes)."""
    found, in_quotes, i = [], False, 0
    while i < len(line):
        c = line[i]
        if c == '"':
            in_quotes = not in_quotes
        elif c == "^" and not in_quotes:
            i += 2
            continue
        elif c in CMD_META and (not in_quotes or c == "%"):
            found.append(c)
        i += 1
    return found


# --------------------------------------------------------------------------- cmd.exe

PLAIN_HOSTILE = [
    ["echo", "two words"],
    ["echo", 'say "hi"'],
    ["echo", "C:\\Program Files\\"],  # trailing backslash before the closing quote
    ["echo", 'a\\\\"b'],
    ["echo", ""],
    ["echo", "tab\there"],
    ["dir", "C:\\it's"],
]


@pytest.mark.parametrize("args", PLAIN_HOSTILE, ids=range(len(PLAIN_HOSTILE)))
def test_cmd_arguments_round_trip(args: list[str]) -> None:
    line = cmd_line(ssh.shell_script(S(WINDOWS), args))
    assert argv_w(line) == args


@given(st.lists(st.text(alphabet=st.sampled_from(list('ab "\\\t.-_:')), max_size=12), min_size=1, max_size=5))
def test_cmd_round_trip_property(args: list[str]) -> None:
    args = ["prog", *args]
    assert argv_w(cmd_line(ssh.shell_script(S(WINDOWS), args))) == args


def test_cmd_workdir_and_default() -> None:
    assert ssh.shell_script(S(WINDOWS), []) == "cmd.exe"
    s = ssh.shell_script(S(WINDOWS), ["ver"], workdir="C:\\Users\\x y")
    assert s == 'cd /d ^"C:\\Users\\x y^" && ver'  # the cd is escaped as the command is
    cd, rest = s.split(" && ")  # the one operator limapy writes; every other `&` is `^&`
    assert cmd_line(cd) == 'cd /d "C:\\Users\\x y"' and cmd_line(rest) == "ver"
    # the line goes to sshd's cmd.exe as it is: a full path to cmd.exe changes nothing
    assert ssh.shell_script(S(WINDOWS), ["ver"], shell="C:\\Windows\\System32\\cmd.exe") == "ver"
    # under another DefaultShell (powershell), cmd.exe is called explicitly, as Lima does
    ps_default = {"os": "Windows", "user": {"name": "lima", "shell": "powershell.exe"}}
    assert ssh.shell_script(S(ps_default), ["ver"], shell="cmd.exe") == 'cmd.exe /c "ver"'


CMD_METACHAR_ARGS = [["echo", "a&b"], ["echo", "x|y"], ["echo", "1>2"], ["echo", "%PATH%"], ["echo", 'a"b & c']]


@pytest.mark.parametrize("args", CMD_METACHAR_ARGS, ids=["amp", "pipe", "redirect", "percent", "quoted-amp"])
def test_cmd_metacharacters_stay_literal(args: list[str]) -> None:
    script = ssh.shell_script(S(WINDOWS), args)
    assert unescaped_meta(script) == []
    assert argv_w(cmd_line(script)) == args


def test_cmd_metacharacters_inside_spaced_arguments_are_quoted() -> None:
    line = cmd_line(ssh.shell_script(S(WINDOWS), ["echo", "a & b | c > d"]))
    assert argv_w(line) == ["echo", "a & b | c > d"]


@given(st.lists(st.text(alphabet=st.sampled_from(list('ab "\\\t&|<>^()%!')), max_size=10), min_size=1, max_size=4))
def test_cmd_metacharacter_property(args: list[str]) -> None:
    args = ["prog", *args]
    assert argv_w(cmd_line(ssh.shell_script(S(WINDOWS), args))) == args


# --------------------------------------------------------------------------- PowerShell

PS_HOSTILE = [
    ["Write-Output", "'a \"b\" & c'"],
    ["Write-Output", "$(Remove-Item -Recurse C:\\)"],
    ["Write-Output", "`n`t; exit 3"],
    ["Write-Output", "ünïcødé ✓ 中文"],
    ["Write-Output", "line1\nline2\r\n"],
    ["Write-Output", "%PATH% ^ | < > !x!"],
]


@pytest.mark.parametrize("shell", ["powershell.exe", "pwsh.exe", "PowerShell.exe"])
@pytest.mark.parametrize("args", PS_HOSTILE, ids=range(len(PS_HOSTILE)))
def test_powershell_text_arrives_intact(shell: str, args: list[str]) -> None:
    s = ssh.shell_script(S(WINDOWS), args, shell=shell)
    head, encoded = s.rsplit(" ", 1)
    assert head == f"{shell} -NoLogo -EncodedCommand"
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", encoded)  # nothing ssh or cmd.exe could reinterpret
    assert base64.b64decode(encoded).decode("utf-16-le") == " ".join(args)


WIN_PATH_TEXT = st.text(min_size=1).filter(lambda t: t.isprintable() and not set('"<>|?*') & set(t))


@given(WIN_PATH_TEXT, st.text())
def test_powershell_workdir_is_a_literal(workdir: str, arg: str) -> None:
    s = ssh.shell_script(S(WINDOWS), ["Get-Location", arg], shell="pwsh.exe", workdir=workdir)
    text = base64.b64decode(s.rsplit(" ", 1)[1]).decode("utf-16-le", errors="surrogatepass")
    prefix = "Set-Location -LiteralPath '"
    assert text.startswith(prefix)
    # The single-quoted literal ends at the first lone quote: it must be exactly the workdir.
    rest = text[len(prefix) :]
    m = re.match(r"((?:[^']|'')*)'; ", rest, re.S)
    assert m and m.group(1).replace("''", "'") == workdir


@given(WIN_PATH_TEXT)
def test_cmd_workdir_is_literal(workdir: str) -> None:
    """`--workdir` goes through the one cmd.exe that parses the line: every special character in it stays
    text (it was pasted unescaped: `C:\\x" & calc & "` ran calc)."""
    s = ssh.shell_script(S(WINDOWS), ["ver"], workdir=workdir)
    cd, rest = s.split(" && ")  # the one operator limapy writes; every other `&` is `^&`
    assert cmd_line(cd) == f'cd /d "{workdir}"' and cmd_line(rest) == "ver"


@pytest.mark.parametrize("workdir", ['C:\\x" & calc & "', "C:\\a\nb", 'x"y', "", "a|b"])
def test_cmd_workdir_refuses_what_no_windows_path_holds(workdir: str) -> None:
    with pytest.raises(ssh.UsageError, match="not a Windows path"):
        ssh.shell_script(S(WINDOWS), ["ver"], workdir=workdir)
