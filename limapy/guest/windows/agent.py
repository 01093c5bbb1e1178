"""What the host agent asks of a running Windows guest over SSH: the readiness probe (the first logon's marker, and
its progress lines with it), the warnings it left, and a resumed guest's clock; and how the first logon's progress
reaches the host (COM1 and the phases file: limapy.guest.windows.phases)."""

from __future__ import annotations

import re
from typing import Any

from limapy.base.errors import LimapyError
from limapy.guest.windows.answer import BOOT_SCRIPT, DONE_FILE, PHASES_FILE, STATUS_PATH, WARNINGS_FILE
from limapy.instance import store

#: How the probe names this boot's provisioning failure (one line; the guest's text is sanitized here too).
PROVISION_FAILED = "LIMAPY-PROVISION-FAILED "
#: ... and a clone's identity step that failed (the boot is not ready: limapy.guest.windows.identity).
IDENTITY_FAILED = "LIMAPY-IDENTITY-FAILED "

# Ready: the first logon has finished (its marker, Lima's lima-boot-done.txt) and this boot's provisioning is
# done or failed (the volatile key limapy-boot.ps1 or the first logon writes; a guest installed before limapy
# had limapy-boot.ps1 has no such key, and its marker alone says ready). The first logon's progress lines
# (limapy.guest.windows.phases) come with each probe: the only way they reach the host on aarch64, where Windows
# has no COM1. No `$` and no double quote inside: the command passes through cmd.exe, powershell.exe or pwsh.exe
# (the user's DefaultShell) unchanged.
WINDOWS_PROBE = (
    "PowerShell.exe -NoProfile -NonInteractive -Command \"Get-Content -LiteralPath "
    f"'{PHASES_FILE}' -ErrorAction SilentlyContinue; if (-not (Test-Path -Path "
    f"'{DONE_FILE}' -PathType Leaf)) {{ exit 1 }}; if (-not (Test-Path -Path '{BOOT_SCRIPT}' -PathType Leaf)) "
    f"{{ exit 0 }}; switch ((Get-ItemProperty -LiteralPath '{STATUS_PATH}' -ErrorAction SilentlyContinue).Provision) "
    f"{{ 'done' {{ exit 0 }} 'failed' {{ '{PROVISION_FAILED}' + (Get-ItemProperty -LiteralPath '{STATUS_PATH}')"
    f".Failure; exit 0 }} 'identity-failed' {{ '{IDENTITY_FAILED}' + (Get-ItemProperty -LiteralPath "
    f"'{STATUS_PATH}').Failure; exit 2 }} }}; exit 1\""
)
WINDOWS_WARNINGS = (
    "PowerShell.exe -NoProfile -NonInteractive -Command \"Get-Content -LiteralPath "
    f"'{WARNINGS_FILE}' -ErrorAction SilentlyContinue\""
)


def clock(now: float) -> str:
    """A cmd.exe line for an administrator's OpenSSH session (Lima's Windows user is one) that sets the clock
    (limapy.guest.linux.clock says why)."""
    ms = int(now * 1000)
    return (
        'PowerShell.exe -NoProfile -NonInteractive -Command "Set-Date -Date '
        f'([DateTimeOffset]::FromUnixTimeMilliseconds({ms}).LocalDateTime) | Out-Null"'
    )


def _lines(stdout: str, prefix: str) -> list[str]:
    return [re.sub(r"[^\x20-\x7e]", " ", line[len(prefix) :]).strip()[:400]
            for line in stdout.splitlines() if line.startswith(prefix)]  # fmt: skip


def ready_errors(stdout: str) -> list[str]:
    """This boot's provisioning failure, from the ready probe's answer: one printable line, bounded."""
    return [f"the guest's {text}" if text.startswith("provisioning") else text
            for text in _lines(stdout, PROVISION_FAILED)][:1]  # fmt: skip


def probe_ready(result: Any) -> bool:
    """Ready (exit 0); a clone whose identity step failed is an error: the host stops it, and its next start
    tries again (the identity stays pending until a boot is ready)."""
    failed = _lines(result.stdout, IDENTITY_FAILED)
    if failed:
        raise LimapyError(
            f"the Windows clone's first boot failed: {failed[0]}",
            hint=r"its log in the guest: C:\ProgramData\Lima\limapy-boot.log; start it again to retry",
        )
    return bool(result.exit_code == 0)


def warnings(guest: Any) -> list[str]:
    """Lines the first-logon script left in limapy-warnings.txt (e.g. a user.shell that is not installed)."""
    from limapy import remote

    try:
        r = guest.run(WINDOWS_WARNINGS, timeout=30)
    except remote.RemoteError:
        return []
    if r.exit_code != 0:
        return []
    return [line.strip() for line in r.stdout.splitlines() if line.strip()][:20]


class FirstLogonPhases:
    """The first logon's progress (limapy.guest.InstallPhases): each step once, shown as `[windows] ...`; a failure
    (an error in the list, after the lines before it) ends the wait with the step and the error
    (limapy.guest.windows.phases) instead of the 90-minute timeout."""

    name = "windows"

    def __init__(self, inst: store.Instance) -> None:
        from limapy.guest.windows import phases

        self.inst = inst
        self.reader = phases.Reader()

    def feed(self, text: str) -> list[str | LimapyError]:
        return self._shown(self.reader.feed(text))

    def lines(self, lines: list[str]) -> list[str | LimapyError]:
        return self._shown(self.reader.lines(lines))

    def _shown(self, events: list[Any]) -> list[str | LimapyError]:
        from limapy.guest.windows import phases

        out: list[str | LimapyError] = []
        for event in events:
            if event.kind == "FAILED":
                name = self.inst.name
                out.append(LimapyError(
                    phases.failure_message(event, str(self.inst.serial_log)),
                    hint=f"`limapy rdp {name}` or `limapy screenshot {name}` to look; "
                    f"`limapy stop {name}` and start again to retry (the first logon resumes)",
                ))  # fmt: skip
                break
            out.append(event.text)
        return out
