"""The answer media that installs Windows unattended and ends with OpenSSH listening.

The ISO (Joliet, label `autounattend`) holds autounattend.xml at its root, first_logon.ps1 (run by the
only FirstLogonCommand, found by volume label rather than drive letter), ssh_authorized_keys,
provision/<mode>/%08d files, and the OpenSSH MSI when one is given. The answer file is written from
scratch for amd64 and arm64 (docs/windows.md says what each choice rests on).

Drive letter convention: with `virtio_win` the drivers are read from E:\\ (install ISO D:, virtio-win
E:, answer ISO F:, Lima's attach order); DriverPaths cannot search by label in WinPE.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import string
from pathlib import Path
from typing import Any

from limapy.cidata import Step, provisions
from limapy.config.model import Spec
from limapy.errors import LimapyError

LABEL = "autounattend"
FIRST_LOGON = "first_logon.ps1"
OPENSSH_MSI = "OpenSSH.msi"
DONE_FILE = r"C:\ProgramData\Lima\lima-boot-done.txt"
WARNINGS_FILE = r"C:\ProgramData\Lima\limapy-warnings.txt"
RUNNER = "provision/run-provision.ps1"
TIME_ZONE = "UTC"
#: The Remote Desktop firewall group, by its resource string (the same on every language of Windows).
RDP_FIREWALL_GROUP = "@FirewallAPI.dll,-28752"
VIRTIO_WIN_DRIVE = "E:"
VIRTIO_WIN_DRIVERS = ("viostor", "NetKVM")
DEFAULT_INDEX = {("x86_64", False): 6, ("aarch64", False): 3, ("x86_64", True): 1, ("aarch64", True): 1}
_WIN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_VIRTIO_ARCH = {"x86_64": "amd64", "aarch64": "ARM64"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ORDER = {"dependency": 0, "data": 1, "system": 2, "user": 3}

# The FirstLogonCommand: find the answer media by label (Get-Volume, then Win32_Volume), run the script.
FIRST_LOGON_COMMAND = (
    "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "
    '"$v = @(Get-Volume | Where-Object { $_.FileSystemLabel -ieq \'autounattend\' -and $_.DriveLetter })[0]; '
    "if ($v) { $d = [string]$v.DriveLetter + ':' } else { $d = @(Get-CimInstance Win32_Volume | "
    "Where-Object { $_.Label -ieq 'autounattend' -and $_.DriveLetter })[0].DriveLetter }; "
    "& (Join-Path ($d + '\\') 'first_logon.ps1')\""
)

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
    from limapy.fsutil import atomic_write

    atomic_write(Path(path), (password + "\n").encode(), 0o600)


def check_user_name(name: str) -> None:
    from limapy.config.validate_instance import windows_user_problems

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


def _partitions(legacy_bios: bool) -> tuple[list[dict[str, Any]], int]:
    """CreatePartition/ModifyPartition rows and the PartitionID Windows is installed to."""
    layout, install_to = _layout(legacy_bios)
    blank = {"size": None, "format": None, "label": None, "letter": None, "active": False}
    return [{**blank, **row} for row in layout], install_to


def _layout(legacy_bios: bool) -> tuple[list[dict[str, Any]], int]:
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


def _lab_config(is_server: bool, tpm: bool) -> list[str]:
    if is_server:
        return []
    keys = ["BypassSecureBootCheck", "BypassRAMCheck", "BypassCPUCheck", "BypassStorageCheck"]
    if not tpm:
        keys.insert(0, "BypassTPMCheck")
    cmds = [f"reg.exe add HKLM\\SYSTEM\\Setup\\LabConfig /v {k} /t REG_DWORD /d 1 /f" for k in keys]
    if not tpm:
        mo_setup = "HKLM\\SYSTEM\\Setup\\MoSetup"
        cmds.append(f"reg.exe add {mo_setup} /v AllowUpgradesWithUnsupportedTPMOrCPU /t REG_DWORD /d 1 /f")
    return cmds


def render_autounattend(
    spec: Spec,
    *,
    name: str,
    arch: str,
    password: str,
    image_index: int | None,
    image_name: str | None,
    is_server: bool,
    virtio_win: bool,
    product_key: str | None = None,
) -> str:
    from limapy.cidata.render import render
    from limapy.config import winopts

    if arch not in _WIN_ARCH:
        raise LimapyError(f"Windows guests are x86_64 or aarch64, not {arch!r}")
    user = spec.user
    check_user_name(user.name)
    if not password or _CONTROL.search(password) or len(password) > 127:
        raise LimapyError("the Windows password must be 1 to 127 characters without control characters")
    if image_index is not None:
        if image_index < 1:
            raise LimapyError(f"the Windows image index must be a positive number, not {image_index}")
        image_key, image_value = "/IMAGE/INDEX", str(image_index)
    elif image_name:
        image_key, image_value = "/IMAGE/NAME", image_name
    else:
        image_key, image_value = "/IMAGE/INDEX", str(DEFAULT_INDEX[(arch, is_server)])
    partitions, install_partition = _partitions(spec.legacy_bios)
    driver_paths = []
    if virtio_win:
        version = "2k25" if is_server else "w11"
        driver_paths = [
            f"{VIRTIO_WIN_DRIVE}\\{drv}\\{version}\\{_VIRTIO_ARCH[arch]}" for drv in VIRTIO_WIN_DRIVERS
        ]
    comment = _CONTROL.sub("", user.comment) or user.name
    if product_key is not None and not winopts.PRODUCT_KEY_RE.fullmatch(product_key):
        raise LimapyError("osOpts.Windows.productKey is not a product key (XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)")
    return render(
        "windows/autounattend.xml",
        arch=_WIN_ARCH[arch],
        driver_paths=driver_paths,
        locale="en-US",
        input_locale="0409:00000409",
        partitions=partitions,
        disk_id=0,
        install_partition=install_partition,
        image_key=image_key,
        image_value=image_value,
        lab_config=_lab_config(is_server, spec.tpm),
        full_name=comment,
        computer_name=computer_name(name),
        password=password,
        user_name=user.name,
        first_logon_command=FIRST_LOGON_COMMAND,
        # QEMU's RTC runs in UTC (-rtc base=utc) and Windows reads the RTC as local time: only the UTC
        # zone makes the two agree (Windows' own time service then keeps the clock).
        time_zone=TIME_ZONE,
        product_key=product_key.upper() if product_key else None,
        rdp=spec.windows.rdp,
        rdp_group=RDP_FIREWALL_GROUP,
    )


def _provision_context(steps: list[Step], files: dict[str, bytes]) -> list[dict[str, Any]]:
    out = []
    for p in sorted(steps, key=lambda p: (_ORDER[p.mode], p.index)):
        fname = f"{p.index:08d}"
        data = p.data
        if p.mode != "data" and not data.isascii():
            data = b"\xef\xbb\xbf" + data  # Windows PowerShell 5.1 needs the BOM to read UTF-8 scripts
        files[f"provision/{p.mode}/{fname}"] = data
        item: dict[str, Any] = {"mode": p.mode, "file": f"provision\\{p.mode}\\{fname}"}
        if p.mode == "data":
            path = p.path or ""
            if not re.match(r"^[A-Za-z]:\\", path):
                path = f"C:\\ProgramData\\Lima\\provision\\provision.data\\{fname}"
            item.update(path=path, overwrite=p.entry.overwrite)
        else:
            item["dest"] = f"{p.mode}-{fname}.ps1"
        out.append(item)
    return out


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
    virtio_win: bool,
    opensshmsi: bytes | None = None,
    product_key: str | None = None,
) -> dict[str, bytes]:
    """The files of the answer ISO, by path inside it."""
    from limapy.cidata.render import render

    keys = [k.strip() for k in ssh_pubkeys if k.strip()]
    if not keys:
        raise LimapyError("no SSH public key to put into the guest", hint="limapy creates _config/user.pub")
    for k in keys:
        if not k.isascii() or "\n" in k or "\r" in k:
            raise LimapyError("SSH public keys must be single ASCII lines")
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
        virtio_win=virtio_win,
        product_key=product_key,
    ).encode("utf-8")
    provs = provisions(spec, name, allowed=("system", "user", "dependency", "data"), home=home)
    msi = None
    if opensshmsi is not None:
        files[OPENSSH_MSI] = opensshmsi
        msi = {"name": OPENSSH_MSI, "sha256": hashlib.sha256(opensshmsi).hexdigest().upper()}
    context = _provision_context(provs, files)
    script = render(
        "windows/first_logon.ps1",
        msi=msi,
        shell=_shell_kind(user.shell),
        provisions=context,
        modes={mode: any(p["mode"] == mode for p in context) for mode in ("dependency", "system", "user")},
    )
    runner = render("windows/run_provision.ps1", params=[(f"PARAM_{k}", v) for k, v in sorted(spec.param.items())])
    files[FIRST_LOGON] = _crlf_ascii(script)
    files[RUNNER] = _crlf_ascii(runner)
    files["ssh_authorized_keys"] = ("\n".join(keys) + "\n").encode("ascii")
    return files


def _crlf_ascii(script: str) -> bytes:
    """CRLF, and pure ASCII by construction (ps_quote); encode() would fail loudly otherwise."""
    return script.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def write_answer_iso(
    path: str | os.PathLike[str],
    spec: Spec,
    *,
    name: str,
    arch: str,
    password: str,
    ssh_pubkeys: list[str],
    image_index: int | None,
    image_name: str | None,
    is_server: bool,
    virtio_win: bool,
    opensshmsi: bytes | None = None,
    product_key: str | None = None,
) -> None:
    """Build the answer files and write them atomically (0600) as a Joliet ISO labelled `autounattend`."""
    from limapy.iso import write_iso_file

    files = build_answer_files(
        spec,
        name=name,
        arch=arch,
        password=password,
        ssh_pubkeys=ssh_pubkeys,
        image_index=image_index,
        image_name=image_name,
        is_server=is_server,
        virtio_win=virtio_win,
        opensshmsi=opensshmsi,
        product_key=product_key,
    )
    write_iso_file(path, files, LABEL, joliet=True, rock_ridge=False)
