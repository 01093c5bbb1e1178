"""`mountType: smb` (issue 26 item 1) without a guest: lima.yaml's rules (the Windows default, the refusals with
their position), QEMU's guestfwd rule and its quoting, the host-tool check (a missing smbd is one line with the
install hint), and the Windows mapping script (parsed with PowerShell's grammar; the password never in it).
tests/integration/test_smb_server.py runs the real smbd; tests/e2e/test_smb.py mounts it from a guest."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import ExternalToolError, LimapyError
from limapy.cli import main
from limapy.config.model import Mount, Spec
from limapy.driver import hosttools
from limapy.guest import smb
from limapy.guest.windows import folders
from limapy.qemu.cmdline import Paths
from tests import psgrammar
from tests.unit.test_qemu_cmdline import base_cfg, build_argv, fw, host, paths_for

WIN = """\
base: template:experimental/windows
plain: false
mounts:
- location: /tmp/lima-ro
- location: /tmp/lima-rw
  writable: true
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    f = tmp_path / "x.yaml"
    f.write_text(text)
    code = main(["validate", *extra, str(f)])
    out, err = capsys.readouterr()
    return code, out + err


def test_windows_mounts_default_to_smb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, WIN, capsys, "--fill")
    assert code == 0, out
    assert "\nmountType: smb\n" in out


def test_windows_refuses_another_mount_type_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, WIN + "mountType: 9p\n", capsys)
    assert code == 1
    assert out.strip() == (f"limapy: {tmp_path / 'x.yaml'}:7:1: a Windows guest mounts host folders over `smb` only "
                           "(limapy), got `9p`; remove `mountType`, or set `plain: true` for no mounts")  # fmt: skip


def test_plain_windows_keeps_any_mount_type_and_no_mounts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = WIN.replace("plain: false", "plain: true") + "mountType: 9p\n"
    assert validate(tmp_path, text, capsys)[0] == 0
    from limapy.config import load_config

    spec = load_config(str(tmp_path / "x.yaml")).spec
    assert spec.shared_mounts == () and spec.mounts_of("smb") == ()


def test_too_many_windows_mounts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = "".join(f"- location: /tmp/m{i}\n" for i in range(20))
    code, out = validate(tmp_path, "base: template:experimental/windows\nplain: false\nmounts:\n" + many, capsys)
    # the template's own two mounts come first (a `base:` list merges), then these twenty
    assert code == 1 and ":23:3: a Windows guest maps at most 19 mounts (drive letters Z: down to H:), got 22" in out


def test_smb_is_a_mount_type_for_linux_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, "images: [{location: /tmp/x.img}]\nmountType: smb\n", capsys)
    assert code == 0, out
    code, out = validate(tmp_path, "images: [{location: /tmp/x.img}]\nmountType: cifs\n", capsys)
    assert code == 1 and "or `smb` (limapy), got `cifs`" in out


def _cfg(os_: str, **extra: Any) -> dict[str, Any]:
    mounts = [{"location": "/tmp/ro", "mountPoint": "/tmp/ro", "writable": False},
              {"location": "/tmp/rw", "mountPoint": "/tmp/rw", "writable": True}]  # fmt: skip
    return base_cfg(os_, "x86_64", mounts=mounts, mountType="smb", **extra)


@pytest.mark.parametrize("directory", ["/home/u/.limapy/inst", "/tmp/a b,c'd$(x)"])
def test_guestfwd_runs_the_script_and_nothing_else(directory: str) -> None:
    inst = Path(directory)
    script = inst / "smb" / smb.SCRIPT
    paths = paths_for(inst, smb_script=script, **fw("x86_64"))
    argv = build_argv(_cfg("Linux"), "inst", paths, host("x86_64"), ssh_port=60022, mac="52:55:55:aa:bb:cc")
    netdev = argv[argv.index("-netdev") + 1]
    # QEMU splits options at single commas; the rule is the last one, its commas doubled
    options = netdev.replace(",,", "\0").split(",")
    rule = options[-1].replace("\0", ",")
    assert rule.startswith(f"guestfwd=tcp:{smb.SERVER}:445-cmd:")
    assert shlex.split(rule.split("-cmd:", 1)[1]) == [str(script)]  # g_shell_parse_argv: one word, no expansion
    assert not [o for o in options if o.startswith("hostfwd") and "445" in o]


def test_no_guestfwd_without_smb_mounts() -> None:
    argv = build_argv(_cfg("Linux"), "inst", paths_for(Path("/i"), **fw("x86_64")), host("x86_64"),
                      ssh_port=60022, mac="52:55:55:aa:bb:cc")  # fmt: skip
    assert "guestfwd" not in " ".join(argv)
    assert Paths.for_instance.__doc__  # the planner sets smb_script only when a boot has smb mounts


def test_smb_conf_refuses_paths_it_cannot_carry() -> None:
    for bad in ("/tmp/a%b", "/tmp/a\nb"):
        with pytest.raises(LimapyError, match=r"smb\.conf cannot hold a path"):
            smb.conf_text(Path(bad), "u", [])


def test_the_script_names_no_path_but_the_smbd() -> None:
    text = smb.script_text("/usr/sbin/smbd")
    assert 'here=$(dirname -- "$0")' in text and "exec /usr/sbin/smbd --configfile=\"$here/smb.conf\"" in text


def test_conf_read_only_and_account() -> None:
    conf = smb.conf_text(Path("/i/smb"), "alice", [smb.Share("m0", "/x", False), smb.Share("m1", "/y", True)])
    assert "[m0]\npath = /i/smb/shares/m0\nread only = yes\nforce user = alice" in conf
    assert "[m1]\npath = /i/smb/shares/m1\nread only = no\n" in conf
    assert "server signing = mandatory" in conf and "map to guest = Never" in conf and "/x" not in conf


def test_doctor_and_create_ask_for_samba(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    monkeypatch.setattr(hosttools, "SMBD", dataclasses.replace(hosttools.SMBD, find=lambda: None))
    monkeypatch.setattr(hosttools, "system", lambda: "debian")
    spec = Spec.from_cfg(_cfg("Linux"))
    req = hosttools.Request.of(spec)
    needs = {n.tool.name: n for n in hosttools.needs(req)}
    assert needs["smbd (samba)"].missing
    with pytest.raises(ExternalToolError) as e:
        hosttools.require(req)
    assert "smbd (samba) (host folders over SMB (mountType: smb))" in e.value.message
    assert "Debian/Ubuntu: sudo apt install samba" in (e.value.hint or "")
    optional = {n.tool.name: n for n in hosttools.needs(hosttools.Request(windows=True))}
    assert not optional["smbd (samba)"].required


SECRET = "s3cret-'\u2019-pw"


def test_mapping_script_parses_and_holds_no_secret() -> None:
    for user in ("root", "o'brien\u2019x"):
        script = folders.mapping_script(user, 3)
        assert psgrammar.errors(script) == [], script
        assert SECRET not in script
        assert [c for c in psgrammar.commands(script) if "Smb" in c] == [
            "Get-SmbGlobalMapping", "Remove-SmbGlobalMapping", "New-SmbGlobalMapping"]
        assert "'\\\\192.168.5.4\\m2', 'X:'" in script
    assert "@('o''brien\u2019\u2019x', $password)" in folders.mapping_script("o'brien\u2019x", 1)


class Channel:
    def __init__(self, reply: str, status: int = 0) -> None:
        self.reply, self.sent, self.status = reply, b"", status

    def settimeout(self, t: float) -> None: ...
    def sendall(self, data: bytes) -> None:
        self.sent += data

    def shutdown_write(self) -> None: ...
    def makefile(self, mode: str) -> Any:
        import io

        return io.BytesIO(self.reply.encode())

    def recv_exit_status(self) -> int:
        return self.status

    def close(self) -> None: ...


class Conn:
    def __init__(self, reply: str, status: int = 0) -> None:
        self.commands: list[str] = []
        self.chan = Channel(reply, status)

    def exec_channel(self, command: str) -> Channel:
        self.commands.append(command)
        return self.chan


def test_the_password_goes_on_stdin_only(tmp_path: Path) -> None:
    spec = Spec.from_cfg(_cfg("Windows"))
    inst = type("I", (), {"smb_dir": tmp_path})()
    (tmp_path / smb.PASSWORD).write_text(SECRET + "\n")
    conn = Conn("mapped \\\\192.168.5.4\\m0 Z:\r\nfailed \\\\192.168.5.4\\m1 Y: -- The local device name is in use\r\n")
    warnings: list[str] = []
    live = folders.Folders().mount(conn, spec, warnings.append, None, inst)
    assert [(m.mount.location, m.drive) for m in live] == [("/tmp/ro", "Z:")]
    assert warnings == ["mapping a host folder in the guest failed \\\\192.168.5.4\\m1 Y: -- The local device "
                        "name is in use"]  # fmt: skip
    assert conn.chan.sent == (SECRET + "\r\n").encode()
    (command,) = conn.commands
    assert SECRET not in command
    encoded = command.rsplit(" ", 1)[1]
    assert base64.b64decode(encoded).decode("utf-16-le") == folders.mapping_script(smb.account(), 2)
    assert isinstance(live[0].mount, Mount) and live[0].how == "Z: (\\\\192.168.5.4\\m0)"


def test_a_mapping_script_that_says_nothing_is_a_warning(tmp_path: Path) -> None:
    """A guest where the script never ran (the command not found, a policy) answers nothing on stdout: each
    unmapped folder is named in a warning, not passed over in silence (the stand-in e2e met this)."""
    spec = Spec.from_cfg(_cfg("Windows"))
    inst = type("I", (), {"smb_dir": tmp_path})()
    (tmp_path / smb.PASSWORD).write_text(SECRET + "\n")
    warnings: list[str] = []
    assert folders.Folders().mount(Conn("", status=127), spec, warnings.append, None, inst) == []
    assert warnings == ["host folders not mapped: /tmp/ro (Z:), /tmp/rw (Y:) (the guest's mapping script ended "
                        "with status 127 and said nothing of them)"]  # fmt: skip
    assert SECRET not in warnings[0]
    warnings.clear()
    conn = Conn("mapped \\\\192.168.5.4\\m0 Z:\r\n", status=1)  # stopped after the first share
    assert len(folders.Folders().mount(conn, spec, warnings.append, None, inst)) == 1
    assert warnings and "/tmp/rw (Y:)" in warnings[0] and "/tmp/ro" not in warnings[0]
    assert conn.commands[0].startswith("PowerShell.exe ")  # as the host agent's other commands (and the stand-in)
