# limapy first-logon script, run once by the answer file's only FirstLogonCommand from the answer
# media (volume label "autounattend"). Generated: every configured string below is a single-quoted
# literal (or Base64-decoded), so nothing in it is expanded by PowerShell.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Media = $PSScriptRoot
$LimaDir = Join-Path $env:ProgramData 'Lima'
$DoneFile = Join-Path $LimaDir 'lima-boot-done.txt'
$FailedFile = Join-Path $LimaDir 'lima-boot-failed.txt'
New-Item -ItemType Directory -Force -Path $LimaDir | Out-Null
Start-Transcript -Path (Join-Path $LimaDir 'first-logon.log') -Append | Out-Null

function Write-AsciiFile([string]$Path, [string]$Text) {
  # ASCII, no BOM (PowerShell 5.1's Out-File/Set-Content would write UTF-16 or add a BOM).
  [System.IO.File]::WriteAllText($Path, $Text, (New-Object System.Text.ASCIIEncoding))
}

function Install-OpenSSH {
  $msi = Join-Path $Media 'OpenSSH.msi'
  $hash = (Get-FileHash -LiteralPath $msi -Algorithm SHA256).Hash
  if ($hash -ne 'F936C64EB2F99967D11CB14160B66EBFD6CE719A7CED875DCFC425E0B7C6AA0A') { throw "OpenSSH MSI digest mismatch: $hash" }
  $log = Join-Path $LimaDir 'openssh-msi.log'
  # msiexec is a GUI program: without -Wait PowerShell would not wait for it.
  $p = Start-Process -FilePath 'msiexec.exe' -ArgumentList @('/i', $msi, 'ADDLOCAL=Server', '/qn', '/norestart', '/l*v', $log) -Wait -PassThru
  if ($p.ExitCode -ne 0 -and $p.ExitCode -ne 3010) { throw "msiexec failed with exit code $($p.ExitCode)" }
  $deadline = (Get-Date).AddMinutes(30)
  while (-not (Get-Service -Name sshd -ErrorAction SilentlyContinue)) {
    if ((Get-Date) -gt $deadline) { throw 'the sshd service did not appear' }
    Start-Sleep -Seconds 5
  }
}

function Set-SshFirewall {
  Get-NetFirewallRule -Name 'OpenSSH-Server-In-TCP' -ErrorAction SilentlyContinue | Remove-NetFirewallRule
  New-NetFirewallRule -Name 'OpenSSH-Server-In-TCP' -DisplayName 'OpenSSH Server (sshd)' -Enabled True `
    -Direction Inbound -Protocol TCP -Action Allow -LocalPort 22 -Profile Any | Out-Null
}

function Set-AuthorizedKeys {
  $sshDir = Join-Path $env:ProgramData 'ssh'
  New-Item -ItemType Directory -Force -Path $sshDir | Out-Null
  $file = Join-Path $sshDir 'administrators_authorized_keys'
  $keys = @()
  if (Test-Path -LiteralPath $file) { $keys += Get-Content -LiteralPath $file }
  $keys += Get-Content -LiteralPath (Join-Path $Media 'ssh_authorized_keys')
  $keys = $keys | ForEach-Object { $_.Trim() } | Where-Object { $_ } | Select-Object -Unique
  Write-AsciiFile $file (($keys -join "`n") + "`n")
  # sshd ignores the file unless only SYSTEM and Administrators may access it; SIDs work on any locale.
  & icacls.exe $file /inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F' | Out-Null
  if ($LASTEXITCODE -ne 0) { throw "icacls failed with exit code $LASTEXITCODE" }
}

function Set-DefaultShell {
  $shell = Join-Path $env:SystemRoot 'System32\cmd.exe'
  New-Item -Path 'HKLM:\SOFTWARE\OpenSSH' -Force | Out-Null
  New-ItemProperty -Path 'HKLM:\SOFTWARE\OpenSSH' -Name 'DefaultShell' -Value $shell -PropertyType String -Force | Out-Null
}

function Invoke-Provision {
  $dir = Join-Path $LimaDir 'provision'
  New-Item -ItemType Directory -Force -Path $dir | Out-Null
  [System.Environment]::SetEnvironmentVariable('PARAM_GREETING', 'hello', 'Process')
  $failed = @()
  $script = Join-Path $dir 'dependency-00000002.ps1'
  Copy-Item -LiteralPath (Join-Path $Media 'provision\dependency\00000002') -Destination $script -Force
  Write-Host "Running $script (dependency)"
  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script
  if ($LASTEXITCODE -ne 0) { Write-Warning "$script failed with exit code $LASTEXITCODE"; $failed += $script }
  $dest = 'C:\data\x.txt'
  if ($false -or -not (Test-Path -LiteralPath $dest)) {
    try {
      New-Item -ItemType Directory -Force -Path (Split-Path -Parent $dest) | Out-Null
      Copy-Item -LiteralPath (Join-Path $Media 'provision\data\00000003') -Destination $dest -Force
    } catch { Write-Warning "data file $dest failed: $_"; $failed += $dest }
  }
  $script = Join-Path $dir 'system-00000000.ps1'
  Copy-Item -LiteralPath (Join-Path $Media 'provision\system\00000000') -Destination $script -Force
  Write-Host "Running $script (system)"
  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script
  if ($LASTEXITCODE -ne 0) { Write-Warning "$script failed with exit code $LASTEXITCODE"; $failed += $script }
  $script = Join-Path $dir 'user-00000001.ps1'
  Copy-Item -LiteralPath (Join-Path $Media 'provision\user\00000001') -Destination $script -Force
  Write-Host "Running $script (user)"
  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script
  if ($LASTEXITCODE -ne 0) { Write-Warning "$script failed with exit code $LASTEXITCODE"; $failed += $script }
  if ($failed.Count -gt 0) { Write-AsciiFile (Join-Path $LimaDir 'provision-failed.txt') (($failed -join "`r`n") + "`r`n") }
}

if (Test-Path -LiteralPath $DoneFile) { Write-Host 'limapy first-logon already done'; Stop-Transcript | Out-Null; exit 0 }
try {
  Install-OpenSSH
  Set-SshFirewall
  Set-AuthorizedKeys
  Set-DefaultShell
  Set-Service -Name sshd -StartupType Automatic
  Restart-Service -Name sshd -Force
} catch {
  Write-AsciiFile $FailedFile ("OpenSSH setup failed: " + $_.ToString() + "`r`n")
  Stop-Transcript | Out-Null
  exit 1
}
try { Invoke-Provision } catch {
  Write-Warning "provisioning failed: $_"
  Write-AsciiFile (Join-Path $LimaDir 'provision-failed.txt') ($_.ToString() + "`r`n")
}
# The host agent waits for this file over SSH: it must stay the last step.
Write-AsciiFile $DoneFile "done`r`n"
Stop-Transcript | Out-Null
