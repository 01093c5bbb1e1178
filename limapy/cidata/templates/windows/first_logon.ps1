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
{% if msi %}
  $msi = Join-Path $Media {{ msi.name | ps }}
  $hash = (Get-FileHash -LiteralPath $msi -Algorithm SHA256).Hash
  if ($hash -ne {{ msi.sha256 | ps }}) { throw "OpenSSH MSI digest mismatch: $hash" }
  $log = Join-Path $LimaDir 'openssh-msi.log'
  # msiexec is a GUI program: without -Wait PowerShell would not wait for it.
  $p = Start-Process -FilePath 'msiexec.exe' -ArgumentList @('/i', $msi, 'ADDLOCAL=Server', '/qn', '/norestart', '/l*v', $log) -Wait -PassThru
  if ($p.ExitCode -ne 0 -and $p.ExitCode -ne 3010) { throw "msiexec failed with exit code $($p.ExitCode)" }
{% else %}
  $cap = Get-WindowsCapability -Online | Where-Object { $_.Name -like 'OpenSSH.Server*' } | Select-Object -First 1
  if (-not $cap) { throw 'this Windows image offers no OpenSSH.Server capability' }
  if ($cap.State -ne 'Installed') {
    # Needs Windows Update; may take ten minutes or more.
    Add-WindowsCapability -Online -Name $cap.Name | Out-Null
  }
{% endif %}
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
{% if shell == "pwsh" %}
  $cmd = Get-Command -Name 'pwsh.exe' -ErrorAction SilentlyContinue
  $shell = if ($cmd) { $cmd.Source } else { Join-Path $env:ProgramFiles 'PowerShell\7\pwsh.exe' }
{% elif shell == "powershell" %}
  $shell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
{% else %}
  $shell = Join-Path $env:SystemRoot 'System32\cmd.exe'
{% endif %}
  New-Item -Path 'HKLM:\SOFTWARE\OpenSSH' -Force | Out-Null
  New-ItemProperty -Path 'HKLM:\SOFTWARE\OpenSSH' -Name 'DefaultShell' -Value $shell -PropertyType String -Force | Out-Null
}

function Invoke-Provision {
  $dir = Join-Path $LimaDir 'provision'
  New-Item -ItemType Directory -Force -Path $dir | Out-Null
{% for name, value in params %}
  [System.Environment]::SetEnvironmentVariable({{ name | ps }}, {{ value | ps }}, 'Process')
{% endfor %}
  $failed = @()
{% for p in provisions %}
{% if p.mode == "data" %}
  $dest = {{ p.path | ps }}
  if ({{ "$true" if p.overwrite else "$false" }} -or -not (Test-Path -LiteralPath $dest)) {
    try {
      New-Item -ItemType Directory -Force -Path (Split-Path -Parent $dest) | Out-Null
      Copy-Item -LiteralPath (Join-Path $Media {{ p.file | ps }}) -Destination $dest -Force
    } catch { Write-Warning "data file $dest failed: $_"; $failed += $dest }
  }
{% else %}
  $script = Join-Path $dir {{ p.dest | ps }}
  Copy-Item -LiteralPath (Join-Path $Media {{ p.file | ps }}) -Destination $script -Force
  Write-Host "Running $script ({{ p.mode }})"
  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script
  if ($LASTEXITCODE -ne 0) { Write-Warning "$script failed with exit code $LASTEXITCODE"; $failed += $script }
{% endif %}
{% endfor %}
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
