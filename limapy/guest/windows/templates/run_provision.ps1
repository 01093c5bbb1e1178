# limapy provisioning runner: runs the scripts of one mode from C:\ProgramData\Lima\provision in
# order (as Lima 2.3 startup_runner.ps1 does: each through powershell.exe -File, a failure does not stop the
# ones after it). The first logon calls it for each mode once; at every later startup the task
# \limapy\boot (SYSTEM, limapy-boot.ps1) calls it for boot and system scripts, and the task
# \limapy\provision-user (the user, S4U) for user scripts. Exit code 1 when a script failed.
# Generated: every configured string below is a single-quoted literal (or Base64-decoded).
param([Parameter(Mandatory = $true)][ValidateSet('boot', 'dependency', 'system', 'user')][string]$Mode)
$ErrorActionPreference = 'Continue'
$ProvisionDir = Join-Path (Join-Path $env:ProgramData 'Lima') 'provision'
# The user's task runs without administrator rights: its log lives in the user's profile.
$LogDir = if ($Mode -eq 'user') { $env:USERPROFILE } else { $ProvisionDir }
$Log = Join-Path $LogDir ('limapy-provision-' + $Mode + '.log')
Start-Transcript -Path $Log -Append | Out-Null
{% for name, value in params %}
[System.Environment]::SetEnvironmentVariable({{ name | ps }}, {{ value | ps }}, 'Process')
{% endfor %}
$failed = @()
foreach ($script in @(Get-ChildItem -LiteralPath $ProvisionDir -Filter ($Mode + '-*.ps1') | Sort-Object -Property Name)) {
  Write-Host ('Running ' + $script.FullName + ' (' + $Mode + ')')
  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script.FullName
  if ($LASTEXITCODE -ne 0) {
    Write-Warning ($script.FullName + ' failed with exit code ' + $LASTEXITCODE)
    $failed += $script.FullName
  }
}
Stop-Transcript | Out-Null
if ($failed.Count -gt 0) { exit 1 }
exit 0
