"""Install-media inspection: WIM image lists read from stand-in ISOs, edition choice, missing ISOs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limapy.base.errors import LimapyError
from limapy.guest.windows.edition import choose_image
from limapy.guest.windows.media import (
    LIMA_INDEX_CLIENT,
    MAX_XML_BYTES,
    InstallMediaError,
    MediaInfo,
    WimImage,
    WimMetadataError,
    inspect_iso,
    inspect_iso_lenient,
    parse_wim_xml,
    read_wim_xml,
    require_iso,
)
from tests.winiso import (
    ARM64_EDITIONS,
    X64_EDITIONS,
    build_standin_iso,
    image_xml,
    wim_bytes,
)


def _choose(info: MediaInfo | None, arch: str, edition: str | None = None, index: int | None = None):
    return choose_image(info, arch=arch, edition=edition, image_index=index)


@pytest.mark.parametrize(
    ("arch", "label", "pro_index"),
    [("x86_64", "CCCOMA_X64FRE_EN-US_DV9", 2), ("aarch64", "CCCOMA_A64FRE_EN-US_DV9", 5)],
)
def test_default_is_pro_for_the_isos_arch(tmp_path: Path, arch: str, label: str, pro_index: int) -> None:
    iso = build_standin_iso(tmp_path / "win.iso", arch=arch)
    info = inspect_iso(iso)
    assert info.volume_label == label
    assert info.arch == arch
    assert not info.is_server
    assert info.path == iso
    names = ARM64_EDITIONS if arch == "aarch64" else X64_EDITIONS
    assert [img.name for img in info.images] == names
    assert all(img.arch == arch and img.languages == ("en-US",) for img in info.images)
    # Lima's fixed index would install something else on this medium.
    assert info.images[LIMA_INDEX_CLIENT[arch] - 1].name != "Windows 11 Pro"
    assert _choose(info, arch) == (pro_index, "Windows 11 Pro", [])


def test_edition_by_name_case_insensitive_then_edition_id(tmp_path: Path) -> None:
    info = inspect_iso(build_standin_iso(tmp_path / "win.iso", arch="x86_64"))
    assert _choose(info, "x86_64", "windows 11 EDUCATION")[:2] == (4, "Windows 11 Education")
    assert _choose(info, "x86_64", "ProfessionalEducation")[:2] == (6, "Windows 11 Pro Education")
    assert _choose(info, "x86_64", "Professional")[:2] == (2, "Windows 11 Pro")


def test_unknown_edition_lists_the_available_ones(tmp_path: Path) -> None:
    info = inspect_iso(build_standin_iso(tmp_path / "win.iso", arch="aarch64"))
    with pytest.raises(LimapyError) as exc:
        _choose(info, "aarch64", "Windows 11 Enterprise")
    msg = exc.value.message
    assert "'Windows 11 Enterprise'" in msg and str(tmp_path / "win.iso") in msg
    for index, name in enumerate(ARM64_EDITIONS, start=1):
        assert f"{index}: {name}" in msg


@pytest.mark.parametrize(
    ("iso_arch", "instance", "ms"), [("aarch64", "x86_64", "arm64"), ("x86_64", "aarch64", "x64")]
)
def test_iso_for_the_other_arch_is_refused(tmp_path: Path, iso_arch: str, instance: str, ms: str) -> None:
    iso = build_standin_iso(tmp_path / "win.iso", arch=iso_arch)
    info = inspect_iso(iso)
    with pytest.raises(LimapyError) as exc:
        _choose(info, instance)
    assert exc.value.message == f"{iso} is an {ms} ISO but the instance arch is {instance}"


def test_arch_refused_from_label_when_image_list_unreadable(tmp_path: Path) -> None:
    iso = build_standin_iso(tmp_path / "win.iso", arch="aarch64", wim=wim_bytes(None))
    info, warnings = inspect_iso_lenient(iso)
    assert info is not None and info.images == () and info.arch == "aarch64"
    assert warnings and "no XML image list" in warnings[0]
    with pytest.raises(LimapyError, match="is an arm64 ISO but the instance arch is x86_64"):
        _choose(info, "x86_64")


def test_esd_is_found(tmp_path: Path) -> None:
    iso = build_standin_iso(tmp_path / "win.iso", arch="x86_64", wim_name="install.esd")
    assert _choose(inspect_iso(iso), "x86_64")[:2] == (2, "Windows 11 Pro")


@pytest.mark.parametrize("trees", [("udf",), ("joliet", "iso"), ("iso",)])
def test_each_directory_tree_is_read(tmp_path: Path, trees: tuple[str, ...]) -> None:
    # ("udf",) is Microsoft's layout: the ISO 9660 side holds only a README stub.
    iso = build_standin_iso(tmp_path / "win.iso", arch="aarch64", trees=trees)
    info = inspect_iso(iso)
    assert info.volume_label == "CCCOMA_A64FRE_EN-US_DV9"
    assert len(info.images) == len(ARM64_EDITIONS)


@pytest.mark.parametrize(
    ("wim", "reason"),
    [
        (wim_bytes(None), "no XML image list"),
        (wim_bytes(b"\xff\xfe" + "<WIM><IMAGE INDEX=".encode("utf-16-le")), "not well-formed"),
        (wim_bytes(b"\x00\xd8\x00\xd8garbage"), "not valid UTF-16"),
        (wim_bytes(image_xml(["Windows 11 Pro"], "x86_64"), xml_flags=0x06), "compressed"),
        (b"not a wim at all" * 20, "no MSWIM header"),
    ],
)
def test_unreadable_image_list_falls_back_to_limas_index(tmp_path: Path, wim: bytes, reason: str) -> None:
    iso = build_standin_iso(tmp_path / "win.iso", arch="x86_64", wim=wim)
    with pytest.raises(WimMetadataError, match=reason) as exc:
        inspect_iso(iso)
    assert exc.value.partial is not None
    assert exc.value.partial.volume_label == "CCCOMA_X64FRE_EN-US_DV9"
    info, warnings = inspect_iso_lenient(iso)
    assert len(warnings) == 1 and reason in warnings[0]
    index, name, more = _choose(info, "x86_64")
    assert (index, name) == (6, None)
    assert len(more) == 1 and "image index 6" in more[0] and "imageIndex" in more[0]


def test_fallback_indexes_without_any_information() -> None:
    assert _choose(None, "x86_64")[:2] == (6, None)
    assert _choose(None, "aarch64")[:2] == (3, None)
    server = MediaInfo(volume_label="SSS_X64FREE_EN-US_DV9", images=(), is_server=True, arch="x86_64")
    index, _, warnings = _choose(server, "x86_64")
    assert index == 1 and "server media" in warnings[0]


def test_edition_requested_but_list_unreadable_is_an_error() -> None:
    with pytest.raises(LimapyError, match="cannot select edition") as exc:
        _choose(None, "x86_64", "Windows 11 Pro")
    assert exc.value.hint is not None and "imageIndex" in exc.value.hint


def test_missing_install_wim_is_a_metadata_error(tmp_path: Path) -> None:
    from tests.winiso import build_iso

    iso = build_iso(tmp_path / "other.iso", label="CCCOMA_X64FRE_EN-US_DV9", files={"setup.exe": b"MZ"})
    with pytest.raises(WimMetadataError, match=r"no sources/install\.wim"):
        inspect_iso(iso)


def test_not_an_iso_is_a_hard_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"\x00" * 70000)
    with pytest.raises(InstallMediaError) as exc:
        inspect_iso(junk)
    assert not isinstance(exc.value, WimMetadataError)
    assert "is not a readable ISO image" in exc.value.message


@pytest.mark.parametrize(
    ("label", "server"),
    [("SSS_X64FREE_EN-US_DV9", True), ("CCCOMA_X64FRE_EN-US_DV9", False), ("CCSA_X64FRE_EN-US_DV5", False)],
)
def test_server_from_label_when_the_xml_does_not_say(tmp_path: Path, label: str, server: bool) -> None:
    xml = image_xml(["Windows Server 2025 Standard", "Windows 11 Pro"], "x86_64", with_ids=False)
    iso = build_standin_iso(tmp_path / "win.iso", label=label, wim=wim_bytes(xml, image_count=2))
    info = inspect_iso(iso)
    assert info.is_server is server
    assert all(img.edition_id is None for img in info.images)


def test_server_from_xml_beats_label(tmp_path: Path) -> None:
    iso = build_standin_iso(tmp_path / "srv.iso", server=True, label="CCCOMA_X64FRE_EN-US_DV9")
    info = inspect_iso(iso)
    assert info.is_server
    assert _choose(info, "x86_64") == (2, "Windows Server 2025 Standard (Desktop Experience)", [])


def test_server_default_with_short_names_uses_installation_type() -> None:
    # Older server media name images "Windows Server 2019 SERVERSTANDARDCORE" / "... SERVERSTANDARD".
    xml = (
        "<WIM>"
        '<IMAGE INDEX="1"><WINDOWS><ARCH>9</ARCH><EDITIONID>ServerStandard</EDITIONID>'
        "<INSTALLATIONTYPE>Server Core</INSTALLATIONTYPE></WINDOWS>"
        "<NAME>Windows Server 2019 SERVERSTANDARDCORE</NAME></IMAGE>"
        '<IMAGE INDEX="2"><WINDOWS><ARCH>9</ARCH><EDITIONID>ServerStandard</EDITIONID>'
        "<INSTALLATIONTYPE>Server</INSTALLATIONTYPE></WINDOWS>"
        "<NAME>Windows Server 2019 SERVERSTANDARD</NAME></IMAGE>"
        "</WIM>"
    )
    images = parse_wim_xml(b"\xff\xfe" + xml.encode("utf-16-le"))
    info = MediaInfo(volume_label="SSS_X64FREE_EN-US_DV9", images=images, is_server=True, arch="x86_64")
    assert _choose(info, "x86_64") == (2, "Windows Server 2019 SERVERSTANDARD", [])
    # The edition id matches both: the first wins, with a warning naming the other.
    index, _, warnings = _choose(info, "x86_64", "serverstandard")
    assert index == 1 and "1, 2" in warnings[0]


def test_client_without_pro_picks_first_with_a_warning(tmp_path: Path) -> None:
    editions = ["Windows 11 Home", "Windows 11 Education"]
    info = inspect_iso(build_standin_iso(tmp_path / "w.iso", arch="x86_64", editions=editions))
    index, name, warnings = _choose(info, "x86_64")
    assert (index, name) == (1, "Windows 11 Home")
    assert "no Pro edition" in warnings[0] and "2: Windows 11 Education" in warnings[0]
    single = inspect_iso(
        build_standin_iso(tmp_path / "e.iso", arch="x86_64", editions=["Windows 11 Enterprise"])
    )
    assert _choose(single, "x86_64") == (1, "Windows 11 Enterprise", [])


def test_image_index_wins_and_is_checked(tmp_path: Path) -> None:
    info = inspect_iso(build_standin_iso(tmp_path / "win.iso", arch="x86_64"))
    assert _choose(info, "x86_64", index=7) == (7, "Windows 11 Pro for Workstations", [])
    index, _, warnings = _choose(info, "x86_64", "Windows 11 Home", 3)
    assert index == 3 and "overrides edition" in warnings[0]
    with pytest.raises(LimapyError, match="has no image 9; available: 1: Windows 11 Home"):
        _choose(info, "x86_64", index=9)
    assert _choose(None, "x86_64", index=9) == (9, None, [])


def test_image_index_of_another_arch_is_refused() -> None:
    mixed = (
        WimImage(1, "Windows 11 Pro", "Professional", "x86_64", ("en-US",)),
        WimImage(2, "Windows 11 Pro", "Professional", "aarch64", ("en-US",)),
    )
    info = MediaInfo(volume_label="CCCOMA_MIXED", images=mixed, is_server=False, arch=None)
    assert _choose(info, "aarch64")[:1] == (2,)
    with pytest.raises(LimapyError, match=r"image 1 .* is x64 but the instance arch is aarch64"):
        _choose(info, "aarch64", index=1)
    only_x64 = MediaInfo(volume_label="CCCOMA_MIXED", images=mixed[:1], is_server=False, arch=None)
    with pytest.raises(LimapyError, match="holds only x64 images but the instance arch is aarch64"):
        _choose(only_x64, "aarch64")


@pytest.mark.parametrize(
    "hostile",
    [
        '<!DOCTYPE WIM [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><WIM><IMAGE INDEX="1">'
        "<NAME>&b;</NAME></IMAGE></WIM>",
        '<!DOCTYPE WIM SYSTEM "file:///etc/passwd"><WIM/>',
        '<!doctype WIM [<!entity x SYSTEM "file:///etc/hostname">]><WIM><IMAGE><NAME>&x;</NAME></IMAGE></WIM>',
    ],
)
def test_hostile_xml_is_refused(tmp_path: Path, hostile: str) -> None:
    with pytest.raises(WimMetadataError, match="DTD or entity"):
        parse_wim_xml(b"\xff\xfe" + hostile.encode("utf-16-le"))
    iso = build_standin_iso(tmp_path / "h.iso", arch="x86_64", wim=wim_bytes(hostile))
    info, warnings = inspect_iso_lenient(iso)
    assert info is not None and info.images == () and "DTD or entity" in warnings[0]


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        out = super().read(size)
        self.bytes_read += len(out)
        return out


def test_read_is_capped_by_the_declared_size() -> None:
    xml = image_xml(X64_EDITIONS, "x86_64")
    huge = MAX_XML_BYTES + 1
    data = wim_bytes(xml, declared_size=huge) + b"\x00" * huge
    fp = CountingReader(data)
    with pytest.raises(WimMetadataError, match="limit"):
        read_wim_xml(fp, len(data))
    assert fp.bytes_read == 208  # the header only; the oversized resource is never read
    ok = wim_bytes(xml, filler=1 << 20)
    fp = CountingReader(ok)
    blob = read_wim_xml(fp, len(ok))
    assert fp.bytes_read == 208 + len(blob)  # the filler ("the rest of the WIM") is skipped, not read
    assert len(parse_wim_xml(blob)) == len(X64_EDITIONS)


def test_resource_outside_the_file_is_refused() -> None:
    data = wim_bytes(image_xml(["Windows 11 Pro"], "x86_64"))
    with pytest.raises(WimMetadataError, match="outside the file"):
        read_wim_xml(io.BytesIO(data[:-10]), len(data) - 10)


def test_xml_fields_and_default_language_first() -> None:
    xml = (
        '<WIM><IMAGE INDEX="3"><WINDOWS><ARCH>12</ARCH><EDITIONID>Professional</EDITIONID>'
        "<INSTALLATIONTYPE>Client</INSTALLATIONTYPE><LANGUAGES><LANGUAGE>de-DE</LANGUAGE>"
        "<LANGUAGE>en-US</LANGUAGE><DEFAULT>en-US</DEFAULT></LANGUAGES></WINDOWS>"
        "<NAME>Windows 11 Pro</NAME><DISPLAYNAME>Windows 11 Pro (arm64)</DISPLAYNAME></IMAGE>"
        '<IMAGE INDEX="4"><WINDOWS><ARCH>5</ARCH></WINDOWS><DISPLAYNAME>Only display</DISPLAYNAME></IMAGE>'
        "</WIM>"
    )
    first, second = parse_wim_xml(b"\xff\xfe" + xml.encode("utf-16-le"))
    assert first == WimImage(
        3, "Windows 11 Pro", "Professional", "aarch64", ("en-US", "de-DE"), "Windows 11 Pro (arm64)", "Client"
    )
    assert (second.index, second.name, second.arch, second.edition_id) == (4, "Only display", None, None)
    # Display names are accepted as edition names too.
    info = MediaInfo("CCCOMA_A64FRE_EN-US_DV9", (first, second), False, "aarch64")
    assert _choose(info, "aarch64", "windows 11 pro (ARM64)")[0] == 3


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_parser_only_raises_metadata_errors(blob: bytes) -> None:
    try:
        parse_wim_xml(blob)
    except WimMetadataError:
        pass


# --------------------------------------------------------------------------- require_iso


@pytest.mark.parametrize(
    ("arch", "url"),
    [
        ("x86_64", "https://www.microsoft.com/software-download/windows11"),
        ("aarch64", "https://www.microsoft.com/software-download/windows11arm64"),
    ],
)
def test_missing_iso_says_where_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arch: str, url: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(LimapyError) as exc:
        require_iso("~/Downloads/Win11_25H2_English_x64.iso", arch)
    err = exc.value
    assert err.message == f"Windows install ISO not found: {tmp_path}/Downloads/Win11_25H2_English_x64.iso"
    assert err.hint is not None
    assert f"{url};" in err.hint
    assert "--set '.images[0].location=\"/path/Win11.iso\"'" in err.hint
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_missing_server_iso_points_at_the_evaluation_center(tmp_path: Path) -> None:
    with pytest.raises(LimapyError) as exc:
        require_iso(str(tmp_path / "26100_SERVER_EVAL_x64FRE_en-us.iso"), "x86_64", image_pos=2)
    hint = exc.value.hint or ""
    assert "evalcenter" in hint and ".images[2].location" in hint


def test_present_iso_and_directories(tmp_path: Path) -> None:
    iso = tmp_path / "Win11.iso"
    iso.write_bytes(b"x")
    assert require_iso(str(iso), "x86_64") == iso
    assert require_iso(f"file://{iso}", "x86_64") == iso
    with pytest.raises(LimapyError, match="is a directory"):
        require_iso(str(tmp_path), "x86_64")
    with pytest.raises(ValueError, match="local path"):
        require_iso("https://aka.ms/WinServ2025iso-enus", "x86_64")
