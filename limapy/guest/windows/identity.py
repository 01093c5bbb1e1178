"""A Windows clone's own identity (`limapy clone`, `limapy clone --generalize`).

A copy of an installed Windows disk is the same machine: its computer name, SSH host keys, passwords and machine
SID. `clone` (limapy.ops.clone) asks the guest OS to prepare the copy (`prepare`): new passwords (0600 in the
clone's directory, never printed) and a pending identity record, `win-clone-identity.json` (0600), with a random
id, the computer name and whether to generalize. At the clone's first boot the instance is at stage CLONED
(limapy.guest.boot): its seed slot carries a small ISO labelled LIMAPY_ID (identity.json with the passwords, and
for `--generalize` a sysprep answer file), written 0600 like the answer ISO; the startup task \\limapy\\boot
(limapy-boot.ps1, installed by the first logon) finds it by label and applies it before this boot's provisioning,
and the host calls the boot ready only once that has run (the probe waits for the boot's provisioning status). The
first ready boot drops the record (`booted`), so later boots attach nothing.

Plain clone: new SSH host keys (ssh-keygen -A in the guest), the user's and Administrator's passwords, the computer
name (Rename-Computer, then one restart). `--generalize`: sysprep /generalize /oobe /reboot with the answer file
below (a new machine SID, so N clones can join one Active Directory domain or report to WSUS as N machines); Setup's
specialize pass sets the computer name and the passwords, and the same plain-clone step then makes new host keys.
"""

from __future__ import annotations

import json
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest import Say
from limapy.instance import store

RECORD = "win-clone-identity.json"
_NS = "urn:schemas-microsoft-com:unattend"
_WCM = "http://schemas.microsoft.com/WMIConfig/2002/State"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def record_path(inst: store.Instance) -> Path:
    return inst.dir / RECORD


def pending(inst: store.Instance) -> dict[str, object] | None:
    """The identity the clone's next boot applies, or None."""
    try:
        data = json.loads(record_path(inst).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise LimapyError(f"{record_path(inst)} is unreadable: {e}", hint="delete it to boot the clone as it is") from e
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise LimapyError(f"{record_path(inst)} is not a clone identity record", hint="delete it")
    return data


def prepare(src: store.Instance, new: store.Instance, spec: Spec, *, generalize: bool, say: Say) -> None:
    from limapy.guest.windows.answer import computer_name, new_password, write_password_file

    if not src.win_done_installation.exists():
        raise LimapyError(
            f"`{src.name}` has not finished installing Windows: only an installed Windows can be cloned",
            hint=f"`limapy start {src.name}` until it is ready, `limapy stop {src.name}`, then clone it",
        )
    write_password_file(new.password_file, new_password())
    if src.admin_password_file.exists():  # Windows Server's Administrator (client Windows keeps it disabled)
        write_password_file(new.admin_password_file, new_password())
    record = {"id": secrets.token_hex(16), "computerName": computer_name(new.name), "generalize": generalize}
    store.atomic_write(record_path(new), (json.dumps(record) + "\n").encode(), 0o600)
    if generalize:
        say("the clone is generalized at its first boot (sysprep /generalize /oobe: a new machine SID, computer "
            f"name {record['computerName']}, new passwords and SSH host keys); that boot restarts it once")  # fmt: skip
    else:
        say(f"the clone gets its own computer name ({record['computerName']}), passwords and SSH host keys at its "
            "first boot (one restart)")  # fmt: skip


def media_files(inst: store.Instance, spec: Spec) -> dict[str, bytes]:
    """The identity medium's files (label answer.IDENTITY_LABEL), with the clone's passwords."""
    from limapy.guest.windows.answer import IDENTITY_JSON, UNATTEND_XML

    record = pending(inst)
    if record is None:
        raise LimapyError(f"`{inst.name}` has no pending clone identity")
    user_pw = inst.password_file.read_text().strip()
    admin_pw = inst.admin_password_file.read_text().strip() if inst.admin_password_file.exists() else ""
    payload = {**record, "userPassword": user_pw, "adminPassword": admin_pw}
    files = {IDENTITY_JSON: (json.dumps(payload) + "\n").encode("utf-8")}
    if record.get("generalize"):
        files[UNATTEND_XML] = sysprep_unattend(
            spec, computer_name=str(record["computerName"]), password=user_pw, admin_password=admin_pw or None
        )
    return files


def write_medium(inst: store.Instance, spec: Spec, path: Path) -> None:
    from limapy.base.iso import write_iso_file
    from limapy.guest.windows.answer import IDENTITY_LABEL

    write_iso_file(path, media_files(inst, spec), IDENTITY_LABEL, joliet=True, rock_ridge=False)


def applied(inst: store.Instance) -> None:
    """The clone's first ready boot: the identity is the guest's now, the next boot attaches no medium. The
    medium's file stays (0600, the secrets of the 0600 password files beside it): this boot, suspended, resumes
    with the very machine it was, its CD included."""
    record_path(inst).unlink(missing_ok=True)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, f"{{{_NS}}}{tag}", attrs)
    if text is not None:
        e.text = text
    return e


def _component(settings: ET.Element, name: str, arch: str) -> ET.Element:
    return _el(settings, "component", name=name, processorArchitecture=arch, publicKeyToken="31bf3856ad364e35",
               language="neutral", versionScope="nonSxS")  # fmt: skip


def _password(parent: ET.Element, tag: str, value: str) -> None:
    pw = _el(parent, tag)
    _el(pw, "Value", value)
    _el(pw, "PlainText", "true")


def sysprep_unattend(spec: Spec, *, computer_name: str, password: str, admin_password: str | None) -> bytes:
    """The answer file sysprep /generalize /oobe runs with (Microsoft's unattend schema, components of
    Windows' own: PnpSysprep, Security-SPP, Shell-Setup, Deployment, International-Core). Built with ElementTree,
    so every value is escaped. The International-Core values are placeholders the guest fills from the running
    system before sysprep (limapy-boot.ps1), so OOBE asks nothing."""
    from limapy.guest.windows.answer import BOOT_SCRIPT, TIME_ZONE, check_user_name

    user = spec.user.name
    check_user_name(user)
    arch = _ARCH[spec.arch]
    ET.register_namespace("", _NS)
    ET.register_namespace("wcm", _WCM)
    root = ET.Element(f"{{{_NS}}}unattend")
    gen = _el(root, "settings", **{"pass": "generalize"})
    # Keep the drivers the machine runs on (virtio-win's among them) through /generalize.
    _el(_component(gen, "Microsoft-Windows-PnpSysprep", arch), "PersistAllDeviceInstalls", "true")
    # Do not reset the activation grace period: a clone is not a new deployment's master image.
    _el(_component(gen, "Microsoft-Windows-Security-SPP", arch), "SkipRearm", "1")
    spz = _el(root, "settings", **{"pass": "specialize"})
    shell = _component(spz, "Microsoft-Windows-Shell-Setup", arch)
    _el(shell, "ComputerName", computer_name)
    _el(shell, "TimeZone", TIME_ZONE)
    deploy = _component(spz, "Microsoft-Windows-Deployment", arch)
    cmd = _el(_el(deploy, "RunSynchronous"), "RunSynchronousCommand", **{f"{{{_WCM}}}action": "add"})
    _el(cmd, "Order", "1")
    _el(cmd, "Description", "limapy: the clone's passwords, before the first logon")
    _el(cmd, "Path", f'powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{BOOT_SCRIPT}" '
                     "-IdentityOnly")  # fmt: skip
    oobe_pass = _el(root, "settings", **{"pass": "oobeSystem"})
    intl = _component(oobe_pass, "Microsoft-Windows-International-Core", arch)
    for tag in ("InputLocale", "SystemLocale", "UILanguage", "UserLocale"):
        _el(intl, tag, "en-US")  # filled in the guest
    shell = _component(oobe_pass, "Microsoft-Windows-Shell-Setup", arch)
    oobe = _el(shell, "OOBE")
    for tag in ("HideEULAPage", "HideLocalAccountScreen", "HideOEMRegistrationScreen", "HideOnlineAccountScreens",
                "HideWirelessSetupInOOBE"):  # fmt: skip
        _el(oobe, tag, "true")
    _el(oobe, "ProtectYourPC", "3")
    if admin_password:
        _password(_el(shell, "UserAccounts"), "AdministratorPassword", admin_password)
    logon = _el(shell, "AutoLogon")
    _el(logon, "Enabled", "true")
    _el(logon, "LogonCount", "1")
    _el(logon, "Username", user)
    _password(logon, "Password", password)
    first = _el(_el(shell, "FirstLogonCommands"), "SynchronousCommand", **{f"{{{_WCM}}}action": "add"})
    _el(first, "Order", "1")
    _el(first, "Description", "limapy: this boot's identity step and provisioning")
    _el(first, "CommandLine", "schtasks.exe /Run /TN \\limapy\\boot")
    _el(shell, "TimeZone", TIME_ZONE)
    ET.indent(root, "  ")
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
