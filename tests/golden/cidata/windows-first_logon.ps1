# limapy first-logon script. The answer file's only FirstLogonCommand runs it from the answer media
# (volume label "autounattend"); the startup task \limapy\first-logon (SYSTEM, registered before the
# first step) runs it again at every boot until the install marker exists, so a restart in the middle
# (a driver update, a power cut, `limapy restart`) resumes where it stopped. Each step is checkpointed
# (C:\ProgramData\Lima\steps\<step>.done, written once the step succeeded) and safe to run again.
# Each step's start and a failure are reported on COM1, which the host logs (serial.log) and shows.
# Generated: every configured string below is a single-quoted literal (or Base64-decoded), so nothing
# in it is expanded by PowerShell.
param([switch]$Resume)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Media = $PSScriptRoot
$UserName = 'alice'
$LimaDir = Join-Path $env:ProgramData 'Lima'
$DoneFile = Join-Path $LimaDir 'lima-boot-done.txt'
$FailedFile = Join-Path $LimaDir 'lima-boot-failed.txt'
$WarningsFile = Join-Path $LimaDir 'limapy-warnings.txt'
$PhasesFile = Join-Path $LimaDir 'limapy-phases.txt'
$StepsDir = Join-Path $LimaDir 'steps'
$LogFile = Join-Path $LimaDir 'first-logon.log'
$ProvisionDir = Join-Path $LimaDir 'provision'
$ProvisionFailuresFile = Join-Path $LimaDir 'limapy-provision-failures.txt'
$BootScript = Join-Path $LimaDir 'limapy-boot.ps1'
$SshDir = Join-Path $env:ProgramData 'ssh'
# The ACL sshd itself gives C:\ProgramData\ssh when it creates it (Win32-OpenSSH, wmain_sshd.c,
# create_prgdata_ssh_folder): owner Administrators; SYSTEM and Administrators full control,
# Authenticated Users read and execute; not inherited.
$SshDirSddl = 'O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;AU)'
$script:Step = 'start'
New-Item -ItemType Directory -Force -Path $LimaDir | Out-Null
New-Item -ItemType Directory -Force -Path $StepsDir | Out-Null
Start-Transcript -Path $LogFile -Append | Out-Null

function Write-AsciiFile([string]$Path, [string]$Text) {
  # ASCII, no BOM (PowerShell 5.1's Out-File/Set-Content would write UTF-16 or add a BOM).
  [System.IO.File]::WriteAllText($Path, $Text, (New-Object System.Text.ASCIIEncoding))
}

function Add-LimapyWarning([string]$Text) {
  # The host agent reads this file once the guest is ready and shows each line.
  Write-Warning $Text
  [System.IO.File]::AppendAllText($WarningsFile, ($Text + "`r`n"), (New-Object System.Text.ASCIIEncoding))
}

function Send-Phase([string]$Kind, [string]$Name, [string]$Text) {
  # One line on COM1 (QEMU's -serial: the 16550 UART of x86_64 machines; the host agent parses serial.log and
  # shows "[windows] <text>"), and in limapy-phases.txt (read over SSH once it is up: Windows on Arm has no
  # driver making the virt machine's PL011 a COM port). One ASCII line without control characters.
  $line = 'LIMAPY-' + $Kind + ' ' + $Name + ': ' + ($Text -replace '[\x00-\x1f\x7f]', ' ')
  if ($line.Length -gt 400) { $line = $line.Substring(0, 400) }
  Write-Host $line
  [System.IO.File]::AppendAllText($PhasesFile, ($line + "`r`n"), (New-Object System.Text.ASCIIEncoding))
  Send-Com1 $line
}

function Send-Com1([string]$Line) {
  try {
    $port = New-Object System.IO.Ports.SerialPort 'COM1', 115200, 'None', 8, 'One'
    $port.WriteTimeout = 2000
    $port.Open()
    try { $port.Write("`r`n" + $Line + "`r`n") } finally { $port.Close() }
  } catch {
    Write-Host ('COM1 not written: ' + $_.Exception.Message)
  }
}

function Invoke-Step([string]$Name, [string]$Phase, [scriptblock]$Body) {
  # A step runs until it has succeeded once: its checkpoint is written only after it returned.
  $script:Step = $Name
  $mark = Join-Path $StepsDir ($Name + '.done')
  if (Test-Path -LiteralPath $mark) { return }
  if ($Phase) { Send-Phase 'PHASE' $Name $Phase }
  & $Body
  Write-AsciiFile $mark "done`r`n"
}

function Register-ResumeTask {
  # AutoLogon logs the user on once, so only a startup task can finish an interrupted first logon.
  Copy-Item -LiteralPath (Join-Path $Media 'resume_first_logon.ps1') -Destination (Join-Path $LimaDir 'resume-first-logon.ps1') -Force
  $arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "' + (Join-Path $LimaDir 'resume-first-logon.ps1') + '"'
  $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $arguments
  $trigger = New-ScheduledTaskTrigger -AtStartup
  $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
  $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Hours 4)
  Register-ScheduledTask -TaskPath '\limapy\' -TaskName 'first-logon' -Action $action -Trigger $trigger `
    -Principal $principal -Settings $settings -Force | Out-Null
}

function Unregister-ResumeTask {
  Unregister-ScheduledTask -TaskPath '\limapy\' -TaskName 'first-logon' -Confirm:$false -ErrorAction SilentlyContinue
}

function Install-Drivers {
  # Setup loads $WinPEDriver$ into Windows PE and the installed Windows; should it not have, the NIC still gets
  # its driver here (pnputil adds and installs; a driver already installed is no error).
  & pnputil.exe /add-driver (Join-Path $Media '$WinPEDriver$\*.inf') /subdirs /install | Out-Host
  if ($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne 259 -and $LASTEXITCODE -ne 3010) {
    Add-LimapyWarning "pnputil could not add the virtio-win drivers (exit code $LASTEXITCODE)"
  }
}

function Set-PasswordNeverExpires {
  # A local account's password expires after 42 days by default; limapy's RDP logins must not stop then.
  # Not worth failing the first logon over: without the LocalAccounts module, the machine's maximum age.
  try {
    Set-LocalUser -Name $UserName -PasswordNeverExpires $true
  } catch {
    & net.exe accounts /maxpwage:unlimited | Out-Null
    if ($LASTEXITCODE -ne 0) { Add-LimapyWarning "the password of $UserName will expire: $_" }
  }
}

function Install-OpenSSH {
  if (Get-Service -Name sshd -ErrorAction SilentlyContinue) {
    # Windows Server 2025 ships sshd inbox (installed, not started); nothing to add.
    Write-Host 'the sshd service already exists: not installing OpenSSH'
    return
  }
  $msi = Join-Path $Media 'OpenSSH.msi'
  $hash = (Get-FileHash -LiteralPath $msi -Algorithm SHA256).Hash
  if ($hash -ne 'F936C64EB2F99967D11CB14160B66EBFD6CE719A7CED875DCFC425E0B7C6AA0A') { throw "OpenSSH MSI digest mismatch: $hash" }
  $log = Join-Path $LimaDir 'openssh-msi.log'
  # msiexec is a GUI program: without -Wait PowerShell would not wait for it.
  $p = Start-Process -FilePath 'msiexec.exe' -ArgumentList @('/i', $msi, 'ADDLOCAL=Server', '/qn', '/norestart', '/l*v', $log) -Wait -PassThru
  if ($p.ExitCode -ne 0 -and $p.ExitCode -ne 3010) { throw "msiexec failed with exit code $($p.ExitCode) (its log: $log)" }
  $deadline = (Get-Date).AddMinutes(30)
  while (-not (Get-Service -Name sshd -ErrorAction SilentlyContinue)) {
    if ((Get-Date) -gt $deadline) { throw 'the sshd service did not appear' }
    Start-Sleep -Seconds 5
  }
}

function Start-SshdOnce {
  # sshd creates C:\ProgramData\ssh (with $SshDirSddl), its host keys and sshd_config on its first
  # start, and refuses to start (exit 255) when the folder already exists with an ACL that lets
  # anyone but SYSTEM and Administrators write (check_secure_folder_permission). So nothing is
  # written there before this first start, and a folder left by something else gets sshd's own ACL.
  if (Test-Path -LiteralPath $SshDir) {
    $acl = Get-Acl -LiteralPath $SshDir
    $acl.SetSecurityDescriptorSddlForm($SshDirSddl)
    Set-Acl -LiteralPath $SshDir -AclObject $acl
  }
  Set-Service -Name sshd -StartupType Automatic
  Start-Service -Name sshd
  $deadline = (Get-Date).AddMinutes(2)
  while (-not (Test-Path -LiteralPath (Join-Path $SshDir 'sshd_config'))) {
    if ((Get-Date) -gt $deadline) { throw "sshd did not create $SshDir" }
    Start-Sleep -Seconds 1
  }
}

function Set-SshFirewall {
  # Server 2025's own rule leaves out the Public profile, which a user-mode NAT network often is.
  Get-NetFirewallRule -Name 'OpenSSH-Server-In-TCP' -ErrorAction SilentlyContinue | Remove-NetFirewallRule
  New-NetFirewallRule -Name 'OpenSSH-Server-In-TCP' -DisplayName 'OpenSSH Server (sshd)' -Enabled True `
    -Direction Inbound -Protocol TCP -Action Allow -LocalPort 22 -Profile Any | Out-Null
}

function Set-AuthorizedKeys {
  $file = Join-Path $SshDir 'administrators_authorized_keys'
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
  $fallback = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
  $shell = Join-Path $env:SystemRoot 'System32\cmd.exe'
  if (-not (Test-Path -LiteralPath $shell -PathType Leaf)) {
    # A DefaultShell that does not exist makes every SSH session fail.
    Add-LimapyWarning ('user.shell: ' + $shell + ' is not installed in the guest; sshd uses powershell.exe instead (use `limapy shell --shell powershell.exe`, or install it and set HKLM:\SOFTWARE\OpenSSH DefaultShell)')
    $shell = $fallback
  }
  # sshd creates this key (with its own ACL) on its first start; New-Item -Force would replace it.
  if (-not (Test-Path -LiteralPath 'HKLM:\SOFTWARE\OpenSSH')) { New-Item -Path 'HKLM:\SOFTWARE\OpenSSH' | Out-Null }
  New-ItemProperty -Path 'HKLM:\SOFTWARE\OpenSSH' -Name 'DefaultShell' -Value $shell -PropertyType String -Force | Out-Null
}

function Start-Sshd {
  Start-SshdOnce
  Set-SshFirewall
  Set-AuthorizedKeys
  Set-DefaultShell
  Restart-Service -Name sshd -Force
}

function Install-Provision {
  New-Item -ItemType Directory -Force -Path $ProvisionDir | Out-Null
  Copy-Item -LiteralPath (Join-Path $Media 'provision\run-provision.ps1') -Destination $ProvisionDir -Force
  Copy-Item -LiteralPath (Join-Path $Media 'provision\dependency\00000002') -Destination (Join-Path $ProvisionDir 'dependency-00000002.ps1') -Force
  Copy-Item -LiteralPath (Join-Path $Media 'provision\data\00000003') -Destination (Join-Path $ProvisionDir 'data-00000003') -Force
  Copy-Item -LiteralPath (Join-Path $Media 'provision\system\00000000') -Destination (Join-Path $ProvisionDir 'system-00000000.ps1') -Force
  Copy-Item -LiteralPath (Join-Path $Media 'provision\user\00000001') -Destination (Join-Path $ProvisionDir 'user-00000001.ps1') -Force
  # Every later boot: limapy-boot.ps1 (the clone identity, then boot and system scripts and data files as
  # SYSTEM, then the user's task), run by \limapy\boot at startup.
  Copy-Item -LiteralPath (Join-Path $Media 'provision\limapy-boot.ps1') -Destination $BootScript -Force
  $arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "' + $BootScript + '"'
  $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $arguments
  $trigger = New-ScheduledTaskTrigger -AtStartup
  $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
  $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Hours 4)
  Register-ScheduledTask -TaskPath '\limapy\' -TaskName 'boot' -Action $action -Trigger $trigger `
    -Principal $principal -Settings $settings -Force | Out-Null
  # S4U: runs as this user without storing a password (no access to network shares); started by
  # limapy-boot.ps1 after the system scripts, so it has no trigger of its own.
  Register-ProvisionTask 'user' (New-ScheduledTaskPrincipal -UserId ($env:COMPUTERNAME + '\' + $UserName) -LogonType S4U -RunLevel Limited)
}

function Install-DataFiles {
  $dest = 'C:\data\x.txt'
  if ($false -or -not (Test-Path -LiteralPath $dest)) {
    try {
      New-Item -ItemType Directory -Force -Path (Split-Path -Parent $dest) | Out-Null
      Copy-Item -LiteralPath (Join-Path $Media 'provision\data\00000003') -Destination $dest -Force
    } catch { Add-ProvisionFailure "data file $dest not written: $_" }
  }
}

function Add-ProvisionFailure([string]$Text) {
  # Kept in a file: a first logon resumed after a restart still reports what failed before it.
  Write-Warning $Text
  [System.IO.File]::AppendAllText($ProvisionFailuresFile, ($Text + "`r`n"), (New-Object System.Text.ASCIIEncoding))
}

function Set-BootStatus([string]$State, [string]$Failure) {
  # This boot's provisioning outcome, read by the host's readiness probe; a volatile key, gone at the next
  # boot (limapy-boot.ps1 writes it then).
  $options = [Microsoft.Win32.RegistryOptions]::Volatile
  $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey('SOFTWARE\limapy\boot', [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree, $options)
  try {
    $key.SetValue('Provision', $State)
    $key.SetValue('Failure', ($Failure -replace '[^\x20-\x7e]', ' '))
  } finally { $key.Close() }
}

function Complete-Provision {
  $failures = @()
  if (Test-Path -LiteralPath $ProvisionFailuresFile) {
    $failures = @(Get-Content -LiteralPath $ProvisionFailuresFile | Where-Object { $_ })
  }
  if ($failures.Count -gt 0) {
    $message = 'provisioning: ' + ($failures -join '; ')
    Set-BootStatus 'failed' $message
    # Not a FAILED phase: the install itself went through, and the phases file outlives this boot.
    $line = 'LIMAPY-PROVISION-FAILED ' + ($message -replace '[^\x20-\x7e]', ' ')
    if ($line.Length -gt 400) { $line = $line.Substring(0, 400) }
    Write-Host $line
    Send-Com1 $line
  } else {
    Set-BootStatus 'done' ''
  }
}

function Register-ProvisionTask([string]$Mode, $Principal) {
  # Started by limapy-boot.ps1 at every later startup, after the system scripts (Lima 2.3 runs its user
  # scripts at every startup too, from a task of the user's, S4U).
  $runner = Join-Path $ProvisionDir 'run-provision.ps1'
  $arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "' + $runner + '" -Mode ' + $Mode
  $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $arguments
  $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Hours 2)
  Register-ScheduledTask -TaskPath '\limapy\' -TaskName ('provision-' + $Mode) -Action $action `
    -Principal $Principal -Settings $settings -Force | Out-Null
}

function Invoke-Provision([string]$Mode) {
  if ($Mode -eq 'user' -and $Resume) {
    # Resumed at startup as SYSTEM: the user's scripts run as the user, through the user's own task.
    $started = (Get-Date).AddSeconds(-2)
    Start-ScheduledTask -TaskPath '\limapy\' -TaskName 'provision-user'
    $deadline = (Get-Date).AddHours(2)
    do {
      Start-Sleep -Seconds 5
      $info = Get-ScheduledTaskInfo -TaskPath '\limapy\' -TaskName 'provision-user'
    } while (((Get-ScheduledTask -TaskPath '\limapy\' -TaskName 'provision-user').State -eq 'Running' -or $info.LastRunTime -lt $started) -and (Get-Date) -lt $deadline)
    if ($info.LastTaskResult -ne 0) { Add-ProvisionFailure "a user script failed (task result $($info.LastTaskResult); its log: limapy-provision-user.log in the profile of $UserName)" }
    return
  }
  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File (Join-Path $ProvisionDir 'run-provision.ps1') -Mode $Mode
  if ($LASTEXITCODE -ne 0) {
    $where = if ($Mode -eq 'user') { "in the profile of $UserName" } else { "in $ProvisionDir" }
    Add-ProvisionFailure "a $Mode script failed (its log: limapy-provision-$Mode.log $where)"
  }
}

if (Test-Path -LiteralPath $DoneFile) {
  Write-Host 'limapy first-logon already done'
  Unregister-ResumeTask
  Stop-Transcript | Out-Null
  exit 0
}
if ($Resume) { Write-Host 'limapy first-logon: resuming at startup' }
try {
  Register-ResumeTask
  Invoke-Step 'account' '' { Set-PasswordNeverExpires }
  Invoke-Step 'openssh' 'installing OpenSSH' { Install-OpenSSH }
  Invoke-Step 'sshd' 'starting sshd' { Start-Sshd }
  Send-Phase 'PHASE' 'sshd' 'sshd started'
} catch {
  $message = $_.ToString()
  Write-AsciiFile $FailedFile ('first logon failed at ' + $script:Step + ': ' + $message + "`r`n")
  Send-Phase 'FAILED' $script:Step ($message + ' (the whole log: ' + $LogFile + ')')
  Stop-Transcript | Out-Null
  exit 1
}
try {
  # Lima's order: dependency scripts, data files, system scripts, user scripts (boot scripts, a limapy
  # extension, first: cloud-init runs Lima's boot scripts before the others).
  Invoke-Step 'provision-tasks' '' { Install-Provision }
  Invoke-Step 'provision-dependency' 'running the dependency scripts' { Invoke-Provision 'dependency' }
  Invoke-Step 'provision-data' '' { Install-DataFiles }
  Invoke-Step 'provision-system' 'running the system scripts' { Invoke-Provision 'system' }
  Invoke-Step 'provision-user' 'running the user scripts' { Invoke-Provision 'user' }
} catch {
  Add-ProvisionFailure ('provisioning stopped at ' + $script:Step + ': ' + $_.ToString())
}
Complete-Provision
# The host agent waits for this file over SSH: it stays the last step.
Write-AsciiFile $DoneFile "done`r`n"
Send-Phase 'DONE' 'done' 'first logon finished'
Unregister-ResumeTask
Stop-Transcript | Out-Null
