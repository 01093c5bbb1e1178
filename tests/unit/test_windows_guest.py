"""The guest side of a Windows install, pinned against what the components it relies on really do.

Each test names its evidence (docs/windows.md, "What the guest side relies on", has the same list):
- Win32-OpenSSH (PowerShell/openssh-portable a915f06): sshd creates C:\\ProgramData\\ssh on its first start
  with SDDL O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;AU) (wmain_sshd.c,
  create_prgdata_ssh_folder); an existing folder must pass check_secure_folder_permission (w32-sshfileperm.c:
  owner Administrators or SYSTEM, no write ACE for anyone else) or sshd exits 255 (misc.c,
  create_directory_withsddl); it creates HKLM\\SOFTWARE\\OpenSSH with its own SDDL (create_openssh_registry_key).
- PowerShell's registry provider: `New-Item -Force` on an existing key replaces it, subkeys and ACL included.
- Windows Server 2025 has the sshd service inbox (installed, not started).
- Lima registers \\Lima\\LimaProvisionStartup{System,User} scheduled tasks at startup (SYSTEM, S4U user).

Every generated PowerShell text is parsed with a real PowerShell grammar (tree-sitter-powershell).
"""

from __future__ import annotations

import base64
import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import LimapyError
from limapy.guest.windows.answer import BOOT_RUNNER, FIRST_LOGON, FIRST_LOGON_COMMAND, RUNNER
from tests import psgrammar
from tests.unit.test_cidata_windows import NS, build, cfg

WIN32_OPENSSH_SDDL = "O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;AU)"

#: Quotes, `$(...)` and non-ASCII (a typographic apostrophe among them): ps_quote's Base64 form.
ODD_VALUE = "café ’q"
ODD_PATH = "C:\\dir\\it's $(x) café.txt"
PROVISION_SETS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "all": [
        {"mode": "dependency", "script": "Write-Host dep"},
        {"mode": "system", "script": "Write-Host sys"},
        {"mode": "user", "script": "Write-Host user"},
        {"mode": "data", "path": "C:\\d\\x.txt", "content": "x"},
        {"mode": "data", "path": "/not/windows", "content": "y", "overwrite": False},
        {"mode": "data", "path": ODD_PATH, "content": "z"},  # ps_quote's Base64 form, in a path
    ],
    "system-only": [{"mode": "system", "script": "Write-Host sys"}],
    "user-only": [{"mode": "user", "script": "Write-Host user"}],
}
VARIANTS = list(
    itertools.product(
        ["cmd.exe", "powershell.exe", "pwsh.exe"],
        [None, b"MSI"],
        sorted(PROVISION_SETS),
        [{}, {"GREETING": "it's $(x)"}, {"GREETING": ODD_VALUE}],
    )
)


def variant(shell: str, msi: bytes | None, provs: str, params: dict[str, str], **kw: Any) -> dict[str, bytes]:
    c = cfg(provision=[dict(p) for p in PROVISION_SETS[provs]], param=params)
    c["user"]["shell"] = shell
    return build(c, opensshmsi=msi, **kw)


@pytest.mark.parametrize("shell,msi,provs,params", VARIANTS)
def test_every_generated_script_parses(shell: str, msi: bytes | None, provs: str, params: dict[str, str]) -> None:
    files = variant(shell, msi, provs, params)
    if ODD_VALUE in params.values():  # the grammar sees the Base64 form, not a plain quoted string
        assert _base64_of(ODD_VALUE) in files[RUNNER].decode()
    if provs == "all":
        assert _base64_of(ODD_PATH) in files[FIRST_LOGON].decode()
    for name in (FIRST_LOGON, RUNNER, BOOT_RUNNER):
        assert psgrammar.errors(files[name]) == [], name
    for name, data in files.items():
        scripts = name.startswith("provision/") and not name.startswith("provision/data/")
        if scripts and name not in (RUNNER, BOOT_RUNNER):
            assert psgrammar.errors(data.removeprefix(b"\xef\xbb\xbf")) == [], name


def _base64_of(value: str) -> str:
    from limapy.guest.render import ps_quote

    quoted = ps_quote(value)
    assert "FromBase64String" in quoted, quoted
    return quoted


def _command_text(line: str) -> str:
    """The script inside `powershell.exe ... -Command "..."`."""
    m = re.search(r'-Command "(.*)"$', line)
    assert m, line
    return m.group(1)


def test_other_powershell_snippets_parse() -> None:
    from limapy.guest.windows.agent import WINDOWS_PROBE, WINDOWS_WARNINGS, clock
    from limapy.guest.windows.shell import _windows_script

    for snippet in (FIRST_LOGON_COMMAND, WINDOWS_PROBE, WINDOWS_WARNINGS, clock(1_700_000_000.123)):
        assert psgrammar.errors(_command_text(snippet)) == [], snippet
    for command, workdir in ((["Get-ChildItem", "-Force"], "C:\\it's"), ([], "C:\\x"), (["exit", "3"], None)):
        encoded = _windows_script("powershell.exe", command, workdir, "cmd.exe").rsplit(" ", 1)[1]
        text = base64.b64decode(encoded).decode("utf-16-le")
        assert psgrammar.errors(text) == [], text


# --- 1. sshd creates its own folder: nothing is written there before its first start -----------------------


@pytest.mark.parametrize("msi", [None, b"MSI"])
def test_sshd_starts_before_anything_writes_programdata_ssh(msi: bytes | None) -> None:
    script = variant("cmd.exe", msi, "none", {})[FIRST_LOGON].decode()
    funcs = psgrammar.functions(script)
    steps = [(name, body) for name, _phase, body in psgrammar.calls(script, "Invoke-Step")]
    assert steps[steps.index(("openssh", "Install-OpenSSH")) + 1] == ("sshd", "Start-Sshd")
    want = ["Start-SshdOnce", "Set-SshFirewall", "Set-AuthorizedKeys", "Set-DefaultShell", "Restart-Service"]
    assert psgrammar.commands(funcs["Start-Sshd"]) == want
    # Installing never touches the folder; the first start comes before the keys are written into it.
    assert "$SshDir" not in funcs["Install-OpenSSH"] and "ProgramData\\ssh" not in funcs["Install-OpenSSH"]
    start = psgrammar.commands(funcs["Start-SshdOnce"])
    assert start.index("Set-Acl") < start.index("Start-Service")  # an existing folder gets sshd's ACL first
    assert "$SshDir" in funcs["Set-AuthorizedKeys"]
    # Nothing creates the folder: no New-Item of $SshDir anywhere (the old defect).
    assert not re.search(r"New-Item[^\n]*\$SshDir(?![\\\w])", script)
    assert f"$SshDirSddl = '{WIN32_OPENSSH_SDDL}'" in script
    assert "SetSecurityDescriptorSddlForm($SshDirSddl)" in funcs["Start-SshdOnce"]


def test_msi_path_keeps_working() -> None:
    script = variant("cmd.exe", b"MSI", "none", {})[FIRST_LOGON].decode()
    install = psgrammar.functions(script)["Install-OpenSSH"]
    assert "msiexec.exe" in install and "-Wait" in install and "Get-FileHash" in install
    assert "Add-WindowsCapability" not in install


# --- 6. Windows Server 2025 ships sshd: skip the capability/MSI step -----------------------------------------


@pytest.mark.parametrize("msi", [None, b"MSI"])
def test_existing_sshd_service_skips_install(msi: bytes | None) -> None:
    install = psgrammar.functions(variant("cmd.exe", msi, "none", {})[FIRST_LOGON].decode())["Install-OpenSSH"]
    body = install[install.index("{") + 1 :].lstrip()
    assert body.startswith("if (Get-Service -Name sshd -ErrorAction SilentlyContinue) {")
    guard = body[: body.index("}") + 1]
    assert "return" in guard
    assert install.index("return") < install.index("Add-WindowsCapability" if msi is None else "msiexec.exe")


# --- 5. DefaultShell only when the file exists ------------------------------------------------------------


@pytest.mark.parametrize("shell", ["cmd.exe", "powershell.exe", "pwsh.exe"])
def test_default_shell_is_guarded(shell: str) -> None:
    func = psgrammar.functions(variant(shell, None, "none", {})[FIRST_LOGON].decode())["Set-DefaultShell"]
    guard = func.index("if (-not (Test-Path -LiteralPath $shell -PathType Leaf))")
    assert guard < func.index("New-ItemProperty")
    fallback = func[guard : func.index("New-ItemProperty")]
    assert "Add-LimapyWarning" in fallback and "$shell = $fallback" in fallback
    assert "WindowsPowerShell\\v1.0\\powershell.exe" in func


def test_guest_warnings_reach_the_host() -> None:
    """The host agent reads limapy-warnings.txt once ready; the file the script appends to is the one it reads."""
    from limapy.guest.windows.agent import WINDOWS_WARNINGS
    from limapy.guest.windows.answer import WARNINGS_FILE

    script = variant("pwsh.exe", None, "none", {})[FIRST_LOGON].decode()
    assert "$WarningsFile = Join-Path $LimaDir 'limapy-warnings.txt'" in script
    assert WARNINGS_FILE.rsplit("\\", 1)[1] == "limapy-warnings.txt" and WARNINGS_FILE in WINDOWS_WARNINGS


# --- 9. the OpenSSH registry key is created only when missing -------------------------------------------------


def test_registry_key_not_recreated() -> None:
    script = variant("cmd.exe", None, "none", {})[FIRST_LOGON].decode()
    for line in script.splitlines():
        if re.search(r"\bNew-Item\b(?!Property)", line) and "HKLM:" in line:
            assert "-Force" not in line, line
            assert line.strip().startswith("if (-not (Test-Path -LiteralPath 'HKLM:\\SOFTWARE\\OpenSSH'))"), line
    assert "New-ItemProperty -Path 'HKLM:\\SOFTWARE\\OpenSSH' -Name 'DefaultShell'" in script


# --- 10. system/user scripts run again at every boot -------------------------------------------------------


@pytest.mark.parametrize("provs", sorted(PROVISION_SETS))
def test_startup_tasks_for_system_and_user(provs: str) -> None:
    """Every boot: \\limapy\\boot (SYSTEM, at startup, limapy-boot.ps1) runs boot and system scripts and starts the
    user's task, whose principal is the configured user, S4U (as Lima's LimaProvisionStartupUser), and which has no
    trigger of its own (so it runs after the system scripts, never beside them)."""
    script = variant("cmd.exe", None, provs, {})[FIRST_LOGON].decode()
    main = psgrammar.functions(script)["Install-Provision"]
    modes = {p["mode"] for p in PROVISION_SETS[provs]}
    assert "Register-ProvisionTask 'system'" not in main
    assert "New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest" in main
    assert "New-ScheduledTaskTrigger -AtStartup" in main and "-TaskName 'boot'" in main
    assert "-File \"' + $BootScript + '\"'" in main
    # The configured user (not the current identity: a resumed first logon runs as SYSTEM).
    user = re.search(r"Register-ProvisionTask 'user' \(New-ScheduledTaskPrincipal -UserId \(\$env:COMPUTERNAME "
                     r"\+ '\\' \+ \$UserName\) -LogonType S4U", main)
    assert bool(user) is ("user" in modes)
    task = psgrammar.functions(script)["Register-ProvisionTask"]
    assert "Trigger" not in task and "-TaskPath '\\limapy\\'" in task
    assert "run-provision.ps1" in task


def test_runner_runs_one_mode_in_order_with_params() -> None:
    runner = variant("cmd.exe", None, "all", {"GREETING": "hi"})[RUNNER].decode()
    assert "[ValidateSet('boot', 'dependency', 'system', 'user')][string]$Mode" in runner
    assert "-Filter ($Mode + '-*.ps1') | Sort-Object -Property Name" in runner
    assert "SetEnvironmentVariable('PARAM_GREETING', 'hi', 'Process')" in runner
    assert runner.rstrip().endswith("exit 0")


def test_data_path_rule() -> None:
    """A Windows path is honoured; any other path puts the file under provision.data (as the template says)."""
    script = variant("cmd.exe", None, "all", {})[FIRST_LOGON].decode()
    data = psgrammar.functions(script)["Install-DataFiles"]
    assert "$dest = 'C:\\d\\x.txt'" in data
    assert "$dest = 'C:\\ProgramData\\Lima\\provision\\provision.data\\00000004'" in data
    template = (Path(__file__).resolve().parents[2] / "templates" / "experimental" / "windows.yaml").read_text()
    assert "A `data` file goes to its `path` when that is a Windows path" in template


# --- 11. product key, 8. clock, RDP -----------------------------------------------------------------------


def test_product_key_in_the_answer_file_only() -> None:
    key = "ABCDE-12345-FGHIJ-67890-KLMNO"
    files = build(cfg(), is_server=True, product_key=key)
    root = ET.fromstring(files["autounattend.xml"])
    assert root.findtext(".//u:UserData/u:ProductKey/u:Key", namespaces=NS) == key
    assert root.findtext(".//u:UserData/u:ProductKey/u:WillShowUI", namespaces=NS) == "OnError"
    assert not [n for n, d in files.items() if n != "autounattend.xml" and key.encode() in d]
    keyless = ET.fromstring(build(cfg())["autounattend.xml"])
    assert keyless.find(".//u:UserData/u:ProductKey/u:Key", NS) is None
    assert keyless.findtext(".//u:UserData/u:ProductKey/u:WillShowUI", namespaces=NS) == "Never"
    with pytest.raises(LimapyError, match="product key"):
        build(cfg(), product_key="nope")


def test_time_zone_is_utc() -> None:
    root = ET.fromstring(build(cfg())["autounattend.xml"])
    assert root.findtext(".//u:settings[@pass='oobeSystem']//u:TimeZone", namespaces=NS) == "UTC"


def test_remote_desktop_on_by_default() -> None:
    spec = "u:settings[@pass='specialize']/u:component"
    root = ET.fromstring(build(cfg())["autounattend.xml"])
    lsm = root.find(f"{spec}[@name='Microsoft-Windows-TerminalServices-LocalSessionManager']", NS)
    assert lsm is not None and lsm.findtext("u:fDenyTSConnections", namespaces=NS) == "false"
    group = root.find(f"{spec}[@name='Networking-MPSSVC-Svc']/u:FirewallGroups/u:FirewallGroup", NS)
    assert group is not None
    assert group.findtext("u:Group", namespaces=NS) == "@FirewallAPI.dll,-28752"  # "Remote Desktop", any language
    assert (group.findtext("u:Active", namespaces=NS), group.findtext("u:Profile", namespaces=NS)) == ("true", "all")
    off = build(cfg(osOpts={"Windows": {"rdp": False}}))["autounattend.xml"]
    assert b"TerminalServices" not in off and b"FirewallGroup" not in off


# --- 12. Server media: x86_64 only; keyless only when evaluation -----------------------------------------------


def _server_info(names: list[str], label: str = "SSS_X64FREE_EN-US_DV9") -> Any:
    from limapy.guest.windows.media import media_info, parse_wim_xml
    from tests.winiso import image_xml

    return media_info(label, parse_wim_xml(image_xml(names, "x86_64").encode()))


def test_server_media_rules() -> None:
    from limapy.guest.windows.edition import check_server_media, choose_image

    eval_names = [
        "Windows Server 2025 Standard Evaluation",
        "Windows Server 2025 Standard Evaluation (Desktop Experience)",
        "Windows Server 2025 Datacenter Evaluation",
        "Windows Server 2025 Datacenter Evaluation (Desktop Experience)",
    ]
    info = _server_info(eval_names)
    index, _, _ = choose_image(info, arch="x86_64", edition=None, image_index=None)
    assert index == 2
    assert check_server_media(info, arch="x86_64", index=index, product_key=None) == []
    with pytest.raises(LimapyError, match="does not install on aarch64") as e:
        check_server_media(info, arch="aarch64", index=index, product_key=None)
    assert e.value.hint and "x86_64" in e.value.hint
    retail = _server_info([n.replace(" Evaluation", "") for n in eval_names])
    with pytest.raises(LimapyError, match="not an evaluation edition") as e:
        check_server_media(retail, arch="x86_64", index=2, product_key=None)
    assert e.value.hint and "productKey" in e.value.hint
    assert check_server_media(retail, arch="x86_64", index=2, product_key="ABCDE-12345-FGHIJ-67890-KLMNO") == []
