"""The first logon resumes after an interruption and reports its phases over COM1 (issue 23, items 8 and 9).

The rendered first_logon.ps1 is read with PowerShell's grammar (tests/psgrammar.py): its steps are the
`Invoke-Step NAME PHASE { BODY }` calls of the main block, and `Invoke-Step` skips a step whose checkpoint exists
and writes the checkpoint only after the body returned. A model of that control flow then runs the script,
interrupts it after (or during) each step k and runs it again as the startup task does: every step ends up done
once (the interrupted one at most twice, which is why each is safe to repeat), the install marker is written, and
the startup task removes itself.

Evidence: AutoLogon with LogonCount 1 logs the user on once and FirstLogonCommands run at that logon only
(Microsoft's unattend reference, Microsoft-Windows-Shell-Setup/AutoLogon and FirstLogonCommands), so only a
startup task (Task Scheduler, `New-ScheduledTaskTrigger -AtStartup`, principal SYSTEM) can finish an interrupted
one. COM1: QEMU's `-serial` on q35 is the ISA 16550 at 0x3f8 its DSDT describes as `Device (COM1)`, PNP0501, IRQ 4
(QEMU's tests/data/acpi DSDT dumps; Windows' serial.sys names it COM1); .NET Framework's
System.IO.Ports.SerialPort (System.dll, in Windows PowerShell 5.1) writes to it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from limapy.guest.windows import phases as winserial
from limapy.guest.windows.answer import FIRST_LOGON, RESUME
from tests import psgrammar
from tests.unit.test_windows_guest import variant

PROVISIONS = ["none", "all", "system-only", "user-only"]


def script_of(provs: str, drivers: bool = True, msi: bytes | None = b"MSI") -> str:
    kw: dict[str, Any] = {"winpe_drivers": {"$WinPEDriver$/NetKVM/netkvm.inf": b"x"}} if drivers else {}
    return variant("cmd.exe", msi, provs, {}, **kw)[FIRST_LOGON].decode()


def steps_of(script: str) -> list[tuple[str, str, str]]:
    calls = psgrammar.calls(script, "Invoke-Step")
    assert calls and all(len(c) == 3 for c in calls), calls
    return [(c[0], c[1], c[2]) for c in calls]


def test_invoke_step_checkpoints_after_the_body() -> None:
    """What the model below assumes of Invoke-Step, read from the script itself."""
    func = psgrammar.functions(script_of("all"))["Invoke-Step"]
    skip = func.index("if (Test-Path -LiteralPath $mark) { return }")
    body = func.index("& $Body")
    mark = func.index('Write-AsciiFile $mark "done`r`n"')
    assert func.index("$mark = Join-Path $StepsDir ($Name + '.done')") < skip < body < mark
    assert func.index("$script:Step = $Name") < body  # the failure report names the step
    assert func.index("Send-Phase 'PHASE' $Name $Phase") < body


def test_the_startup_task_is_registered_before_any_step_and_removed_when_done() -> None:
    script = script_of("all")
    main = psgrammar.main_block(script)
    done_guard = main.index("if (Test-Path -LiteralPath $DoneFile)")
    register = main.index("Register-ResumeTask")
    assert done_guard < register < main.index("Invoke-Step")
    guard = main[done_guard : main.index("}", done_guard)]
    assert "Unregister-ResumeTask" in guard and "exit 0" in guard
    tail = main[main.rindex("Write-AsciiFile $DoneFile") :]
    assert "Unregister-ResumeTask" in tail
    funcs = psgrammar.functions(script)
    task = funcs["Register-ResumeTask"]
    assert "New-ScheduledTaskTrigger -AtStartup" in task
    assert "New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest" in task
    assert "-TaskPath '\\limapy\\' -TaskName 'first-logon'" in task and "-Force" in task
    assert "resume-first-logon.ps1" in task
    assert "Unregister-ScheduledTask -TaskPath '\\limapy\\' -TaskName 'first-logon'" in funcs["Unregister-ResumeTask"]


def test_the_resume_launcher_finds_the_media_by_label() -> None:
    files = variant("cmd.exe", None, "none", {})
    launcher = files[RESUME].decode()
    assert psgrammar.errors(launcher) == []
    assert "FileSystemLabel -ieq 'autounattend'" in launcher and "Win32_Volume" in launcher
    assert "'first_logon.ps1') -Resume" in launcher
    assert launcher.index("lima-boot-done.txt") < launcher.index("Get-Volume")  # done: no wait for media
    assert not re.search(r"(?<![%\w$])[A-BD-Z]:\\", launcher)


class Interrupted(Exception):
    pass


def run(steps: list[tuple[str, str, str]], state: dict[str, Any], *, after: int | None = None,
        during: int | None = None) -> None:  # fmt: skip
    """One run of the script as the checks above pin it: done -> unregister and exit; else register the task,
    then each step unless checkpointed; then the marker, then unregister. An interruption (power cut, restart)
    may come right after step `after`'s checkpoint, or in the middle of step `during` (its body ran, no mark)."""
    if state["done"]:
        state["task"] = False
        return
    state["task"] = True
    for i, (name, _phase, body) in enumerate(steps):
        if name in state["marks"]:
            continue
        state["ran"].append(body)
        if during == i:
            raise Interrupted
        state["marks"].add(name)
        if after == i:
            raise Interrupted
    state["done"] = True
    state["task"] = False


@pytest.mark.parametrize("provs", PROVISIONS)
def test_interrupted_after_each_step_it_finishes_at_the_next_boot(provs: str) -> None:
    steps = steps_of(script_of(provs))
    assert [s[0] for s in steps][:4] == ["drivers", "account", "openssh", "sshd"]
    for k in range(len(steps)):
        state: dict[str, Any] = {"marks": set(), "ran": [], "done": False, "task": False}
        with pytest.raises(Interrupted):
            run(steps, state, after=k)
        assert state["task"] and not state["done"]  # the startup task will run it again
        run(steps, state)  # the next boot: the task
        assert state["done"] and not state["task"]
        assert state["ran"] == [body for _, _, body in steps]  # each step once, in order
        run(steps, state)  # a later boot: nothing again
        assert state["ran"] == [body for _, _, body in steps]


@pytest.mark.parametrize("provs", PROVISIONS)
def test_interrupted_during_a_step_repeats_only_that_step(provs: str) -> None:
    steps = steps_of(script_of(provs))
    bodies = [body for _, _, body in steps]
    for k in range(len(steps)):
        state: dict[str, Any] = {"marks": set(), "ran": [], "done": False, "task": False}
        with pytest.raises(Interrupted):
            run(steps, state, during=k)
        run(steps, state)
        assert state["done"] and state["ran"] == bodies[: k + 1] + bodies[k:]


def test_a_resumed_first_logon_runs_user_scripts_as_the_user() -> None:
    """At startup the script runs as SYSTEM: user scripts go through the user's own task, and that task's principal
    is the configured user (not the current identity)."""
    funcs = psgrammar.functions(script_of("all"))
    invoke = funcs["Invoke-Provision"]
    resumed = invoke[invoke.index("if ($Mode -eq 'user' -and $Resume)") : invoke.index("return")]
    assert "Start-ScheduledTask -TaskPath '\\limapy\\' -TaskName 'provision-user'" in resumed
    assert "-UserId ($env:COMPUTERNAME + '\\' + $UserName) -LogonType S4U" in funcs["Install-Provision"]
    assert "$UserName = 'alice'" in script_of("all")


# --------------------------------------------------------------------------- phases over COM1


def phase_line(kind: str, name: str, text: str) -> str:
    """Send-Phase's line, as its PowerShell builds it (checked against the function's text below)."""
    clean = re.sub(r"[\x00-\x1f\x7f]", " ", text)
    return f"LIMAPY-{kind} {name}: {clean}"[:400]


def test_send_phase_writes_com1_and_the_phases_file() -> None:
    funcs = psgrammar.functions(script_of("all"))
    func = funcs["Send-Phase"]
    assert "$line = 'LIMAPY-' + $Kind + ' ' + $Name + ': ' + ($Text -replace '[\\x00-\\x1f\\x7f]', ' ')" in func
    assert "AppendAllText($PhasesFile" in func and func.rstrip("}").rstrip().endswith("Send-Com1 $line")
    func = funcs["Send-Com1"]
    assert "New-Object System.IO.Ports.SerialPort 'COM1', 115200, 'None', 8, 'One'" in func
    assert "$port.WriteTimeout = 2000" in func and "$port.Close()" in func
    # A machine without COM1 (Windows on Arm) is no failure: the write is tried, not required.
    assert func.index("try {") < func.index("$port.Open()") < func.index("} catch {")


@pytest.mark.parametrize("provs", PROVISIONS)
def test_every_phase_the_script_sends_is_one_the_host_reads(provs: str) -> None:
    script = script_of(provs)
    reader = winserial.Reader()
    lines = [phase_line("PHASE", name, phase) for name, phase, _ in steps_of(script) if phase]
    for call in psgrammar.calls(script, "Send-Phase"):
        if not call[1].startswith("$"):
            lines.append(phase_line(call[0], call[1], call[2]))
    events = reader.feed("\x1b[2J BdsDxe: noise\r\n" + "".join(f"\r\n{line}\r\n" for line in lines))
    assert [e.text for e in events if e.kind == "PHASE"][:3] == [
        "installing the virtio-win drivers", "installing OpenSSH", "starting sshd"]  # fmt: skip
    assert ("PHASE", "sshd", "sshd started") in [(e.kind, e.step, e.text) for e in events]
    assert events[-1].kind == "DONE"


def test_a_failure_names_the_step_the_error_and_the_log() -> None:
    main = psgrammar.main_block(script_of("all"))
    catch = main[main.index("} catch {") : main.index("exit 1")]
    assert "Send-Phase 'FAILED' $script:Step ($message + ' (the whole log: ' + $LogFile + ')')" in catch
    assert "Write-AsciiFile $FailedFile" in catch
    line = phase_line("FAILED", "openssh", "msiexec failed with exit code 1603 (the whole log: "
                      "C:\\ProgramData\\Lima\\first-logon.log)")  # fmt: skip
    (event,) = winserial.Reader().feed(f"\r\n{line}\r\n")
    message = winserial.failure_message(event, "/home/u/.limapy/w/serial.log")
    assert "step `openssh`" in message and "exit code 1603" in message and "first-logon.log" in message


def test_the_host_reader_is_robust_to_serial_noise() -> None:
    reader = winserial.Reader()
    assert reader.feed("\x00\x00LIMAPY-PHASE openssh: install") == []  # half a line: wait for its end
    (event,) = reader.feed("ing OpenSSH\r\n")
    assert (event.kind, event.step, event.text) == ("PHASE", "openssh", "installing OpenSSH")
    assert reader.feed("\r\nLIMAPY-PHASE openssh: installing OpenSSH\r\n") == []  # once (COM1, then the file)
    assert reader.lines(["LIMAPY-PHASE openssh: installing OpenSSH"]) == []
    (odd,) = reader.feed("LIMAPY-FAILED sshd: bad \x1b[31mred\x1b[0m caf\u00e9\r\n")
    assert odd.kind == "FAILED" and "\x1b" not in odd.text and odd.text.isascii()
    assert reader.feed("LIMAPY-PHASE bad name!: x\r\nLIMAPY-NOPE x: y\r\n") == []
    (long,) = reader.feed("LIMAPY-PHASE x: " + "y" * 5000 + "\r\n")
    assert len(long.text) <= 400


def test_the_host_agent_shows_phases_and_stops_at_a_failure(tmp_path: Any) -> None:
    import io
    import json

    from limapy.agent.hostagent import Events, HostAgent
    from limapy.base.errors import LimapyError
    from limapy.guest.windows.agent import FirstLogonPhases
    from limapy.instance import store

    out = io.StringIO()
    inst = store.Instance("win", tmp_path)
    agent = HostAgent(inst, Events(out))
    agent.phases = (FirstLogonPhases(inst), None)
    agent._phases(serial="BdsDxe: x\r\nLIMAPY-PHASE openssh: installing OpenSSH\r\n")
    agent._phases(lines=["LIMAPY-PHASE openssh: installing OpenSSH", "LIMAPY-PHASE sshd: sshd started"])
    shown = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["phase"], e["message"]) for e in shown] == [
        ("windows", "installing OpenSSH"), ("windows", "sshd started")]  # fmt: skip
    with pytest.raises(LimapyError) as e:
        agent._phases(serial="LIMAPY-FAILED openssh: msiexec failed (the whole log: C:\\x.log)\r\n")
    assert "step `openssh`: msiexec failed" in e.value.message and str(tmp_path / "serial.log") in e.value.message
    assert e.value.hint and "limapy rdp win" in e.value.hint


def test_the_account_password_never_expires() -> None:
    """Issue 23, item 10: local passwords expire after 42 days by default (then RDP logins stop)."""
    script = script_of("none")
    assert ("account", "", "Set-PasswordNeverExpires") in steps_of(script)
    func = psgrammar.functions(script)["Set-PasswordNeverExpires"]
    assert "Set-LocalUser -Name $UserName -PasswordNeverExpires $true" in func
    assert "net.exe accounts /maxpwage:unlimited" in func and "Add-LimapyWarning" in func  # never fatal
