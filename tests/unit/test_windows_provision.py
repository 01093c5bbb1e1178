"""Provisioning a Windows guest as Lima 2.3 does (issue 26, item 4), and reporting its outcome to the host.

Lima's behaviour, read in lima-vm/lima at 183a60d (the change is d14213b1, "Support provision feature on Windows
VM", PR #5263):
- pkg/cidata/cidata.go:566-590 (appendProvisionEntries): each system/user/dependency/data entry goes on the media
  as provision.<mode>/%08d, numbered by its index in the YAML; `boot` is skipped ("For Windows VM, there is no
  boot step where we can run commands"), and pkg/limayaml/validate.go:211 refuses boot, yq and ansible on Windows.
- pkg/cidata/wincidata.TEMPLATE.d/install_provision.ps1:22-25 gives each script a .ps1 name; :52-55 copies every
  data file to C:\\ProgramData\\Lima\\provision\\provision.data, its `path` ignored (templates/windows-11.yaml says
  so); :58-67 registers the startup tasks: system as SYSTEM (ServiceAccount, Highest), user as the user (S4U,
  Limited), both `-AtStartup`.
- startup_runner.ps1:14 sorts a mode's files by name; :22 runs each with `powershell.exe -NoProfile -NonInteractive
  -ExecutionPolicy Bypass -File`; :31-37 goes on after a failure and exits non-zero.
- first_logon.ps1:88-93 runs dependency, system and user scripts once at the first logon; dependency scripts only
  there ("Dependency scripts are only run here, not scheduled").
Where Lima says nothing (where the output goes on later boots, how a failure reaches the host), limapy does what its
Linux guests do: a log per boot, and a failed step makes the boot degraded and `limapy start` exit non-zero.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from limapy.guest.windows import agent
from limapy.guest.windows.answer import (
    BOOT_RUNNER,
    BOOT_SCRIPT,
    DONE_FILE,
    FIRST_LOGON,
    RUNNER,
    STATUS_KEY,
    STATUS_PATH,
    data_path,
)
from tests import psgrammar
from tests.unit.test_cidata_windows import build, cfg

ALL = [
    {"mode": "user", "script": "Write-Host user"},
    {"mode": "boot", "script": "Write-Host boot"},
    {"mode": "system", "script": "Write-Host system"},
    {"mode": "dependency", "script": "Write-Host dep"},
    {"mode": "data", "path": "C:/etc/app.conf", "content": "x=1", "overwrite": False},
    {"mode": "data", "path": "/lima/style/path", "content": "y"},
    {"mode": "system", "script": "Write-Host system2"},
]


def files_of(provision: list[dict[str, Any]] | None = None) -> dict[str, bytes]:
    return build(cfg(provision=ALL if provision is None else provision))


def boot_script(provision: list[dict[str, Any]] | None = None) -> str:
    return files_of(provision)[BOOT_RUNNER].decode()


# --------------------------------------------------------------------------- the media, as Lima lays them out


def test_media_layout_follows_limas_numbering() -> None:
    files = files_of()
    # cidata.go:569: provision.<mode>/%08d by the YAML index; limapy keeps the index, under provision/<mode>/
    assert files["provision/user/00000000"] == b"Write-Host user"
    assert files["provision/system/00000002"] == b"Write-Host system"
    assert files["provision/system/00000006"] == b"Write-Host system2"
    assert files["provision/boot/00000001"] == b"Write-Host boot"
    script = files[FIRST_LOGON].decode()
    # install_provision.ps1:23: a .ps1 name; the runner's Sort-Object Name then keeps the YAML order
    assert "(Join-Path $ProvisionDir 'system-00000002.ps1')" in script
    assert "(Join-Path $ProvisionDir 'system-00000006.ps1')" in script
    assert "(Join-Path $ProvisionDir 'data-00000004')" in script  # kept for the later boots
    runner = files[RUNNER].decode()
    assert "-Filter ($Mode + '-*.ps1') | Sort-Object -Property Name" in runner


def test_runner_runs_each_script_like_limas_and_goes_on_after_a_failure() -> None:
    runner = files_of()[RUNNER].decode()
    loop = runner[runner.index("foreach ($script in") :]
    # startup_runner.ps1:22
    assert "& powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script.FullName" in loop
    body = loop[: loop.index("Stop-Transcript")]
    assert not re.search(r"\bbreak\b|\bexit\s+\d", body)
    assert runner.rstrip().endswith("if ($failed.Count -gt 0) { exit 1 }\r\nexit 0")


def test_data_paths() -> None:
    """A drive-letter path is honoured (either slash); any other goes where Lima 2.3 puts every Windows data file
    (install_provision.ps1:52-55)."""
    assert data_path("C:/etc/app.conf", "00000004") == "C:\\etc\\app.conf"
    assert data_path("d:\\x", "00000001") == "d:\\x"
    assert data_path("/lima/style/path", "00000005") == "C:\\ProgramData\\Lima\\provision\\provision.data\\00000005"
    assert data_path(None, "00000005").endswith("\\00000005")
    script = boot_script()
    data = psgrammar.functions(script)["Install-DataFiles"]
    assert "$dest = 'C:\\etc\\app.conf'" in data and "if ($false -or -not (Test-Path -LiteralPath $dest))" in data
    assert "$dest = 'C:\\ProgramData\\Lima\\provision\\provision.data\\00000005'" in data
    assert "if ($true -or" in data  # overwrite defaults to true (Lima's default)


# --------------------------------------------------------------------------- every boot


def test_boot_script_parses_for_every_mix() -> None:
    for provision in ([], ALL, [{"mode": "data", "path": "C:\\it's $(x).txt", "content": "z"}]):
        assert psgrammar.errors(boot_script(provision)) == []


def test_every_later_boot_runs_boot_data_system_user_never_dependency() -> None:
    main = psgrammar.main_block(boot_script())
    assert "foreach ($step in @('boot', 'data', 'system', 'user'))" in main
    assert "dependency" not in main  # first_logon.ps1:88 (Lima): dependency scripts only at the first logon
    funcs = psgrammar.functions(boot_script())
    # a function's uncaptured output is its result: the scripts' output must not make a success look failed
    assert "-File (Join-Path $ProvisionDir 'run-provision.ps1') -Mode $Mode | Out-Host" in funcs["Invoke-Mode"]
    # user scripts: the user's own task (S4U), started after the system scripts and waited for
    user = funcs["Invoke-UserTask"]
    assert "Start-ScheduledTask -TaskPath '\\limapy\\' -TaskName 'provision-user'" in user
    assert "$info.LastTaskResult -ne 0" in user and "$info.LastRunTime -lt $started" in user


def test_the_boot_task_is_systems_at_startup() -> None:
    install = psgrammar.functions(files_of()[FIRST_LOGON])["Install-Provision"]
    # install_provision.ps1:59-62 (Lima's system task): SYSTEM, ServiceAccount, Highest, at startup
    assert "New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest" in install
    assert "New-ScheduledTaskTrigger -AtStartup" in install
    assert "Copy-Item -LiteralPath (Join-Path $Media 'provision\\limapy-boot.ps1') -Destination $BootScript" in install
    assert files_of()[FIRST_LOGON].decode().count(f"'{BOOT_SCRIPT.rsplit(chr(92), 1)[1]}'") == 1
    # install_provision.ps1:65-67 (Lima's user task): the user, S4U, Limited
    assert "-LogonType S4U -RunLevel Limited" in install


def test_the_boot_outcome_is_this_boots_only() -> None:
    script = boot_script()
    funcs = psgrammar.functions(script)
    status = funcs["Set-BootStatus"]
    assert "[Microsoft.Win32.RegistryOptions]::Volatile" in status and f"CreateSubKey('{STATUS_KEY}'" in status
    main = psgrammar.main_block(script)
    # the clone identity first, then nothing before the first logon has finished, then running/done/failed
    at = 0
    for step in ("Invoke-CloneIdentity", "if (-not (Test-Path -LiteralPath $DoneFile))", "Set-BootStatus 'running' ''",
                 "foreach ($step in", "Set-BootStatus 'failed' $message", "Set-BootStatus 'done' ''"):  # fmt: skip
        at = main.index(step, at)
    assert "Send-Line ('LIMAPY-PROVISION-FAILED ' + $message)" in main
    assert "exit 1" in main[main.index("Set-BootStatus 'failed' $message") :]
    # the first logon writes the same key for the first boot, before its marker
    first = files_of()[FIRST_LOGON].decode()
    assert f"CreateSubKey('{STATUS_KEY}'" in psgrammar.functions(first)["Set-BootStatus"]
    tail = psgrammar.main_block(first)
    assert tail.index("Complete-Provision") < tail.index("Write-AsciiFile $DoneFile")


def test_a_failed_script_at_the_first_logon_is_reported_not_hidden() -> None:
    funcs = psgrammar.functions(files_of()[FIRST_LOGON])
    assert "Add-ProvisionFailure" in funcs["Invoke-Provision"]
    assert "Add-LimapyWarning" not in funcs["Invoke-Provision"]
    complete = funcs["Complete-Provision"]
    assert "Set-BootStatus 'failed' $message" in complete and "Send-Com1 $line" in complete
    # A failure survives a restart in the middle of the first logon: it is kept in a file
    assert "AppendAllText($ProvisionFailuresFile" in funcs["Add-ProvisionFailure"]


# --------------------------------------------------------------------------- the host's side


def test_the_probe_passes_any_default_shell_unchanged() -> None:
    probe = agent.WINDOWS_PROBE
    command = probe.split(" -Command ", 1)[1]
    assert command.startswith('"') and command.endswith('"')
    inner = command[1:-1]
    # cmd.exe leaves a double-quoted argument alone; powershell.exe and pwsh.exe would expand `$` and backticks
    assert '"' not in inner and "$" not in inner and "`" not in inner
    assert psgrammar.errors(inner) == []
    # the first logon's marker first, then this boot's status (a guest without limapy-boot.ps1: the marker alone)
    order = [inner.index(s) for s in (DONE_FILE, BOOT_SCRIPT, STATUS_PATH)]
    assert order == sorted(order)
    # the Windows stand-in's PowerShell.exe (hack/build-windows-standin.sh) answers it by this pattern
    assert re.search(r"Test-Path.*lima-boot-done\.txt", probe)


@pytest.mark.parametrize(
    ("stdout", "errors"),
    [
        ("LIMAPY-PHASE sshd: sshd started\r\n", []),
        ("LIMAPY-PROVISION-FAILED provisioning: a system script failed (its log: C:\\x.log)\r\n",
         ["the guest's provisioning: a system script failed (its log: C:\\x.log)"]),
        ("LIMAPY-PROVISION-FAILED the clone identity: \x1b[2Jboom\n", ["the clone identity:  [2Jboom"]),
        ("LIMAPY-PROVISION-FAILED " + "x" * 5000, ["x" * 400]),
    ],
)  # fmt: skip
def test_ready_errors(stdout: str, errors: list[str]) -> None:
    assert agent.ready_errors(stdout) == errors


def test_a_degraded_ready_event_fails_start(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host agent's ready event with `degraded` (Lima's status field) makes `limapy start` fail, with the
    guest's line; the guest keeps running."""
    import json

    from limapy.base.errors import LimapyError
    from limapy.instance import store
    from limapy.ops import start

    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    inst = store.create_instance_dir("w", {"lima.yaml": b"images: [{location: /nonexistent.img}]\n"})
    ev = {"status": {"running": True, "degraded": True, "errors": ["the guest's provisioning: x failed"]},
          "phase": "ready", "message": "ready"}  # fmt: skip
    inst.ha_stdout_log.write_text(json.dumps(ev) + "\n")

    class Agent:
        def poll(self) -> None:
            return None

    shown: list[str] = []
    with pytest.raises(LimapyError, match="running, but degraded: the guest's provisioning: x failed"):
        start.wait_ready(inst, Agent(), 5.0, shown.append)  # type: ignore[arg-type]
    ev["status"] = {"running": True}
    inst.ha_stdout_log.write_text(json.dumps(ev) + "\n")
    start.wait_ready(inst, Agent(), 5.0, shown.append)  # type: ignore[arg-type]
