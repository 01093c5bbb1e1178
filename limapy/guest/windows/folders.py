"""Host folders in a Windows guest: each `mountType: smb` share (limapy.guest.smb, \\\\192.168.5.4\\m0, m1, ...)
mapped to a drive letter, the first mount Z:, the next Y:, and so on down to H: (`net use`'s habit of taking
letters from the end, clear of the disks and CD drives Windows letters from C:).

The mappings are SMB *global* mappings (New-SmbGlobalMapping, SmbShare module, Windows 10 1709 and later;
Microsoft's docs: "Global mappings allow all users to use the same mapping"), not a user's `net use`: a drive
mapped in one logon session is invisible in the others, and limapy's shell arrives as an SSH logon whose
key-based token has no password to reach a share or the user's Credential Manager with. A global mapping is the
machine's, seen by the desktop, Remote Desktop and every SSH session alike, with its credential held by the
system. `-Persistent $true` lets Windows restore it at each boot by itself; the host agent makes it anew once the
guest is ready at every start and after a resume (the old QEMU's connections are gone; Windows' client
reconnects to the new smbd on first use either way).

The account's password reaches the guest on the SSH channel's stdin (read with [Console]::In), never on a
command line the guest's process list shows, never in the answer media and never on the guest's disk: the
script is sent as `-EncodedCommand` and holds only the account's name and the share paths.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from limapy.config.model import Mount, Spec
from limapy.guest import smb
from limapy.guest.windows.rules import DRIVES

log = logging.getLogger("limapy.guest.windows.folders")

#: Quote characters PowerShell's single-quoted strings end at (', and the typographic ones it treats alike).
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"
TIMEOUT = 120.0


def drive(index: int) -> str:
    return DRIVES[index] + ":"


def ps_literal(text: str) -> str:
    """`text` as a PowerShell single-quoted string (each quote character doubled)."""
    return "'" + "".join(c + c if c in _PS_QUOTES else c for c in text) + "'"


def mapping_script(user: str, count: int) -> str:
    """PowerShell (5.1 and 7) that maps shares m0.. m<count-1> for every session; the password is stdin's first
    line. One output line per share: `mapped <unc> <drive>` or `failed <unc> <drive> -- <why>`; exit status: the
    number that failed."""
    shares = ",\n    ".join(f"@({ps_literal(smb.unc(i))}, {ps_literal(drive(i))})" for i in range(count))
    return f"""# limapy: the host folders (mountType: smb) as SMB global mappings, seen by every session of this guest
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$secret = [Console]::In.ReadLine()
if (-not $secret) {{
    Write-Output 'failed: no password on stdin'
    exit {count}
}}
$password = ConvertTo-SecureString -String $secret -AsPlainText -Force
$secret = $null
$credential = New-Object -TypeName System.Management.Automation.PSCredential `
    -ArgumentList @({ps_literal(user)}, $password)
$failed = 0
$shares = @(
    {shares}
)
foreach ($share in $shares) {{
    $remote = $share[0]
    $drive = $share[1]
    try {{
        Get-SmbGlobalMapping -ErrorAction SilentlyContinue |
            Where-Object {{ $_.RemotePath -eq $remote -or $_.LocalPath -eq $drive }} |
            Remove-SmbGlobalMapping -Force -ErrorAction SilentlyContinue
        New-SmbGlobalMapping -RemotePath $remote -LocalPath $drive -Credential $credential -Persistent $true | Out-Null
        Write-Output "mapped $remote $drive"
    }} catch {{
        $failed++
        Write-Output ("failed $remote $drive -- " + $_.Exception.Message)
    }}
}}
exit $failed
"""


def command(script: str) -> str:
    """The remote command that runs `script` (cmd.exe or PowerShell as Win32-OpenSSH's DefaultShell alike)."""
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    # spelt as the host agent's other PowerShell commands (Windows does not mind the case; the stand-in does)
    return f"PowerShell.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {encoded}"


@dataclass
class Mapped:
    mount: Mount
    drive: str

    @property
    def how(self) -> str:
        return f"{self.drive} ({smb.unc(DRIVES.index(self.drive[0]))})"


def parse(lines: list[str], mounts: tuple[Mount, ...]) -> tuple[list[Mapped], list[str]]:
    """The script's output -> (the mapped mounts, why the others failed)."""
    by_drive = {drive(i): m for i, m in enumerate(mounts)}
    mapped, failed = [], []
    for line in lines:
        words = line.strip().split(" ", 3)
        if len(words) >= 3 and words[0] == "mapped" and words[2] in by_drive:
            mapped.append(Mapped(by_drive[words[2]], words[2]))
        elif words and words[0].startswith("failed"):
            failed.append(line.strip())
    return mapped, failed


class Folders:
    """Windows' host folders (limapy.guest.HostFolders): the smb shares as global drive mappings."""

    def mount(self, conn: Any, spec: Spec, warn: Any, serve: Any, inst: Any) -> list[Mapped]:
        mounts = spec.mounts_of("smb")
        if not mounts:
            return []
        try:
            secret = (inst.smb_dir / smb.PASSWORD).read_text().strip()
        except OSError as e:
            warn(f"host folders not mapped: the SMB account's password is missing ({e.strerror})")
            return []
        try:
            chan = conn.exec_channel(command(mapping_script(smb.account(), len(mounts))))
            chan.settimeout(TIMEOUT)
            chan.sendall((secret + "\r\n").encode())
            chan.shutdown_write()
            out = chan.makefile("r").read()
            text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
            status = chan.recv_exit_status()
            chan.close()
        except Exception as e:  # the guest went away, a timeout: the start goes on without its folders
            warn(f"host folders not mapped: {type(e).__name__}: {e}")
            return []
        mapped, failed = parse(text.splitlines(), mounts)
        for line in failed:
            warn(f"mapping a host folder in the guest {line}")
        if len(mapped) + len(failed) < len(mounts):  # the script did not run, or stopped before a share
            said = {m.drive for m in mapped} | {w.split(" ", 3)[2] for w in failed if len(w.split(" ", 3)) > 2}
            missing = [f"{m.location} ({drive(i)})" for i, m in enumerate(mounts) if drive(i) not in said]
            warn(f"host folders not mapped: {', '.join(missing)} (the guest's mapping script ended with status "
                 f"{status} and said nothing of them)")  # fmt: skip
        log.info("smb: %s", ", ".join(f"{m.mount.location} -> {m.drive}" for m in mapped))
        return mapped

    def unmount(self, conn: Any, live: list[Any]) -> None:
        """Nothing: the mappings stay (persistent), the guest powers down, and the next start maps them anew."""


FOLDERS = Folders()
