"""Issue 23's answer media facts: no fixed drive letter anywhere, the virtio-win drivers under `$WinPEDriver$`,
the hardware-check bypasses always, Server's Administrator password, the install image's language in every
language field, and an install.wim over 4 GiB read in place.

Evidence (docs/windows.md, "What the guest side relies on"): Microsoft KB 2686316 ($WinPEDriver$ is a feature of
Setup.exe, which loads it into Windows PE and the installed Windows), dockur/windows (virtio-win drivers in
`$WinPEDriver$`; language fields from the image), Microsoft's unattend reference (UserAccounts/
AdministratorPassword, InputLocale), "Default Input Profiles (Input Locales) in Windows".
"""

from __future__ import annotations

import io
import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import LimapyError
from limapy.guest.windows import language as winlocale
from limapy.guest.windows import virtiowin
from limapy.guest.windows.answer import FIRST_LOGON_COMMAND, RESUME, RUNNER, WINPE_LOADER
from limapy.guest.windows.edition import choose_image
from limapy.guest.windows.media import _Runs, inspect_iso, read_wim_xml
from tests.unit.test_cidata_windows import NS, build, cfg
from tests.winiso import (
    SERVER_EVAL_EDITIONS,
    SERVER_EVAL_LABEL,
    build_big_standin_iso,
    build_virtio_win_iso,
    image_xml,
    virtio_win_file,
    wim_bytes,
)

#: A drive letter other than the system drive C:, as a path (`E:\`, `F:/`): what WinPE gives media in arrival
#: order. cmd's loop variable (`%d:\`) is not one.
MEDIA_LETTER = re.compile(r"(?<![%\w$])[A-BD-Z]:[\\/]")
GENERATED = ("autounattend.xml", "first_logon.ps1", RESUME, RUNNER, WINPE_LOADER)
DRIVERS = {"$WinPEDriver$/NetKVM/netkvm.inf": b"; inf\r\n"}


# --------------------------------------------------------------------------- 2. no fixed drive letter


@pytest.mark.parametrize(
    ("arch", "server", "drivers", "msi"),
    list(itertools.product(["x86_64", "aarch64"], [False, True], [False, True], [None, b"MSI"])),
)
def test_no_generated_file_names_a_fixed_drive_letter_for_media(
    arch: str, server: bool, drivers: bool, msi: bytes | None
) -> None:
    provision = [{"mode": m, "script": "Write-Host x"} for m in ("dependency", "system", "user")]
    provision.append({"mode": "data", "path": "/etc/x", "content": "x"})
    files = build(cfg(provision=provision, param={"P": "v"}), arch=arch, is_server=server, opensshmsi=msi,
                  winpe_drivers=DRIVERS if drivers else None, admin_password="Adm1n-Passw0rd.x" if server else None)
    scanned = [name for name in GENERATED if name in files]
    assert {"autounattend.xml", "first_logon.ps1", RESUME, RUNNER} <= set(scanned)
    assert (WINPE_LOADER in scanned) is drivers
    for name in scanned:
        text = files[name].decode("ascii")
        assert not MEDIA_LETTER.search(text), (name, MEDIA_LETTER.search(text))
    root = ET.fromstring(files["autounattend.xml"])
    assert [e.text for e in root.iter("{urn:schemas-microsoft-com:unattend}Letter")] == ["C"]  # the new system
    assert root.find(".//u:PathAndCredentials", NS) is None  # no DriverPaths: they would need a letter
    assert not MEDIA_LETTER.search(FIRST_LOGON_COMMAND)


def test_the_scan_catches_a_letter() -> None:
    """The pattern the scan uses finds what the old answer file had (`E:\\NetKVM\\w11\\ARM64`)."""
    assert MEDIA_LETTER.search("<Path>E:\\NetKVM\\w11\\ARM64</Path>")
    assert MEDIA_LETTER.search("& 'F:/first_logon.ps1'")
    assert not MEDIA_LETTER.search("C:\\ProgramData\\Lima") and not MEDIA_LETTER.search("call %d:\\x.cmd")


# --------------------------------------------------------------------------- 2. $WinPEDriver$ from virtio-win


@pytest.fixture(scope="module")
def virtio_win_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_virtio_win_iso(tmp_path_factory.mktemp("vw") / "virtio-win.iso")


@pytest.mark.parametrize(
    ("arch", "virtio_disk", "server", "want"),
    [
        ("aarch64", False, False, [("NetKVM", "w11", "ARM64")]),  # the disk is NVMe: NetKVM only
        ("x86_64", True, False, [("viostor", "w11", "amd64"), ("NetKVM", "w11", "amd64")]),
        ("x86_64", True, True, [("viostor", "2k25", "amd64"), ("NetKVM", "2k25", "amd64")]),
    ],
)
def test_drivers_come_from_the_virtio_win_iso(
    virtio_win_iso: Path, arch: str, virtio_disk: bool, server: bool, want: list[tuple[str, str, str]]
) -> None:
    files = virtiowin.read_drivers(
        virtio_win_iso, virtiowin.drivers_for(virtio_disk=virtio_disk), version=virtiowin.version_dir(server),
        arch=arch,
    )  # fmt: skip
    expected = {
        f"$WinPEDriver$/{driver}/{driver.lower()}.{ext}": virtio_win_file(driver, version, a, f"{driver.lower()}.{ext}")
        for driver, version, a in want
        for ext in ("inf", "cat", "sys")  # not the .pdb debug symbols
    }
    assert files == expected


def test_a_virtio_win_iso_without_the_folder_is_refused(tmp_path: Path) -> None:
    from tests.winiso import build_iso

    iso = build_iso(tmp_path / "old.iso", label="virtio-win", files={"NetKVM/w10/ARM64/netkvm.inf": b"x"},
                    trees=("joliet", "iso"))  # fmt: skip
    with pytest.raises(LimapyError, match=r"no NetKVM/w11/ARM64 folder"):
        virtiowin.read_drivers(iso, ("NetKVM",), version="w11", arch="aarch64")


def test_the_answer_iso_carries_them_and_a_letterless_fallback(virtio_win_iso: Path) -> None:
    drivers = virtiowin.read_drivers(virtio_win_iso, ("NetKVM",), version="w11", arch="aarch64")
    files = build(arch="aarch64", winpe_drivers=drivers)
    assert {k: v for k, v in files.items() if k.startswith("$WinPEDriver$/")} == drivers
    loader = files[WINPE_LOADER].decode("ascii")
    assert 'for /r "%~d0\\$WinPEDriver$" %%f in (*.inf) do drvload.exe "%%f"' in loader and "\r\n" in loader
    root = ET.fromstring(files["autounattend.xml"])
    first = root.findtext(".//u:RunSynchronousCommand/u:Path", namespaces=NS) or ""
    assert f"if exist %d:\\{WINPE_LOADER} call %d:\\{WINPE_LOADER}" in first and len(first) <= 259
    # The first logon installs them into the running Windows too (if Setup had not).
    assert "pnputil.exe /add-driver (Join-Path $Media '$WinPEDriver$\\*.inf') /subdirs /install" in (
        files["first_logon.ps1"].decode()
    )


# --------------------------------------------------------------------------- 4. LabConfig always


@pytest.mark.parametrize(("tpm", "server"), list(itertools.product([False, True], [False, True])))
def test_hardware_check_bypasses_always(tpm: bool, server: bool) -> None:
    root = ET.fromstring(build(cfg(tpm=tpm), is_server=server)["autounattend.xml"])
    commands = [c.text or "" for c in root.findall(".//u:RunSynchronousCommand/u:Path", NS)]
    for key in ("BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck", "BypassCPUCheck", "BypassStorageCheck"):
        assert f"reg.exe add HKLM\\SYSTEM\\Setup\\LabConfig /v {key} /t REG_DWORD /d 1 /f" in commands, key


# --------------------------------------------------------------------------- 5. Server's Administrator password


def test_server_sets_the_administrator_password_and_nowhere_else() -> None:
    admin = "Adm1n-Passw0rd.Server"
    files = build(is_server=True, admin_password=admin)
    root = ET.fromstring(files["autounattend.xml"])
    accounts = root.find(".//u:settings[@pass='oobeSystem']//u:UserAccounts", NS)
    assert accounts is not None
    assert accounts.findtext("u:AdministratorPassword/u:Value", namespaces=NS) == admin
    assert accounts.findtext("u:AdministratorPassword/u:PlainText", namespaces=NS) == "true"
    assert not [n for n, d in files.items() if n != "autounattend.xml" and admin.encode() in d]
    client = build(is_server=False, admin_password=admin)["autounattend.xml"]
    assert b"AdministratorPassword" not in client and admin.encode() not in client
    with pytest.raises(LimapyError, match="Administrator password"):
        build(is_server=True, admin_password="bad\nline")


# --------------------------------------------------------------------------- 6. any install language


LANGUAGE_FIELDS = ("SetupUILanguage/u:UILanguage", "UILanguage", "SystemLocale", "UserLocale")


def language_fields(xml: bytes) -> dict[str, list[str]]:
    root = ET.fromstring(xml)
    out: dict[str, list[str]] = {}
    for comp in root.iter("{urn:schemas-microsoft-com:unattend}component"):
        if comp.get("name", "").startswith("Microsoft-Windows-International-Core"):
            for field in (*LANGUAGE_FIELDS, "InputLocale"):
                value = comp.findtext(f"u:{field}", namespaces=NS)
                if value is not None:
                    out.setdefault(field, []).append(value)
    return out


def test_german_image_german_fields() -> None:
    locale = winlocale.choose(("de-DE",), label="CCCOMA_X64FRE_DE-DE_DV9")
    assert locale == winlocale.Locale("de-DE", "de-DE", "0407:00000407")
    fields = language_fields(build(locale=locale)["autounattend.xml"])
    assert fields["SetupUILanguage/u:UILanguage"] == ["de-DE"]
    for field in LANGUAGE_FIELDS[1:]:
        assert fields[field] == ["de-DE"] * 3, field  # windowsPE, specialize, oobeSystem
    assert fields["InputLocale"] == ["0407:00000407"] * 3


@pytest.mark.parametrize(
    ("languages", "label", "override", "want"),
    [
        (("ja-JP",), "", None, ("ja-JP", "ja-JP", winlocale.DEFAULT_INPUT_PROFILES["ja-JP"])),
        (("en-GB",), "", None, ("en-GB", "en-GB", "0809:00000809")),
        (("de-DE",), "", "de-CH", ("de-DE", "de-CH", "0807:00000807")),  # a Swiss keyboard on a German image
        (("en-US", "fr-FR"), "", "fr-fr", ("fr-FR", "fr-FR", "040c:0000040c")),  # a language the image has
        ((), "CCCOMA_A64FRE_PT-BR_DV9", None, ("pt-BR", "pt-BR", "0416:00000416")),  # list unreadable: the label
        ((), "", "en-US", ("en-US", "en-US", "0409:00000409")),
    ],
)
def test_language_choice(languages: tuple[str, ...], label: str, override: str | None, want: tuple[str, ...]) -> None:
    assert winlocale.choose(languages, label=label, override=override) == winlocale.Locale(*want)


def test_no_usable_language_is_refused() -> None:
    with pytest.raises(LimapyError, match="names no language") as e:
        winlocale.choose((), label="MY_OWN_ISO")
    assert e.value.hint and "osOpts.Windows.locale" in e.value.hint
    with pytest.raises(LimapyError, match="no keyboard limapy knows"):
        winlocale.choose(("xx-YY",))
    with pytest.raises(LimapyError, match="not a Windows language/region tag"):
        winlocale.choose(("en-US",), override="klingon")


def test_the_table_is_microsofts() -> None:
    """Spot checks against "Default Input Profiles (Input Locales) in Windows" (its primary profiles)."""
    table = winlocale.DEFAULT_INPUT_PROFILES
    assert table["en-US"] == "0409:00000409" and table["de-DE"] == "0407:00000407"
    assert table["fr-CA"] == "0c0c:00011009" and table["nl-NL"] == "0413:00020409"
    assert table["ko-KR"] == "0412:{A028AE76-01B1-46C2-99C4-ACD9858AE02F}{B5FE1F02-D5F2-4445-9C03-C568F23C99A1}"
    assert all(re.fullmatch(r"[0-9a-fA-F]{4}:(?:[0-9a-fA-F]{8}|\{[0-9A-Fa-f-]{36}\}\{[0-9A-Fa-f-]{36}\})", v)
               for v in table.values())  # fmt: skip


# --------------------------------------------------------------------------- 7. real-sized install.wim


@pytest.mark.parametrize("udf_only", [False, True], ids=["multi-extent", "udf-only"])
def test_an_install_wim_over_4_gib_picks_the_right_image(tmp_path: Path, udf_only: bool) -> None:
    iso = build_big_standin_iso(tmp_path / "server.iso", editions=SERVER_EVAL_EDITIONS, label=SERVER_EVAL_LABEL,
                                udf_only=udf_only)  # fmt: skip
    assert iso.stat().st_size > 4 << 30 and iso.stat().st_blocks * 512 < 16 << 20  # sparse
    info = inspect_iso(iso)
    assert [img.name for img in info.images] == SERVER_EVAL_EDITIONS and info.is_server
    index, name, _ = choose_image(info, arch="x86_64", edition=None, image_index=None)
    assert (index, name) == (2, "Windows Server 2025 Standard Evaluation (Desktop Experience)")  # not Lima's 1


def test_runs_are_read_in_file_order_wherever_they_lie() -> None:
    """A file's runs need not be contiguous (UDF allocation descriptors, ISO 9660 extents): each is read where
    it lies, the file's bytes in order."""
    wim = wim_bytes(image_xml(["Windows 11 Pro"], "x86_64"), filler=10_000)
    cut1, cut2 = 3000, 9000
    pieces = [wim[:cut1], wim[cut1:cut2], wim[cut2:]]
    disk = io.BytesIO()
    runs: list[tuple[int, int]] = []
    for offset, piece in zip((50_000, 2048, 20_000), pieces, strict=True):  # out of order on the "disk"
        disk.seek(offset)
        disk.write(piece)
        runs.append((offset, len(piece)))
    reader: Any = _Runs(disk, runs)
    assert reader.length() == len(wim)
    assert read_wim_xml(reader, reader.length()) == wim[208 + 10_000 :]
    reader.seek(cut1 - 5)
    assert reader.read(10) == wim[cut1 - 5 : cut1 + 5]


def test_setup_does_not_look_for_updates() -> None:
    """Issue 23, item 10: Setup's online update check (DynamicUpdate) is off; offline it only waits."""
    root = ET.fromstring(build()["autounattend.xml"])
    setup = root.find("u:settings[@pass='windowsPE']/u:component[@name='Microsoft-Windows-Setup']", NS)
    assert setup is not None
    assert setup.findtext("u:DynamicUpdate/u:Enable", namespaces=NS) == "false"
    assert setup.findtext("u:DynamicUpdate/u:WillShowUI", namespaces=NS) == "Never"
