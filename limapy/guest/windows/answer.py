"""The answer media that installs Windows unattended and ends with OpenSSH listening.

The ISO (Joliet, label `autounattend`) holds autounattend.xml at its root, first_logon.ps1 (run by the
only FirstLogonCommand, found by volume label rather than drive letter, and again at startup until it has
finished: resume_first_logon.ps1), ssh_authorized_keys, provision/<mode>/%08d files, the OpenSSH MSI, and the
virtio-win drivers the guest's devices need under `$WinPEDriver$` (Setup looks for that folder on every drive),
with limapy-winpe-drivers.cmd, which loads them in Windows PE from whatever letter the medium got. The answer
file is written from scratch for amd64 and arm64 (docs/windows.md says what each choice rests on).

No generated file names a fixed drive letter for media: WinPE letters the CD drives in arrival order, so
nothing guarantees which one is virtio-win or the answer ISO (tests/unit/test_windows_media.py scans them all).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest.provision import Step, provisions
from limapy.guest.windows import language as winlocale

LABEL = "autounattend"
FIRST_LOGON = "first_logon.ps1"
RESUME = "resume_first_logon.ps1"
WINPE_LOADER = "limapy-winpe-drivers.cmd"
OPENSSH_MSI = "OpenSSH.msi"
DONE_FILE = r"C:\ProgramData\Lima\lima-boot-done.txt"
WARNINGS_FILE = r"C:\ProgramData\Lima\limapy-warnings.txt"
PHASES_FILE = r"C:\ProgramData\Lima\limapy-phases.txt"
RUNNER = "provision/run-provision.ps1"
BOOT_RUNNER = "provision/limapy-boot.ps1"  # installed as BOOT_SCRIPT, run at every startup
BOOT_SCRIPT = r"C:\ProgramData\Lima\limapy-boot.ps1"
#: This boot's provisioning outcome (Provision: running, done or failed; Failure: what failed): a volatile key
#: under HKLM, which Windows drops at shutdown, as Linux's /run.
STATUS_KEY = r"SOFTWARE\limapy\boot"
STATUS_PATH = "HKLM:\\" + STATUS_KEY
#: A clone's identity medium (limapy.guest.windows.identity): its label and files.
IDENTITY_LABEL = "LIMAPY_ID"
IDENTITY_JSON = "identity.json"
UNATTEND_XML = "unattend.xml"
TIME_ZONE = "UTC"
#: The Remote Desktop firewall group, by its resource string (the same on every language of Windows).
RDP_FIREWALL_GROUP = "@FirewallAPI.dll,-28752"
DEFAULT_INDEX = {("x86_64", False): 6, ("aarch64", False): 3, ("x86_64", True): 1, ("aarch64", True): 1}
_WIN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ORDER = {"boot": 0, "dependency": 1, "data": 2, "system": 3, "user": 4}
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")

# The FirstLogonCommand: find the answer media by label (Get-Volume, then Win32_Volume), run the script.
FIRST_LOGON_COMMAND = (
    "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "
    '"$v = @(Get-Volume | Where-Object { $_.FileSystemLabel -ieq \'autounattend\' -and $_.DriveLetter })[0]; '
    "if ($v) { $d = [string]$v.DriveLetter + ':' } else { $d = @(Get-CimInstance Win32_Volume | "
    "Where-Object { $_.Label -ieq 'autounattend' -and $_.DriveLetter })[0].DriveLetter }; "
    "& (Join-Path ($d + '\\') 'first_logon.ps1')\""
)

# windowsPE RunSynchronous: find the answer medium by a file only it has (on any letter) and let it load its
# drivers; `%d` is cmd's loop variable, never a fixed letter.
WINPE_LOAD_COMMAND = (
    "cmd.exe /d /c for %d in (C D E F G H I J K L M N O P Q R S T U V W X Y Z) do "
    f"@if exist %d:\\{WINPE_LOADER} call %d:\\{WINPE_LOADER}"
)
_WINPE_LOADER_TEXT = """@echo off
rem limapy: load the virtio-win drivers of this answer medium into Windows PE. Setup loads its
rem $WinPEDriver$ folder itself; this is the fallback, run by the answer file's windowsPE RunSynchronous
rem from whichever drive letter the medium got (%~d0: this file's own drive).
for /r "%~d0\\$WinPEDriver$" %%f in (*.inf) do drvload.exe "%%f"
exit /b 0
"""

_SYMBOLS = "-_.,;:!#%+=@"  # no quotes, <, > or &: readable in any file format


def new_password(length: int = 20) -> str:
    """A random password that meets Windows' complexity rules (upper, lower, digit, symbol)."""
    if length < 16:
        raise ValueError("passwords are at least 16 characters")
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, _SYMBOLS]
    alphabet = "".join(classes)
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(c in cls for c in pw) for cls in classes):
            return pw


def write_password_file(path: str | os.PathLike[str], password: str) -> None:
    """Store the password 0600 (atomically); it is never printed or logged."""
    from limapy.base.fsutil import atomic_write

    atomic_write(Path(path), (password + "\n").encode(), 0o600)


def check_user_name(name: str) -> None:
    from limapy.guest.windows.rules import windows_user_problems

    problems = windows_user_problems(name)
    if problems:
        raise LimapyError(
            f"user.name {name!r} cannot be a Windows account name: " + "; ".join(problems),
            hint="set user.name in lima.yaml",
        )


def computer_name(name: str) -> str:
    """A NetBIOS-safe computer name (≤15 chars of [A-Za-z0-9-]) from the instance name."""
    cleaned = re.sub(r"[^A-Za-z0-9-]", "-", f"lima-{name}")[:15].strip("-")
    return cleaned if cleaned and not cleaned.isdigit() else "lima"


def _shell_kind(shell: str) -> str:
    base = shell.replace("\\", "/").rsplit("/", 1)[-1].lower().removesuffix(".exe")
    return base if base in ("pwsh", "powershell") else "cmd"


def _partitions(legacy_bios: bool) -> tuple[list[dict[str, object]], int]:
    """CreatePartition/ModifyPartition rows and the PartitionID Windows is installed to."""
    layout, install_to = _layout(legacy_bios)
    blank: dict[str, object] = {"size": None, "format": None, "label": None, "letter": None, "active": False}
    return [{**blank, **row} for row in layout], install_to


def _layout(legacy_bios: bool) -> tuple[list[dict[str, object]], int]:
    if legacy_bios:
        return [
            {"order": 1, "type": "Primary", "size": 500, "format": "NTFS", "label": "System", "active": True},
            {"order": 2, "type": "Primary", "format": "NTFS", "label": "Windows", "letter": "C"},
        ], 2
    return [
        {"order": 1, "type": "EFI", "size": 100, "format": "FAT32", "label": "System"},
        {"order": 2, "type": "MSR", "size": 16},
        {"order": 3, "type": "Primary", "format": "NTFS", "label": "Windows", "letter": "C"},
    ], 3


def _lab_config() -> list[str]:
    """Windows 11 Setup's hardware checks, bypassed whatever the TPM and the media (a firmware that does not
    expose the TPM must not end at "This PC can't run Windows 11"; Server's Setup ignores the keys)."""
    keys = ["BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck", "BypassCPUCheck", "BypassStorageCheck"]
    cmds = [f"reg.exe add HKLM\\SYSTEM\\Setup\\LabConfig /v {k} /t REG_DWORD /d 1 /f" for k in keys]
    mo_setup = "HKLM\\SYSTEM\\Setup\\MoSetup"
    cmds.append(f"reg.exe add {mo_setup} /v AllowUpgradesWithUnsupportedTPMOrCPU /t REG_DWORD /d 1 /f")
    return cmds


def _check_password(password: str, what: str) -> None:
    if not password or _CONTROL.search(password) or len(password) > 127:
        raise LimapyError(f"the {what} must be 1 to 127 characters without control characters")


def render_autounattend(
    spec: Spec,
    *,
    name: str,
    arch: str,
    password: str,
    image_index: int | None,
    image_name: str | None,
    is_server: bool,
    locale: winlocale.Locale = winlocale.DEFAULT,
    product_key: str | None = None,
    admin_password: str | None = None,
    winpe_drivers: bool = False,
) -> str:
    from limapy.guest.render import render
    from limapy.guest.windows import opts as winopts

    if arch not in _WIN_ARCH:
        raise LimapyError(f"Windows guests are x86_64 or aarch64, not {arch!r}")
    user = spec.user
    check_user_name(user.name)
    _check_password(password, "Windows password")
    if admin_password is not None:
        _check_password(admin_password, "Administrator password")
    if image_index is not None:
        if image_index < 1:
            raise LimapyError(f"the Windows image index must be a positive number, not {image_index}")
        image_key, image_value = "/IMAGE/INDEX", str(image_index)
    elif image_name:
        image_key, image_value = "/IMAGE/NAME", image_name
    else:
        image_key, image_value = "/IMAGE/INDEX", str(DEFAULT_INDEX[(arch, is_server)])
    partitions, install_partition = _partitions(spec.legacy_bios)
    comment = _CONTROL.sub("", user.comment) or user.name
    if product_key is not None and not winopts.PRODUCT_KEY_RE.fullmatch(product_key):
        raise LimapyError("osOpts.Windows.productKey is not a product key (XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)")
    return render(
        "windows/autounattend.xml",
        arch=_WIN_ARCH[arch],
        **locale.fields(),
        partitions=partitions,
        disk_id=0,
        install_partition=install_partition,
        image_key=image_key,
        image_value=image_value,
        run_synchronous=([WINPE_LOAD_COMMAND] if winpe_drivers else []) + _lab_config(),
        full_name=comment,
        computer_name=computer_name(name),
        password=password,
        admin_password=admin_password if is_server else None,
        user_name=user.name,
        first_logon_command=FIRST_LOGON_COMMAND,
        # QEMU's RTC runs in UTC (-rtc base=utc) and Windows reads the RTC as local time: only the UTC
        # zone makes the two agree (Windows' own time service then keeps the clock).
        time_zone=TIME_ZONE,
        product_key=product_key.upper() if product_key else None,
        rdp=spec.windows.rdp,
        rdp_group=RDP_FIREWALL_GROUP,
    )


def _provision_context(steps: list[Step], files: dict[str, bytes]) -> list[dict[str, object]]:
    out = []
    for p in sorted(steps, key=lambda p: (_ORDER[p.mode], p.index)):
        fname = f"{p.index:08d}"
        data = p.data
        if p.mode != "data" and not data.isascii():
            data = b"\xef\xbb\xbf" + data  # Windows PowerShell 5.1 needs the BOM to read UTF-8 scripts
        files[f"provision/{p.mode}/{fname}"] = data
        item: dict[str, object] = {"mode": p.mode, "file": f"provision\\{p.mode}\\{fname}"}
        if p.mode == "data":
            item.update(path=data_path(p.path, fname), overwrite=p.entry.overwrite, dest=f"data-{fname}")
        else:
            item["dest"] = f"{p.mode}-{fname}.ps1"
        out.append(item)
    return out


def data_path(path: str | None, fname: str) -> str:
    """Where a `data` file goes: a Windows path (`C:\\x` or `C:/x`, a limapy extension) as itself with
    backslashes; any other path where Lima 2.3 puts every Windows data file, whatever its `path`
    (C:\\ProgramData\\Lima\\provision\\provision.data\\%08d: its install_provision.ps1, and the
    comment in its templates/windows-11.yaml, "`path` is ignored")."""
    if path and _WINDOWS_PATH.match(path):
        return path.replace("/", "\\")
    return f"C:\\ProgramData\\Lima\\provision\\provision.data\\{fname}"


def build_answer_files(
    spec: Spec,
    *,
    name: str,
    arch: str,
    password: str,
    ssh_pubkeys: list[str],
    image_index: int | None,
    image_name: str | None,
    is_server: bool,
    locale: winlocale.Locale = winlocale.DEFAULT,
    opensshmsi: bytes | None = None,
    product_key: str | None = None,
    admin_password: str | None = None,
    winpe_drivers: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """The files of the answer ISO, by path inside it. `winpe_drivers` are limapy.guest.windows.virtiowin.read_drivers's
    `$WinPEDriver$/...` files."""
    from limapy.guest.render import render

    keys = [k.strip() for k in ssh_pubkeys if k.strip()]
    if not keys:
        raise LimapyError("no SSH public key to put into the guest", hint="limapy creates _config/user.pub")
    for k in keys:
        if not k.isascii() or "\n" in k or "\r" in k:
            raise LimapyError("SSH public keys must be single ASCII lines")
    drivers = dict(winpe_drivers or {})
    if any(not path.startswith("$WinPEDriver$/") for path in drivers):
        raise LimapyError("the answer media's drivers go under $WinPEDriver$/")
    user = spec.user
    home = f"C:\\Users\\{user.name}"
    files: dict[str, bytes] = {}
    files["autounattend.xml"] = render_autounattend(
        spec,
        name=name,
        arch=arch,
        password=password,
        image_index=image_index,
        image_name=image_name,
        is_server=is_server,
        locale=locale,
        product_key=product_key,
        admin_password=admin_password,
        winpe_drivers=bool(drivers),
    ).encode("utf-8")
    provs = provisions(spec, name, allowed=("boot", "system", "user", "dependency", "data"), home=home)
    msi = None
    if opensshmsi is not None:
        files[OPENSSH_MSI] = opensshmsi
        msi = {"name": OPENSSH_MSI, "sha256": hashlib.sha256(opensshmsi).hexdigest().upper()}
    context = _provision_context(provs, files)
    script = render(
        "windows/first_logon.ps1",
        msi=msi,
        shell=_shell_kind(user.shell),
        user_name=user.name,
        drivers=bool(drivers),
        provisions=context,
        modes={mode: any(p["mode"] == mode for p in context) for mode in ("boot", "dependency", "system", "user")},
        status_key=STATUS_KEY,
    )
    boot = render(
        "windows/boot.ps1",
        user_name=user.name,
        data=[p for p in context if p["mode"] == "data"],
        status_key=STATUS_KEY,
        status_path=STATUS_PATH,
        identity_label=IDENTITY_LABEL,
        identity_json=IDENTITY_JSON,
        unattend_xml=UNATTEND_XML,
    )
    runner = render("windows/run_provision.ps1", params=[(f"PARAM_{k}", v) for k, v in sorted(spec.param.items())])
    files[FIRST_LOGON] = _crlf_ascii(script)
    files[RESUME] = _crlf_ascii(render("windows/resume_first_logon.ps1"))
    files[RUNNER] = _crlf_ascii(runner)
    files[BOOT_RUNNER] = _crlf_ascii(boot)
    files["ssh_authorized_keys"] = ("\n".join(keys) + "\n").encode("ascii")
    if drivers:
        files.update(drivers)
        files[WINPE_LOADER] = _crlf_ascii(_WINPE_LOADER_TEXT)
    return files


def _crlf_ascii(script: str) -> bytes:
    """CRLF, and pure ASCII by construction (ps_quote); encode() would fail loudly otherwise."""
    return script.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def write_answer_iso(path: str | os.PathLike[str], spec: Spec, **answer: Any) -> None:
    """Build the answer files (build_answer_files's keywords) and write them atomically (0600) as a Joliet ISO
    labelled `autounattend`."""
    from limapy.base.iso import write_iso_file

    write_iso_file(path, build_answer_files(spec, **answer), LABEL, joliet=True, rock_ridge=False)
