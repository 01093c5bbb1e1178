"""A Windows clone's own identity (issue 26, item 5): what `limapy clone [--generalize]` prepares on the host, the
medium its first boot carries, the sysprep answer file, and the guest step that applies them (limapy-boot.ps1).

Evidence for the guest side (checked against the vendors' documentation; a real Windows must confirm, see
docs/windows.md "Clones"): sysprep.exe /generalize /oobe /reboot /quiet /unattend:<file> (Microsoft, "Sysprep
Command-Line Options"); the unattend components Microsoft-Windows-PnpSysprep/PersistAllDeviceInstalls and
Microsoft-Windows-Security-SPP/SkipRearm in the generalize pass, Microsoft-Windows-Shell-Setup/ComputerName and
Microsoft-Windows-Deployment/RunSynchronous in specialize (run as SYSTEM, before OOBE), Shell-Setup's OOBE,
UserAccounts/AdministratorPassword, AutoLogon and FirstLogonCommands in oobeSystem (Microsoft's unattend reference);
Windows Setup replaces passwords in its cached copy (%WINDIR%\\Panther\\unattend.xml) with *SENSITIVE*DATA*DELETED*.
Win32-OpenSSH: `ssh-keygen -A` writes every missing host key under %ProgramData%\\ssh (its __PROGRAMDATA__\\ssh is
the /etc/ssh of the port), and sshd refuses host keys others can read (sshfileperm.c, check_secure_file_permission).
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pycdlib
import pytest

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest.boot import CD_SEED, CLONED, INSTALLED
from limapy.guest.windows import boot, identity, layout
from limapy.guest.windows.answer import BOOT_SCRIPT, IDENTITY_JSON, IDENTITY_LABEL, UNATTEND_XML
from limapy.instance import store
from tests import psgrammar
from tests.unit.test_cidata_windows import build, cfg

NS = {"u": "urn:schemas-microsoft-com:unattend"}
WINDOWS_YAML = b"os: Windows\narch: x86_64\nvmType: qemu\nuser: {name: alice}\nimages: [{location: /nonexistent.iso}]\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("LIMAPY_HOME", str(h))
    return h


def installed(name: str, *, server: bool = False) -> store.Instance:
    inst = store.create_instance_dir(name, {"lima.yaml": WINDOWS_YAML})
    store.atomic_write(inst.win_done_installation, b"", 0o600)
    store.atomic_write(inst.password_file, b"source-user-pw\n", 0o600)
    if server:
        store.atomic_write(inst.admin_password_file, b"source-admin-pw\n", 0o600)
    return inst


def clone(src: store.Instance, name: str, *, generalize: bool = False) -> tuple[store.Instance, list[str]]:
    from limapy.ops.clone import clone as do_clone

    said: list[str] = []
    return do_clone(src, name, generalize=generalize, say=said.append), said


def test_clone_gets_new_secrets_and_a_pending_identity(home: Path) -> None:
    src = installed("win", server=True)
    new, said = clone(src, "win2")
    user_pw = new.password_file.read_text().strip()
    admin_pw = new.admin_password_file.read_text().strip()
    assert user_pw not in ("", "source-user-pw") and admin_pw not in ("", "source-admin-pw", user_pw)
    assert src.password_file.read_text().strip() == "source-user-pw"  # the source keeps its own
    for path in (new.password_file, new.admin_password_file, identity.record_path(new)):
        assert path.stat().st_mode & 0o777 == 0o600, path
    record = json.loads(identity.record_path(new).read_text())
    assert record["computerName"] == "lima-win2" and record["generalize"] is False and len(record["id"]) == 32
    assert user_pw not in identity.record_path(new).read_text()  # the secrets stay in their own files
    assert said and not [line for line in said if user_pw in line or admin_pw in line]
    other, _ = clone(src, "win3")
    assert json.loads(identity.record_path(other).read_text())["id"] != record["id"]
    assert other.password_file.read_text() != new.password_file.read_text()


def test_clone_refuses_an_unfinished_install_before_copying(home: Path) -> None:
    src = installed("win")
    src.win_done_installation.unlink()
    with pytest.raises(LimapyError, match="has not finished installing Windows"):
        clone(src, "win2")
    assert not store.instance_dir("win2").exists()


def test_generalize_is_windows_only(home: Path) -> None:
    src = store.create_instance_dir("deb", {"lima.yaml": b"images: [{location: /nonexistent.img}]\n"})
    with pytest.raises(LimapyError, match="--generalize` is for Windows guests"):
        clone(src, "deb2", generalize=True)
    new, _ = clone(src, "deb3")  # a Linux clone is prepared by nothing (its seed's instance-id changes per boot)
    assert not identity.record_path(new).exists()


def _read_iso(path: Path) -> tuple[str, dict[str, bytes]]:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(path.read_bytes()))
    try:
        out = {}
        for name in (IDENTITY_JSON, UNATTEND_XML):
            buf = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(buf, joliet_path="/" + name)
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            out[name] = buf.getvalue()
        return iso.pvd.volume_identifier.decode().rstrip(), out
    finally:
        iso.close()


@pytest.mark.parametrize("generalize", [False, True])
def test_the_clones_first_boot_carries_its_identity_medium(home: Path, generalize: bool) -> None:
    from limapy import config

    new, _ = clone(installed("win", server=True), "win2", generalize=generalize)
    spec = config.instance_spec(new)
    files = layout.windows_files(new, spec)
    assert files.stage == CLONED
    devices = boot.devices(spec, files.stage)
    assert [cd.media for cd in devices.cds] == [CD_SEED] and devices.disk_bootindex == 0
    media = boot.media(new, spec, files)
    assert media is not None and media.path == new.cidata_iso
    boot.write_media(new, spec, media, ["ssh-ed25519 AAAA k"])
    assert new.cidata_iso.stat().st_mode & 0o777 == 0o600
    label, content = _read_iso(new.cidata_iso)
    assert label == IDENTITY_LABEL
    payload = json.loads(content[IDENTITY_JSON])
    assert payload["userPassword"] == new.password_file.read_text().strip()
    assert payload["adminPassword"] == new.admin_password_file.read_text().strip()
    assert payload["generalize"] is generalize and payload["computerName"] == "lima-win2"
    assert (UNATTEND_XML in content) is generalize
    # the first ready boot: the identity is the guest's, the record goes (the medium's file stays for a resume)
    boot_os = __import__("limapy.guest.windows", fromlist=["GUEST"]).GUEST
    boot_os.booted(new)
    assert not identity.record_path(new).exists() and new.cidata_iso.stat().st_mode & 0o777 == 0o600
    assert layout.windows_files(new, spec).stage == INSTALLED
    assert boot.devices(spec, INSTALLED).cds == ()
    assert boot.boot_timeout(new, emulated=True) is None  # the usual wait again


def test_a_generalizing_first_boot_may_take_longer(home: Path) -> None:
    src = installed("win")
    plain, _ = clone(src, "plain")
    general, _ = clone(src, "general", generalize=True)
    assert boot.boot_timeout(plain, emulated=False) is None
    assert boot.boot_timeout(general, emulated=False) == 30 * 60
    assert boot.boot_timeout(general, emulated=True) == 3 * 3600


def test_sysprep_answer_file() -> None:
    spec = Spec.from_cfg({**cfg(), "arch": "x86_64"})
    hostile = "p<&>\"'w]]>"
    root = ET.fromstring(identity.sysprep_unattend(spec, computer_name="lima-w2", password=hostile,
                                                   admin_password="a&b"))  # fmt: skip
    passes = [s.get("pass") for s in root.findall("u:settings", NS)]
    assert passes == ["generalize", "specialize", "oobeSystem"]
    gen = "u:settings[@pass='generalize']/u:component"
    assert root.findtext(f"{gen}[@name='Microsoft-Windows-PnpSysprep']/u:PersistAllDeviceInstalls", namespaces=NS) \
        == "true"
    assert root.findtext(f"{gen}[@name='Microsoft-Windows-Security-SPP']/u:SkipRearm", namespaces=NS) == "1"
    spz = "u:settings[@pass='specialize']/u:component"
    assert root.findtext(f"{spz}[@name='Microsoft-Windows-Shell-Setup']/u:ComputerName", namespaces=NS) == "lima-w2"
    run = root.findtext(f"{spz}[@name='Microsoft-Windows-Deployment']//u:Path", namespaces=NS)
    assert run is not None and f'-File "{BOOT_SCRIPT}" -IdentityOnly' in run
    oobe = "u:settings[@pass='oobeSystem']/u:component[@name='Microsoft-Windows-Shell-Setup']"
    assert root.findtext(f"{oobe}/u:AutoLogon/u:Username", namespaces=NS) == "alice"
    assert root.findtext(f"{oobe}/u:AutoLogon/u:Password/u:Value", namespaces=NS) == hostile  # escaped, round-trips
    assert root.findtext(f"{oobe}/u:UserAccounts/u:AdministratorPassword/u:Value", namespaces=NS) == "a&b"
    first_logon = root.findtext(f"{oobe}/u:FirstLogonCommands//u:CommandLine", namespaces=NS)
    assert first_logon == "schtasks.exe /Run /TN \\limapy\\boot"
    for comp in root.iter("{urn:schemas-microsoft-com:unattend}component"):
        assert comp.get("processorArchitecture") == "amd64" and comp.get("publicKeyToken") == "31bf3856ad364e35"
    # the guest fills the language fields by these XPaths (limapy-boot.ps1, Invoke-Sysprep)
    script = build(cfg())["provision/limapy-boot.ps1"].decode()
    sysprep = psgrammar.functions(script)["Invoke-Sysprep"]
    intl = "u:settings[@pass='oobeSystem']/u:component[@name='Microsoft-Windows-International-Core']/"
    assert f'$intl = "//{intl}"' in sysprep
    for tag in ("UILanguage", "SystemLocale", "UserLocale", "InputLocale"):
        assert root.find(f"{intl}u:{tag}", NS) is not None and f"'u:{tag}'" in sysprep
    assert "'/generalize', '/oobe', '/reboot', '/quiet', ('/unattend:' + $copy)" in sysprep
    # the copy with the passwords: SYSTEM and Administrators only, and removed once sysprep returns
    assert sysprep.index("/inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F'") < sysprep.index("$xml.Save")
    assert "Remove-Item -LiteralPath $copy" in sysprep


def test_the_guest_identity_step() -> None:
    script = build(cfg())["provision/limapy-boot.ps1"].decode()
    funcs = psgrammar.functions(script)
    step = funcs["Invoke-CloneIdentity"]
    assert f"$v.Label -ieq '{IDENTITY_LABEL}'" in funcs["Find-IdentityMedium"]
    # applied once: an identity the marker names is skipped, so the restart after Rename-Computer goes on
    assert step.index("if ($applied -eq $id) { return $false }") < step.index("Reset-SshHostKeys")
    plain = step[step.index("Reset-SshHostKeys") :]
    order = [plain.index(s) for s in ("Reset-SshHostKeys", "Set-Passwords $identity", "Register-UserTask",
                                      "Rename-Computer", "Set-Content -LiteralPath $IdentityFile -Value $id",
                                      "Restart-Computer -Force")]  # fmt: skip
    assert order == sorted(order)
    # the marker only once every step went through (a failed one runs again at the next start)
    assert plain.rindex("Set-Content -LiteralPath $IdentityFile -Value $id") > plain.index("Restart-Computer")
    # sysprep: the marker says "generalized" first, so the boot after OOBE finishes with the plain step
    general = step[step.index("if ($identity.generalize)") : step.index("Send-Line 'LIMAPY-PHASE identity")]
    assert general.index("($id + ' generalized')") < general.index("Invoke-Sysprep $root")
    assert "Set-Passwords $identity" in general[: general.index("Invoke-Sysprep")]  # -IdentityOnly: specialize
    keys = funcs["Reset-SshHostKeys"]
    assert "& $keygen -A" in keys and "/inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F'" in keys
    pw = funcs["Set-Passwords"]
    assert "ConvertTo-SecureString -String ([string]$Identity.userPassword) -AsPlainText -Force" in pw
    assert "S-1-5-21-*-500" in pw  # the built-in Administrator by its RID, on any language of Windows
    # nothing prints the identity (the transcript is the log)
    assert not [c for c in psgrammar.commands(script) if c in ("Write-Host", "Write-Output") and "$identity" in c]
    assert "Write-Host $identity" not in script and "$identity |" not in script
    # the boot is not called ready while the identity is being applied: a restart ends the script first
    main = psgrammar.main_block(script)
    assert main.index("if (Invoke-CloneIdentity)") < main.index("Set-BootStatus 'running'")


def test_a_failed_identity_step_stops_the_clone_and_keeps_it_pending() -> None:
    """The guest's `identity-failed` state reaches the host as an error (not ready, not degraded): the host agent
    stops the guest, `booted` is never called, so the record stays and the next start tries again."""
    from limapy.guest.windows import GUEST, agent

    script = build(cfg())["provision/limapy-boot.ps1"].decode()
    main = psgrammar.main_block(script)
    catch = main[main.index("'the clone identity: '") :]
    assert "Set-BootStatus 'identity-failed' $message" in catch and "LIMAPY-IDENTITY-FAILED " in catch
    assert "'identity-failed' { 'LIMAPY-IDENTITY-FAILED '" in agent.WINDOWS_PROBE

    class R:
        stdout = "LIMAPY-PHASE sshd: started\r\nLIMAPY-IDENTITY-FAILED the clone identity: ssh-keygen \x07 failed\r\n"
        stderr = ""
        exit_code = 2

    with pytest.raises(LimapyError, match="first boot failed: the clone identity: ssh-keygen   failed"):
        GUEST.probe_ready(R(), iid="", resume=False)
    R.stdout, R.exit_code = "", 0
    assert GUEST.probe_ready(R(), iid="", resume=False)
    R.exit_code = 1
    assert not GUEST.probe_ready(R(), iid="", resume=False)


@pytest.mark.parametrize("case", ["windows-x86_64-installed", "windows-aarch64-installed"])
def test_the_clones_first_boot_on_qemus_command_line(case: str) -> None:
    """Stage CLONED: the installed machine, plus one CD, the identity medium (the instance's cidata.iso) in the
    seed's place on the CD bus of the arch, the disk first."""
    from tests.unit.test_qemu_cmdline import CASES, MAC, after, build_argv, host

    cfg_, paths, _ = CASES[case]
    installed_argv = build_argv(cfg_, "inst", paths, host(cfg_["arch"]), ssh_port=60022, mac=MAC, stage=INSTALLED)
    argv = build_argv(cfg_, "inst", paths, host(cfg_["arch"]), ssh_port=60022, mac=MAC, stage=CLONED)
    drives = [d for d in after(argv, "-drive") if d not in after(installed_argv, "-drive")]
    assert len(drives) == 1 and f"file={paths.cidata}," in drives[0] and "id=cd2" in drives[0], drives
    assert "readonly=on" in drives[0] or "media=cdrom" in drives[0], drives
    assert not [a for a in argv if "id=cd0" in a or "id=cd1" in a]
    cd_dev = [d for d in after(argv, "-device") if "drive=cd2" in d]
    assert len(cd_dev) == 1 and "bootindex" not in cd_dev[0], cd_dev
    assert ("usb-storage" in cd_dev[0]) is (cfg_["arch"] == "aarch64"), cd_dev
