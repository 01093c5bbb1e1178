# limapy: run at every startup by the task \limapy\boot (SYSTEM), which the first logon registers; the
# first boot's provisioning is the first logon's own. In order:
#  1. a clone's identity, when its identity medium (volume label LIMAPY_ID, `limapy clone`) is attached
#     and names an identity not applied yet: new SSH host keys, the passwords and the computer name
#     (then a restart), or sysprep /generalize /oobe (`limapy clone --generalize`);
#  2. provisioning, as Lima 2.3 runs system and user scripts at every startup (its tasks
#     LimaProvisionStartupSystem/User), in Lima's Linux order: boot scripts (a limapy extension),
#     data files, system scripts (SYSTEM), then user scripts through the task \limapy\provision-user
#     (the user, S4U);
#  3. this boot's outcome in a volatile registry key (gone at the next boot, like Linux's /run), which
#     the host's readiness probe reads; a failure also goes to COM1 and to the log.
# The log: C:\ProgramData\Lima\limapy-boot.log. Secrets never reach it (nothing below prints them).
# Generated: every configured string below is a single-quoted literal.
param([switch]$IdentityOnly)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$LimaDir = Join-Path $env:ProgramData 'Lima'
$ProvisionDir = Join-Path $LimaDir 'provision'
$DoneFile = Join-Path $LimaDir 'lima-boot-done.txt'
$IdentityFile = Join-Path $LimaDir 'limapy-identity.txt'
$SshDir = Join-Path $env:ProgramData 'ssh'
$UserName = 'alice'
New-Item -ItemType Directory -Force -Path $LimaDir | Out-Null
Start-Transcript -Path (Join-Path $LimaDir 'limapy-boot.log') -Append | Out-Null

function Send-Line([string]$Line) {
  # One ASCII line on COM1 (the host logs it in serial.log), bounded, without control characters.
  $Line = ($Line -replace '[^\x20-\x7e]', ' ')
  if ($Line.Length -gt 400) { $Line = $Line.Substring(0, 400) }
  Write-Host $Line
  try {
    $port = New-Object System.IO.Ports.SerialPort 'COM1', 115200, 'None', 8, 'One'
    $port.WriteTimeout = 2000
    $port.Open()
    try { $port.Write("`r`n" + $Line + "`r`n") } finally { $port.Close() }
  } catch {
    Write-Host ('COM1 not written: ' + $_.Exception.Message)
  }
}

function Set-BootStatus([string]$State, [string]$Failure) {
  # A volatile key: Windows drops it at shutdown, so a value is always this boot's.
  $options = [Microsoft.Win32.RegistryOptions]::Volatile
  $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey('SOFTWARE\limapy\boot', [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree, $options)
  try {
    $key.SetValue('Provision', $State)
    $key.SetValue('Failure', ($Failure -replace '[^\x20-\x7e]', ' '))
  } finally { $key.Close() }
}

function Find-IdentityMedium {
  foreach ($v in @(Get-CimInstance -ClassName Win32_Volume -ErrorAction SilentlyContinue)) {
    if ($v.Label -ieq 'LIMAPY_ID' -and $v.DriveLetter) { return ([string]$v.DriveLetter + '\') }
  }
  return $null
}

function Get-AppliedIdentity {
  if (Test-Path -LiteralPath $IdentityFile) { return (Get-Content -Raw -LiteralPath $IdentityFile).Trim() }
  return ''
}

function Reset-SshHostKeys {
  # Fresh host keys, made in the guest (they never leave it): ssh-keygen -A writes every missing key type
  # under %ProgramData%\ssh (Win32-OpenSSH's path for /etc/ssh); each private key is then readable by SYSTEM
  # and Administrators only, as sshd requires of host keys (check_secure_file_permission).
  Stop-Service -Name sshd -Force -ErrorAction SilentlyContinue
  Get-ChildItem -LiteralPath $SshDir -Filter 'ssh_host_*' -ErrorAction SilentlyContinue | Remove-Item -Force
  $keygen = Join-Path $env:ProgramFiles 'OpenSSH\ssh-keygen.exe'
  if (-not (Test-Path -LiteralPath $keygen)) { $keygen = Join-Path $env:SystemRoot 'System32\OpenSSH\ssh-keygen.exe' }
  & $keygen -A | Out-Host
  if ($LASTEXITCODE -ne 0) { throw "ssh-keygen -A failed with exit code $LASTEXITCODE" }
  foreach ($key in @(Get-ChildItem -LiteralPath $SshDir -Filter 'ssh_host_*_key')) {
    & icacls.exe $key.FullName /inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F' | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "icacls failed with exit code $LASTEXITCODE" }
  }
  # In Setup's specialize pass (-IdentityOnly after sysprep) services do not start yet: sshd starts at boot.
  try { Start-Service -Name sshd } catch { if (-not $IdentityOnly) { throw } }
}

function Register-UserTask {
  # The user's task again: /generalize gives the user a new SID, and the computer may have a new name.
  if (-not (Get-ScheduledTask -TaskPath '\limapy\' -TaskName 'provision-user' -ErrorAction SilentlyContinue)) { return }
  $runner = Join-Path $ProvisionDir 'run-provision.ps1'
  $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "' + $runner + '" -Mode user')
  $principal = New-ScheduledTaskPrincipal -UserId ($env:COMPUTERNAME + '\' + $UserName) -LogonType S4U -RunLevel Limited
  $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Hours 2)
  Register-ScheduledTask -TaskPath '\limapy\' -TaskName 'provision-user' -Action $action -Principal $principal -Settings $settings -Force | Out-Null
}

function Set-Passwords($Identity) {
  # From the medium's file into SecureStrings: never on a command line, never printed.
  $secure = ConvertTo-SecureString -String ([string]$Identity.userPassword) -AsPlainText -Force
  Set-LocalUser -Name $UserName -Password $secure
  if ($Identity.adminPassword) {
    $admin = @(Get-LocalUser | Where-Object { $_.SID.Value -like 'S-1-5-21-*-500' })[0]
    if ($admin) {
      $secure = ConvertTo-SecureString -String ([string]$Identity.adminPassword) -AsPlainText -Force
      Set-LocalUser -InputObject $admin -Password $secure
    }
  }
}

function Invoke-Sysprep([string]$Root) {
  # The medium's answer file, its language fields filled from this system (so OOBE asks nothing), in a copy
  # only SYSTEM and Administrators can read (it holds the passwords; Setup scrubs them from its own cached copy
  # in Panther); sysprep restarts the machine into Setup's specialize and oobeSystem passes.
  $xml = New-Object System.Xml.XmlDocument
  $xml.Load((Join-Path $Root 'unattend.xml'))
  $ns = New-Object System.Xml.XmlNamespaceManager($xml.NameTable)
  $ns.AddNamespace('u', 'urn:schemas-microsoft-com:unattend')
  $intl = "//u:settings[@pass='oobeSystem']/u:component[@name='Microsoft-Windows-International-Core']/"
  $xml.SelectSingleNode($intl + 'u:UILanguage', $ns).InnerText = (Get-UICulture).Name
  $xml.SelectSingleNode($intl + 'u:SystemLocale', $ns).InnerText = (Get-WinSystemLocale).Name
  $xml.SelectSingleNode($intl + 'u:UserLocale', $ns).InnerText = (Get-Culture).Name
  $tip = @((Get-WinUserLanguageList)[0].InputMethodTips)[0]
  if ($tip) { $xml.SelectSingleNode($intl + 'u:InputLocale', $ns).InnerText = $tip }
  $copy = Join-Path $LimaDir 'limapy-sysprep.xml'
  New-Item -ItemType File -Force -Path $copy | Out-Null
  & icacls.exe $copy /inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F' | Out-Null
  $xml.Save($copy)
  $sysprep = Join-Path $env:SystemRoot 'System32\Sysprep\sysprep.exe'
  $p = Start-Process -FilePath $sysprep -ArgumentList @('/generalize', '/oobe', '/reboot', '/quiet', ('/unattend:' + $copy)) -Wait -PassThru
  Remove-Item -LiteralPath $copy -Force -ErrorAction SilentlyContinue
  if ($p.ExitCode -ne 0) {
    throw ('sysprep failed with exit code ' + $p.ExitCode + ' (its log: ' + (Join-Path $env:SystemRoot 'System32\Sysprep\Panther\setupact.log') + ')')
  }
}

function Invoke-CloneIdentity {
  # $true: the machine restarts to finish it (this boot is not ready).
  $root = Find-IdentityMedium
  if (-not $root) { return $false }
  $identity = Get-Content -Raw -LiteralPath (Join-Path $root 'identity.json') | ConvertFrom-Json
  $id = [string]$identity.id
  $applied = Get-AppliedIdentity
  if ($applied -eq $id) { return $false }
  if ($identity.generalize) {
    if ($IdentityOnly) {
      # Setup's specialize pass after sysprep: the passwords, before the answer file's AutoLogon needs them.
      Set-Passwords $identity
      return $false
    }
    if ($applied -ne ($id + ' generalized')) {
      Send-Line 'LIMAPY-PHASE generalize: sysprep /generalize /oobe (a new machine SID), then a restart'
      Set-Content -LiteralPath $IdentityFile -Value ($id + ' generalized') -Encoding Ascii
      try { Invoke-Sysprep $root } catch { Remove-Item -LiteralPath $IdentityFile -Force; throw }
      return $true
    }
  }
  Send-Line 'LIMAPY-PHASE identity: new SSH host keys, passwords and computer name for this clone'
  Reset-SshHostKeys
  Set-Passwords $identity
  Register-UserTask
  # The marker last: a step that failed runs again at the next start (each one is safe to repeat).
  if ($env:COMPUTERNAME -ne [string]$identity.computerName) {
    Rename-Computer -NewName ([string]$identity.computerName) -Force
    Set-Content -LiteralPath $IdentityFile -Value $id -Encoding Ascii
    Restart-Computer -Force
    return $true
  }
  Set-Content -LiteralPath $IdentityFile -Value $id -Encoding Ascii
  return $false
}

function Invoke-Mode([string]$Mode) {
  # The failure's description, or $null.
  if (-not (Get-ChildItem -LiteralPath $ProvisionDir -Filter ($Mode + '-*.ps1') -ErrorAction SilentlyContinue)) { return $null }
  # The scripts' output goes to the log, not into this function's result.
  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File (Join-Path $ProvisionDir 'run-provision.ps1') -Mode $Mode | Out-Host
  if ($LASTEXITCODE -ne 0) { return ('a ' + $Mode + ' script failed (its log: ' + (Join-Path $ProvisionDir ('limapy-provision-' + $Mode + '.log')) + ')') }
  return $null
}

function Invoke-UserTask {
  $task = Get-ScheduledTask -TaskPath '\limapy\' -TaskName 'provision-user' -ErrorAction SilentlyContinue
  if (-not $task) { return $null }
  $started = (Get-Date).AddSeconds(-2)
  Start-ScheduledTask -TaskPath '\limapy\' -TaskName 'provision-user'
  $deadline = (Get-Date).AddHours(2)
  do {
    Start-Sleep -Seconds 2
    $info = Get-ScheduledTaskInfo -TaskPath '\limapy\' -TaskName 'provision-user'
    $state = (Get-ScheduledTask -TaskPath '\limapy\' -TaskName 'provision-user').State
  } while (($state -eq 'Running' -or $info.LastRunTime -lt $started) -and (Get-Date) -lt $deadline)
  if ($info.LastTaskResult -ne 0) {
    return ('a user script failed (task result ' + $info.LastTaskResult + '; its log: limapy-provision-user.log in the profile of ' + $UserName + ')')
  }
  return $null
}

function Install-DataFiles {
  # Lima's data files, written at every boot as Lima's Linux boot.sh does (`overwrite: false` keeps an
  # existing file). The failure's description, or $null.
  $failed = @()
  $dest = 'C:\data\x.txt'
  if ($false -or -not (Test-Path -LiteralPath $dest)) {
    try {
      New-Item -ItemType Directory -Force -Path (Split-Path -Parent $dest) -ErrorAction Stop | Out-Null
      Copy-Item -LiteralPath (Join-Path $ProvisionDir 'data-00000003') -Destination $dest -Force -ErrorAction Stop
    } catch { $failed += $dest; Write-Warning ('data file ' + $dest + ': ' + $_.ToString()) }
  }
  if ($failed.Count -gt 0) { return ('data files not written: ' + ($failed -join ', ')) }
  return $null
}

# One run per boot: the startup trigger and (after sysprep) the first logon's command may both start it.
$mutex = New-Object System.Threading.Mutex($false, 'Global\limapy-boot')
try { [void]$mutex.WaitOne() } catch [System.Threading.AbandonedMutexException] { Write-Host 'a previous run ended without releasing the lock' }
$previous = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\limapy\boot' -ErrorAction SilentlyContinue
if (-not $IdentityOnly -and $previous -and $previous.Provision -ne 'running') {
  Write-Host ('this boot was provisioned already: ' + $previous.Provision)
  Stop-Transcript | Out-Null
  exit 0
}
try {
  if (Invoke-CloneIdentity) {
    Stop-Transcript | Out-Null
    exit 0
  }
} catch {
  # Not ready, not degraded: the host stops the clone and keeps its identity for the next start to retry.
  $message = 'the clone identity: ' + $_.ToString()
  Set-BootStatus 'identity-failed' $message
  Send-Line ('LIMAPY-IDENTITY-FAILED ' + $message)
  Stop-Transcript | Out-Null
  exit 1
}
if ($IdentityOnly) {
  Stop-Transcript | Out-Null
  exit 0
}
if (-not (Test-Path -LiteralPath $DoneFile)) {
  # An unfinished first logon (resumed by its own task) runs this boot's provisioning itself.
  Write-Host 'the first logon has not finished: it provisions this boot'
  Stop-Transcript | Out-Null
  exit 0
}
$ErrorActionPreference = 'Continue'
Set-BootStatus 'running' ''
$failures = @()
foreach ($step in @('boot', 'data', 'system', 'user')) {
  Write-Host ('limapy boot: ' + $step)
  try {
    $failure = switch ($step) {
      'data' { Install-DataFiles }
      'user' { Invoke-UserTask }
      default { Invoke-Mode $step }
    }
  } catch { $failure = $step + ': ' + $_.ToString() }
  if ($failure) { $failures += $failure }
}
if ($failures.Count -gt 0) {
  $message = 'provisioning: ' + ($failures -join '; ')
  Set-BootStatus 'failed' $message
  Send-Line ('LIMAPY-PROVISION-FAILED ' + $message)
  Stop-Transcript | Out-Null
  exit 1
}
Set-BootStatus 'done' ''
Send-Line 'LIMAPY-PROVISION done'
Stop-Transcript | Out-Null
exit 0
