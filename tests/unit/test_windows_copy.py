"""`limapy copy` with a Windows guest (issue 26, item 3): `NAME:PATH` operands whose path has a drive letter's colon,
and each guest path as scp hands it to Win32-OpenSSH's sftp-server (limapy.guest.windows.copypath says which of
its rules, in PowerShell/openssh-portable's contrib/win32/win32compat/misc.c, each mapping follows). The round trip
itself is tests/e2e/test_windows_standin.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limapy import guest
from limapy.base.errors import UsageError
from limapy.guest.windows.copypath import copy_path


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("C:\\Users\\lima\\build", "/C:/Users/lima/build"),  # backslashes: scp's glob escape, never sent
        ("C:/Users/lima/build", "/C:/Users/lima/build"),  # sftp-server's sanitized_path drops the leading /
        ("/C:/Windows/win.ini", "/C:/Windows/win.ini"),  # realpath's own form, unchanged
        ("c:\\temp\\", "/c:/temp/"),  # a trailing separator stays (a directory target)
        ("D:\\", "/D:/"),
        ("C:", "/C:/"),  # the drive's root (sanitized_path: `/x:` -> `x:\`)
        ("C:\\Program Files\\app\\log.txt", "/C:/Program Files/app/log.txt"),  # spaces: SFTP takes the path whole
        ("C:\\logs\\*.txt", "/C:/logs/*.txt"),  # scp's wildcards stay
        ("build\\out", "build/out"),  # relative to the user's home (sftp-server's starting directory)
        ("notes.txt", "notes.txt"),
        ("\\Windows\\Temp", "/Windows/Temp"),  # rooted on the current drive
        ("", ""),  # `win:` is the home directory, as for scp
    ],
)
def test_windows_paths_as_sftp_server_reads_them(given: str, sent: str) -> None:
    assert copy_path(given) == sent
    assert guest.load("Windows").copy_path(given) == sent


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("C:temp\\x", "relative to the current directory of drive C:"),
        ("\\\\server\\share\\x", "network (UNC) path"),
        ("//server/share", "network (UNC) path"),
        ('C:\\a"b', "is not a Windows path"),
        ("C:\\a|b", "is not a Windows path"),
        ("C:\\a\nb", "is not a Windows path"),
    ],
)
def test_paths_windows_cannot_take_are_one_line(given: str, says: str) -> None:
    with pytest.raises(UsageError) as e:
        copy_path(given)
    assert says in e.value.message


def test_linux_paths_are_unchanged() -> None:
    assert guest.load("Linux").copy_path("C:\\x") == "C:\\x"


# --------------------------------------------------------------------------- the whole command, scp faked


@pytest.fixture
def windows_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A running `win` (os: Windows) whose scp call is recorded, with the exit code scp would give."""
    from limapy import driver
    from limapy.base import proc
    from limapy.instance import store, summary

    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    inst = store.Instance("win", tmp_path / "home" / "win")
    inst.dir.mkdir(parents=True)
    calls: list[list[str]] = []

    class View:
        os = "Windows"

    class Loaded:
        view = View()

    monkeypatch.setattr(store, "resolve", lambda name: inst if "win".startswith(name) else None)
    monkeypatch.setattr(summary, "load", lambda i: Loaded())
    monkeypatch.setattr(driver, "status", lambda i: store.RUNNING)

    def call(argv: list[str]) -> int:
        calls.append(argv)
        return 1 if any("missing" in a for a in argv) else 0

    monkeypatch.setattr(proc, "call", call)

    def no_probe(i: Any) -> bool:
        raise AssertionError("a Windows guest is not asked whether it has rsync")

    monkeypatch.setattr("limapy.copytool.guest_has_rsync", no_probe)
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: f"/usr/bin/{name}")  # the host has rsync
    return calls


def test_copy_to_and_from_a_windows_guest(windows_instance: list[list[str]]) -> None:
    from limapy.ops import copy

    assert copy.run(copy.parse(["./build", "win:C:\\Users\\lima\\build", "-r"])) == 0  # type: ignore[arg-type]
    assert copy.run(copy.parse(["wi:C:/Windows/win.ini", "."])) == 0  # type: ignore[arg-type]
    assert copy.run(copy.parse(["win:C:\\missing.txt", "."])) == 1  # type: ignore[arg-type]  # scp's exit code
    (to, back, missing) = windows_instance
    assert to[:1] == ["scp"] and to[-3:] == ["--", "./build", "lima-win:/C:/Users/lima/build"] and "-r" in to
    assert back[-3:] == ["--", "lima-win:/C:/Windows/win.ini", "."] and "-r" not in back
    assert missing[-2] == "lima-win:/C:/missing.txt"


def test_a_bad_windows_path_stops_before_scp(windows_instance: list[list[str]]) -> None:
    from limapy.base.errors import LimapyError
    from limapy.ops import copy

    with pytest.raises(UsageError):
        copy.copy(["win:\\\\server\\share", "."])
    with pytest.raises(LimapyError, match="rsync not available"):
        copy.copy(["win:C:/x", "."], backend="rsync")
    assert windows_instance == []


def test_copy_parses_a_drive_letters_colon_as_part_of_the_path() -> None:
    from limapy.ops import copy

    req = copy.parse(["-r", "win:C:\\x", "win2:C:/y:z", "--", "-file"])
    assert req is not None and req.recursive
    assert req.operands == ("win:C:\\x", "win2:C:/y:z", "-file")
