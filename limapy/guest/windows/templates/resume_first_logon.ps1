# limapy: run at every startup by the task \limapy\first-logon (SYSTEM) until the first logon has
# finished. Finds the answer media by its volume label (never by a drive letter; CD-ROMs may come up a
# few seconds after the task starts) and runs its first_logon.ps1 -Resume, which skips the steps done.
$ErrorActionPreference = 'Stop'
$LimaDir = Join-Path $env:ProgramData 'Lima'
if (Test-Path -LiteralPath (Join-Path $LimaDir 'lima-boot-done.txt')) {
  Unregister-ScheduledTask -TaskPath '\limapy\' -TaskName 'first-logon' -Confirm:$false -ErrorAction SilentlyContinue
  exit 0
}
$deadline = (Get-Date).AddMinutes(5)
$drive = $null
while (-not $drive) {
  $v = @(Get-Volume | Where-Object { $_.FileSystemLabel -ieq 'autounattend' -and $_.DriveLetter })[0]
  if ($v) {
    $drive = [string]$v.DriveLetter + ':'
  } else {
    $w = @(Get-CimInstance Win32_Volume | Where-Object { $_.Label -ieq 'autounattend' -and $_.DriveLetter })[0]
    if ($w) { $drive = [string]$w.DriveLetter }
  }
  if (-not $drive) {
    if ((Get-Date) -gt $deadline) {
      [System.IO.File]::AppendAllText((Join-Path $LimaDir 'first-logon.log'), "resume: no volume labelled autounattend`r`n")
      exit 1
    }
    Start-Sleep -Seconds 5
  }
}
& (Join-Path ($drive + '\') 'first_logon.ps1') -Resume
exit $LASTEXITCODE
