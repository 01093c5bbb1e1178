"""The Windows answer media: autounattend.xml structure (windows-guests.md §5.3), golden files,
hostile strings, the first-logon script's quoting, and the ISO read back with pycdlib."""

from __future__ import annotations

import base64
import io
import itertools
import re
import string
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest.render import ps_quote
from limapy.guest.windows.answer import (
    BOOT_RUNNER,
    FIRST_LOGON,
    RUNNER,
    WINPE_LOAD_COMMAND,
    build_answer_files,
    check_user_name,
    computer_name,
    new_password,
    write_answer_iso,
)
from tests.golden import compare

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "cidata"
TEST_PASSWORD = "Test-Passw0rd.Fixed"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden limapy-test"
NS = {"u": "urn:schemas-microsoft-com:unattend"}
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
HOSTILE = "</FullName><Foo>&\"'"

ALLOWED_PASSES = {
    "Microsoft-Windows-Setup": {"windowsPE"},
    "Microsoft-Windows-International-Core-WinPE": {"windowsPE"},
    "Microsoft-Windows-PnpCustomizationsWinPE": {"windowsPE"},
    "Microsoft-Windows-International-Core": {"specialize", "oobeSystem"},
    "Microsoft-Windows-Shell-Setup": {"specialize", "oobeSystem"},
    # Microsoft's unattend reference: fDenyTSConnections is valid in offlineServicing and specialize,
    # Networking-MPSSVC-Svc/FirewallGroups in specialize.
    "Microsoft-Windows-TerminalServices-LocalSessionManager": {"specialize"},
    "Networking-MPSSVC-Svc": {"specialize"},
}


def cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "os": "Windows",
        "user": {"name": "alice", "comment": "Alice Example", "uid": 1000, "home": "/home/alice.guest",
                 "shell": "cmd.exe"},
        "firmware": {"legacyBIOS": False},
        "tpm": False,
        "param": {},
        "provision": [],
    }
    base.update(over)
    return base


def build(c: dict[str, Any] | None = None, **kw: Any) -> dict[str, bytes]:
    args: dict[str, Any] = dict(
        name="windows", arch="x86_64", password=TEST_PASSWORD, ssh_pubkeys=[KEY], image_index=None,
        image_name=None, is_server=False,
    )
    args.update(kw)
    return build_answer_files(spec_of(c or cfg(), args["arch"]), **args)


def spec_of(c: dict[str, Any], arch: str) -> Spec:
    return Spec.from_cfg({**c, "arch": arch})


def q(tag: str) -> str:
    return "/".join(f"u:{t}" for t in tag.split("/"))


def validate(xml: bytes, arch: str, *, legacy_bios: bool) -> ET.Element:
    """The offline checks of windows-guests.md §5.3 that apply to limapy's answer file."""
    root = ET.fromstring(xml)
    assert root.tag == "{urn:schemas-microsoft-com:unattend}unattend"
    assert b'xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State"' in xml
    passes = [s.get("pass") for s in root.findall("u:settings", NS)]
    assert passes == ["windowsPE", "specialize", "oobeSystem"]
    seen = set()
    for settings in root.findall("u:settings", NS):
        for comp in settings.findall("u:component", NS):
            name = comp.get("name")
            assert comp.get("processorArchitecture") == arch, name
            assert comp.get("publicKeyToken") == "31bf3856ad364e35"
            assert comp.get("language") == "neutral"
            assert comp.get("versionScope") == "nonSxS"
            assert settings.get("pass") in ALLOWED_PASSES[name], (name, settings.get("pass"))
            assert (settings.get("pass"), name) not in seen
            seen.add((settings.get("pass"), name))
    setup = root.find("u:settings[@pass='windowsPE']/u:component[@name='Microsoft-Windows-Setup']", NS)
    assert setup is not None
    assert setup.findtext(q("UserData/AcceptEula"), namespaces=NS) == "true"
    pk = setup.find(q("UserData/ProductKey"), NS)
    assert pk is not None and pk.findtext("u:WillShowUI", namespaces=NS) == "Never"
    assert pk.find("u:Key", NS) is None
    assert b"<Key>" not in xml.replace(b"<Key>/IMAGE/", b"")
    osimage = setup.find(q("ImageInstall/OSImage"), NS)
    assert osimage is not None
    children = [c.tag.split("}")[1] for c in osimage]
    assert children.index("InstallFrom") < children.index("InstallTo")
    md = osimage.find(q("InstallFrom/MetaData"), NS)
    assert md is not None and md.get(f"{WCM}action") == "add"
    assert md.findtext("u:Key", namespaces=NS) in ("/IMAGE/INDEX", "/IMAGE/NAME")
    assert md.findtext("u:Value", namespaces=NS)
    disk = setup.find(q("DiskConfiguration/Disk"), NS)
    assert disk is not None and disk.get(f"{WCM}action") == "add"
    creates = disk.findall(q("CreatePartitions/CreatePartition"), NS)
    orders = [int(c.findtext("u:Order", namespaces=NS) or 0) for c in creates]
    assert orders == list(range(1, len(creates) + 1))
    extends = [c.findtext("u:Extend", namespaces=NS) == "true" for c in creates]
    assert extends.count(True) == 1 and extends[-1]
    for c, ext in zip(creates, extends, strict=True):
        assert (c.find("u:Size", NS) is None) == ext
    types = [c.findtext("u:Type", namespaces=NS) for c in creates]
    mods = {int(m.findtext("u:PartitionID", namespaces=NS) or 0): m
            for m in disk.findall(q("ModifyPartitions/ModifyPartition"), NS)}
    assert set(mods) <= set(orders)
    letters = [m.findtext("u:Letter", namespaces=NS) for m in mods.values() if m.find("u:Letter", NS) is not None]
    assert letters == ["C"]
    install_id = int(osimage.findtext(q("InstallTo/PartitionID"), namespaces=NS) or 0)
    assert mods[install_id].findtext("u:Format", namespaces=NS) == "NTFS"
    assert mods[install_id].findtext("u:Letter", namespaces=NS) == "C"
    assert types[install_id - 1] == "Primary"
    disk_ids = {disk.findtext("u:DiskID", namespaces=NS), osimage.findtext(q("InstallTo/DiskID"), namespaces=NS)}
    assert disk_ids == {"0"}
    if legacy_bios:
        assert "EFI" not in types and "MSR" not in types
        assert any(m.findtext("u:Active", namespaces=NS) == "true" for m in mods.values())
    else:
        assert types[:2] == ["EFI", "MSR"]
        assert mods[1].findtext("u:Format", namespaces=NS) == "FAT32"
        assert int(creates[0].findtext("u:Size", namespaces=NS) or 0) >= 100
    shell = root.find("u:settings[@pass='oobeSystem']/u:component[@name='Microsoft-Windows-Shell-Setup']", NS)
    assert shell is not None
    cmds = shell.findall(q("FirstLogonCommands/SynchronousCommand"), NS)
    assert len(cmds) == 1
    line = cmds[0].findtext("u:CommandLine", namespaces=NS) or ""
    assert "autounattend" in line and FIRST_LOGON in line and len(line) <= 1024
    assert not re.search(r"\b[D-Z]:\\", line), "the script must be found by label, not by drive letter"
    account = shell.find(q("UserAccounts/LocalAccounts/LocalAccount"), NS)
    assert account is not None and account.findtext("u:Group", namespaces=NS) == "Administrators"
    assert shell.findtext(q("AutoLogon/Username"), namespaces=NS) == account.findtext("u:Name", namespaces=NS)
    assert shell.findtext(q("AutoLogon/LogonCount"), namespaces=NS) == "1"
    password = account.findtext(q("Password/Value"), namespaces=NS)
    assert shell.findtext(q("AutoLogon/Password/Value"), namespaces=NS) == password
    spec = "u:settings[@pass='specialize']/u:component[@name='Microsoft-Windows-Shell-Setup']"
    name = root.findtext(f"{spec}/u:ComputerName", namespaces=NS)
    assert name and len(name) <= 15 and re.fullmatch(r"[A-Za-z0-9-]+", name)
    return root


CASES = list(itertools.product(["x86_64", "aarch64"], [False, True], [False, True], [False, True]))


#: What limapy.guest.windows.virtiowin.read_drivers gives for the answer media (the ISO side is
#: tests/unit/test_windows_media.py).
WINPE_DRIVERS = {"$WinPEDriver$/NetKVM/netkvm.inf": b"; inf\r\n", "$WinPEDriver$/NetKVM/netkvm.sys": b"MZ"}


@pytest.mark.parametrize("arch,legacy,tpm,virtio", CASES)
def test_golden_autounattend(arch: str, legacy: bool, tpm: bool, virtio: bool) -> None:
    files = build(cfg(tpm=tpm, firmware={"legacyBIOS": legacy}), arch=arch,
                  winpe_drivers=WINPE_DRIVERS if virtio else None)  # fmt: skip
    xml = files["autounattend.xml"]
    win_arch = {"x86_64": "amd64", "aarch64": "arm64"}[arch]
    root = validate(xml, win_arch, legacy_bios=legacy)
    # No DriverPaths naming a drive letter (issue 23): drivers come from the answer media's $WinPEDriver$.
    assert root.findall(".//u:PathAndCredentials/u:Path", NS) == []
    commands = [c.text for c in root.findall(".//u:RunSynchronousCommand/u:Path", NS)]
    assert (commands[0] == WINPE_LOAD_COMMAND) is virtio
    assert ("$WinPEDriver$/NetKVM/netkvm.inf" in files) is virtio
    index = root.findtext(".//u:InstallFrom/u:MetaData/u:Value", namespaces=NS)
    assert index == {"x86_64": "6", "aarch64": "3"}[arch]
    golden = GOLDEN / f"autounattend-{win_arch}-{'bios' if legacy else 'uefi'}-tpm{'on' if tpm else 'off'}" \
        f"-virtio{'on' if virtio else 'off'}.xml"
    compare(f"cidata/{golden.name}", xml)


def test_golden_first_logon_script() -> None:
    c = cfg(param={"GREETING": "hello"}, provision=[
        {"mode": "system", "script": "Write-Host $env:PARAM_GREETING"},
        {"mode": "user", "script": "Write-Host user"},
        {"mode": "dependency", "script": "Write-Host dep"},
        {"mode": "data", "path": "C:\\data\\x.txt", "content": "x", "overwrite": False},
    ])
    files = build(c, opensshmsi=b"MSI")
    for name in (FIRST_LOGON, RUNNER, BOOT_RUNNER):
        golden = GOLDEN / f"windows-{Path(name).name}"
        compare(f"cidata/{golden.name}", files[name])


def test_server_and_image_selection() -> None:
    root = ET.fromstring(build(is_server=True)["autounattend.xml"])
    assert root.findtext(".//u:InstallFrom/u:MetaData/u:Value", namespaces=NS) == "1"
    root = ET.fromstring(build(image_index=4)["autounattend.xml"])
    assert root.findtext(".//u:InstallFrom/u:MetaData/u:Value", namespaces=NS) == "4"
    root = ET.fromstring(build(image_name=HOSTILE)["autounattend.xml"])
    md = root.find(".//u:InstallFrom/u:MetaData", NS)
    assert md is not None
    assert md.findtext("u:Key", namespaces=NS) == "/IMAGE/NAME"
    assert md.findtext("u:Value", namespaces=NS) == HOSTILE
    with pytest.raises(LimapyError):
        build(image_index=0)


def test_hostile_comment_and_password_stay_text() -> None:
    c = cfg()
    c["user"]["comment"] = HOSTILE
    password = "P&<a>'\"w0rd-x" + "y" * 10
    xml = build(c, password=password)["autounattend.xml"]
    root = validate(xml, "amd64", legacy_bios=False)
    assert root.findtext(".//u:UserData/u:FullName", namespaces=NS) == HOSTILE
    assert root.findtext(".//u:LocalAccount/u:DisplayName", namespaces=NS) == HOSTILE
    assert root.findtext(".//u:LocalAccount/u:Password/u:Value", namespaces=NS) == password
    assert root.find(".//u:Foo", NS) is None


def _ps_string_literals_ok(script: str) -> None:
    """Every single-quoted literal closes on its line: no quote ends a literal early."""
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        # strip double-quoted strings (only the script's own constants use them)
        stripped = re.sub(r'"[^"]*"', '""', line)
        literals = re.sub(r"'(?:[^']|'')*'", "", stripped)
        assert "'" not in literals, line


@pytest.mark.parametrize("value", [
    "plain", "it's", "$(Remove-Item C:\\ -Recurse)", "`$x`n", "a\u2019b\u2018c", "\u201a\u201b",
    "caf\u00e9 \u0451", "two\nlines", "'; calc; '", '"double"',
])
def test_ps_quote_is_inert(value: str) -> None:
    quoted = ps_quote(value)
    assert quoted.isascii()
    if quoted.startswith("'"):
        body = quoted[1:-1]
        assert body.replace("''", "") .count("'") == 0
        assert body.replace("''", "'") == value
        for ch in "\u2018\u2019\u201a\u201b":
            assert ch not in value or ch * 2 in body
    else:
        b64 = re.fullmatch(r"\(\[System\.Text\.Encoding\]::UTF8\.GetString\(\[System\.Convert\]::"
                           r"FromBase64String\('([A-Za-z0-9+/=]*)'\)\)\)", quoted)
        assert b64 is not None
        assert base64.b64decode(b64.group(1)).decode() == value


def test_hostile_provision_scripts_survive_and_stay_data() -> None:
    evil = "Write-Host \"$(Get-Date)\" `n 'q' ''; `$x = \"`\"\"\n$(calc)\r\n# \u00e9\n"
    c = cfg(
        param={"EVIL": "x'; Remove-Item -Recurse C:\\ ; '$(y)`"},
        provision=[
            {"mode": "system", "script": evil},
            {"mode": "data", "path": "C:\\dir\\it's $(x).txt", "content": evil},
        ],
    )
    files = build(c)
    script = files[FIRST_LOGON].decode("ascii")
    runner = files[RUNNER].decode("ascii")
    boot = files[BOOT_RUNNER].decode("ascii")
    _ps_string_literals_ok(script)
    _ps_string_literals_ok(runner)
    _ps_string_literals_ok(boot)
    assert "'C:\\dir\\it''s $(x).txt'" in boot  # the data file's path, written at every boot
    # the param value travels as one single-quoted literal, its quote doubled (in the runner, which the
    # first logon and the startup tasks both run)
    assert "('PARAM_EVIL', 'x''; Remove-Item -Recurse C:\\ ; ''$(y)`', 'Process')" in runner
    for text in (script, runner):
        outside = re.sub(r"'(?:[^']|'')*'", "''", text)
        assert "Remove-Item -Recurse C:" not in outside and "$(y)" not in outside
    assert "'C:\\dir\\it''s $(x).txt'" in script
    sys_file = files["provision/system/00000000"]
    assert sys_file == b"\xef\xbb\xbf" + evil.encode()  # BOM: PowerShell 5.1 reads it as UTF-8
    assert files["provision/data/00000001"] == evil.encode()
    assert "\r\n" in script and "\n" not in script.replace("\r\n", "")


def test_provision_order_and_vars() -> None:
    c = cfg(param={"P": "v"}, provision=[
        {"mode": "user", "script": "u {{.User}} {{.Home}}"},
        {"mode": "system", "script": "s {{ .Param.P }}"},
        {"mode": "data", "path": "C:\\d", "content": "d"},
        {"mode": "dependency", "script": "dep"},
    ])
    files = build(c)
    script = files[FIRST_LOGON].decode()
    # Lima's order of execution: dependency scripts, data files, system scripts, user scripts.
    from tests import psgrammar

    steps = [body for _, _, body in psgrammar.calls(script, "Invoke-Step")]
    provision = steps[steps.index("Install-Provision") + 1 :]
    assert provision == ["Invoke-Provision 'dependency'", "Install-DataFiles", "Invoke-Provision 'system'",
                         "Invoke-Provision 'user'"]  # fmt: skip
    assert files["provision/user/00000000"] == b"u alice C:\\Users\\alice"
    assert files["provision/system/00000001"] == b"s v"
    assert "PARAM_P" in files[RUNNER].decode() and "PARAM_P" not in script
    tail = script.rstrip().splitlines()[-4:]
    assert tail[0].startswith("Write-AsciiFile $DoneFile") and tail[2] == "Unregister-ResumeTask"
    with pytest.raises(LimapyError):
        build(cfg(provision=[{"mode": "yq", "path": "C:\\x", "expression": ".a = 1"}]))


def test_openssh_source() -> None:
    with_msi = build(opensshmsi=b"fake msi")
    script = with_msi[FIRST_LOGON].decode()
    assert with_msi["OpenSSH.msi"] == b"fake msi"
    assert "msiexec.exe" in script and "-Wait" in script and "Add-WindowsCapability" not in script
    import hashlib

    assert hashlib.sha256(b"fake msi").hexdigest().upper() in script
    without = build()[FIRST_LOGON].decode()
    assert "Add-WindowsCapability" in without and "msiexec" not in without
    assert "OpenSSH.msi" not in build()
    for s in (script, without):
        assert "-Profile Any" in s and "-LocalPort 22" in s
        assert "'*S-1-5-18:F'" in s and "'*S-1-5-32-544:F'" in s and "/inheritance:r" in s
        assert "ASCIIEncoding" in s


@pytest.mark.parametrize("shell,expected", [
    ("cmd.exe", "System32\\cmd.exe"), ("powershell.exe", "WindowsPowerShell\\v1.0\\powershell.exe"),
    ("pwsh.exe", "pwsh.exe"), ("/bin/bash", "System32\\cmd.exe"),
])
def test_default_shell(shell: str, expected: str) -> None:
    c = cfg()
    c["user"]["shell"] = shell
    script = build(c)[FIRST_LOGON].decode()
    block = script[script.index("function Set-DefaultShell"):script.index("function Invoke-Provision")]
    assert expected in block and "DefaultShell" in block


def test_password_generator() -> None:
    seen = set()
    for _ in range(50):
        pw = new_password()
        assert len(pw) >= 16
        assert any(c in string.ascii_uppercase for c in pw)
        assert any(c in string.ascii_lowercase for c in pw)
        assert any(c in string.digits for c in pw)
        assert any(not c.isalnum() for c in pw)
        assert not set(pw) & set("<>&'\"")
        seen.add(pw)
    assert len(seen) == 50


@pytest.mark.parametrize("bad", ["", "a" * 21, "Administrator", "a/b", "x.", "a@b", "guest"])
def test_bad_user_names(bad: str) -> None:
    with pytest.raises(LimapyError):
        check_user_name(bad)


def test_computer_name() -> None:
    assert computer_name("windows") == "lima-windows"
    assert computer_name("a.very_long.instance-name") == "lima-a-very-lon"
    assert len(computer_name("x" * 40)) <= 15


def test_answer_iso_readback(tmp_path: Path) -> None:
    out = tmp_path / "cidata.iso"
    kw: dict[str, Any] = dict(name="w", arch="aarch64", password=TEST_PASSWORD, ssh_pubkeys=[KEY],
                              image_index=None, image_name=None, is_server=False, winpe_drivers=WINPE_DRIVERS)
    write_answer_iso(out, spec_of(cfg(provision=[{"mode": "system", "script": "x"}]), "aarch64"), **kw)
    data = out.read_bytes()
    assert (out.stat().st_mode & 0o777) == 0o600
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        assert iso.has_joliet() and not iso.has_rock_ridge()
        assert iso.joliet_vd.volume_identifier.decode("utf-16-be").rstrip() == "autounattend"
        names = {c.file_identifier().decode("utf-16-be") for c in iso.list_children(joliet_path="/")}
        assert {"autounattend.xml", "ssh_authorized_keys", FIRST_LOGON, "provision", "$WinPEDriver$",
                "limapy-winpe-drivers.cmd", "resume_first_logon.ps1"} <= names
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path="/$WinPEDriver$/NetKVM/netkvm.sys")
        assert buf.getvalue() == b"MZ"
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path="/autounattend.xml")
        validate(buf.getvalue(), "arm64", legacy_bios=False)
    finally:
        iso.close()
    again = spec_of(cfg(provision=[{"mode": "system", "script": "x"}]), "aarch64")
    write_answer_iso(tmp_path / "again.iso", again, **kw)
    assert (tmp_path / "again.iso").read_bytes() == data
