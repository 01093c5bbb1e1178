"""A resumed Windows clone's own SSH host keys (issue 29): it woke up as its source; before it is called ready the
host agent runs this once over SSH (its clock is set by the resume, limapy.guest.windows.agent.clock).

The keys are made in the guest as at a plain clone's first boot (boot.ps1's Reset-SshHostKeys: ssh-keygen -A under
%ProgramData%\\ssh, each private key then readable by SYSTEM and Administrators only, as sshd's
check_secure_file_permission requires). sshd is stopped for that and started again: stopping Win32-OpenSSH's
service leaves the sessions already open running (PowerShell/Win32-OpenSSH issues #1168 and #1681, "by design",
as on Unix), so the host agent's own session survives; `finally` starts it again whatever failed.

The computer name stays the source's: renaming Windows takes a restart, which would throw the resume away. `clone`
says so (Rename-Computer and a restart in the guest rename it when that matters).
"""

from __future__ import annotations

from limapy.guest.windows.listeners import encoded

SCRIPT = r"""$ErrorActionPreference = 'Stop'
$SshDir = Join-Path $env:ProgramData 'ssh'
$keygen = Join-Path $env:ProgramFiles 'OpenSSH\ssh-keygen.exe'
if (-not (Test-Path -LiteralPath $keygen)) { $keygen = Join-Path $env:SystemRoot 'System32\OpenSSH\ssh-keygen.exe' }
Stop-Service -Name sshd -Force
try {
  Get-ChildItem -LiteralPath $SshDir -Filter 'ssh_host_*' | Remove-Item -Force
  & $keygen -A | Out-Null
  if ($LASTEXITCODE -ne 0) { throw "ssh-keygen -A failed with exit code $LASTEXITCODE" }
  foreach ($key in @(Get-ChildItem -LiteralPath $SshDir -Filter 'ssh_host_*_key')) {
    & icacls.exe $key.FullName /inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F' | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "icacls failed with exit code $LASTEXITCODE" }
  }
} finally {
  Start-Service -Name sshd
}
"""

#: for the user's DefaultShell (cmd.exe): nothing in it for cmd.exe to interpret
COMMAND = f"PowerShell.exe -NoProfile -NonInteractive -EncodedCommand {encoded(SCRIPT)}"

WHAT = "new SSH host keys (the computer name stays the source's until renamed: that takes a restart)"
