"""Firmware discovery and size checks on crafted files (no QEMU)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from limapy.base.errors import LimapyError
from limapy.config.model import BootKind, FirmwareImage, Spec
from limapy.qemu.firmware import (
    AARCH64_FLASH,
    FirmwarePair,
    check_pair,
    find_firmware,
    make_vars,
    plan_vars,
)

CODE_4M, VARS_4M = 3_653_632, 540_672
MIB = 1024 * 1024


def prepare_vars(pair: FirmwarePair, arch: str, inst: Path) -> tuple[Path, Path]:
    """What a boot does: plan (reads only), then make the instance's files."""
    plan = plan_vars(pair, arch, padded_code=inst / "qemu-efi-code.fd", vars_store=inst / "qemu-efi-vars.fd")
    make_vars(plan)
    return plan.code, plan.vars


def test_plan_writes_nothing(tmp_path: Path) -> None:
    pair = FirmwarePair(blob(tmp_path / "QEMU_EFI.fd", 2 * MIB), None)
    inst = tmp_path / "inst"
    inst.mkdir()
    plan = plan_vars(pair, "aarch64", padded_code=inst / "c.fd", vars_store=inst / "v.fd")
    assert plan.pad_code and list(inst.iterdir()) == []


def blob(path: Path, size: int, byte: bytes = b"\x55") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(byte * size)
    return path


def test_4m_pair_accepted(tmp_path: Path) -> None:
    check_pair(FirmwarePair(blob(tmp_path / "c.fd", CODE_4M), blob(tmp_path / "v.fd", VARS_4M)), "x86_64")


def test_wrong_size_refused_with_name_and_size(tmp_path: Path) -> None:
    code = blob(tmp_path / "weird-code.fd", 1_000_000)
    with pytest.raises(LimapyError) as e:
        check_pair(FirmwarePair(code, blob(tmp_path / "v.fd", VARS_4M)), "x86_64")
    assert "weird-code.fd" in e.value.message and "1,000,000 B" in e.value.message
    assert "v.fd (540,672 B)" in e.value.message


def test_mismatched_builds_refused(tmp_path: Path) -> None:
    code = blob(tmp_path / "OVMF_CODE_4M.fd", CODE_4M)
    old_vars = blob(tmp_path / "OVMF_VARS.fd", 131_072)
    with pytest.raises(LimapyError, match="different builds") as e:
        check_pair(FirmwarePair(code, old_vars), "x86_64")
    assert "OVMF_CODE_4M.fd (3,653,632 B)" in e.value.message and "OVMF_VARS.fd (131,072 B)" in e.value.message


def test_too_large_x86_refused(tmp_path: Path) -> None:
    code = blob(tmp_path / "c.fd", CODE_4M)
    with pytest.raises(LimapyError, match="exceeds"):
        check_pair(FirmwarePair(code, blob(tmp_path / "v.fd", 64 * MIB, b"\0")), "x86_64")


def test_x86_needs_vars(tmp_path: Path) -> None:
    with pytest.raises(LimapyError, match="no vars template"):
        check_pair(FirmwarePair(blob(tmp_path / "c.fd", CODE_4M), None), "x86_64")


def test_aarch64_over_64mib_refused(tmp_path: Path) -> None:
    with pytest.raises(LimapyError, match="larger than"):
        check_pair(FirmwarePair(blob(tmp_path / "c.fd", 65 * MIB, b"\0"), None), "aarch64")


def test_prepare_x86_copies_once_and_keeps(tmp_path: Path) -> None:
    pair = FirmwarePair(blob(tmp_path / "c.fd", CODE_4M), blob(tmp_path / "v.fd", VARS_4M))
    inst = tmp_path / "inst"
    inst.mkdir()
    code, store = prepare_vars(pair, "x86_64", inst)
    assert code == pair.code and store == inst / "qemu-efi-vars.fd"
    assert store.stat().st_size == VARS_4M and os.access(store, os.W_OK)
    assert store.stat().st_mode & 0o777 == 0o600
    store.write_bytes(b"\x01" * VARS_4M)  # the guest wrote variables
    prepare_vars(pair, "x86_64", inst)
    assert store.read_bytes()[:1] == b"\x01"


def test_prepare_refuses_stale_store(tmp_path: Path) -> None:
    pair = FirmwarePair(blob(tmp_path / "c.fd", CODE_4M), blob(tmp_path / "v.fd", VARS_4M))
    blob(tmp_path / "qemu-efi-vars.fd", 131_072)
    with pytest.raises(LimapyError, match="does not fit"):
        prepare_vars(pair, "x86_64", tmp_path)


def test_prepare_aarch64_pads_small_code_and_vars(tmp_path: Path) -> None:
    pair = FirmwarePair(blob(tmp_path / "QEMU_EFI.fd", 2 * MIB), blob(tmp_path / "vars.fd", 768 * 1024))
    inst = tmp_path / "inst"
    inst.mkdir()
    code, store = prepare_vars(pair, "aarch64", inst)
    assert code == inst / "qemu-efi-code.fd"
    assert code.stat().st_size == AARCH64_FLASH and store.stat().st_size == AARCH64_FLASH
    with code.open("rb") as f:
        assert f.read(4) == b"\x55" * 4
        f.seek(2 * MIB)
        assert f.read(4) == b"\0" * 4


def test_prepare_aarch64_keeps_64mib_code(tmp_path: Path) -> None:
    pair = FirmwarePair(blob(tmp_path / "AAVMF_CODE.fd", AARCH64_FLASH, b"\0"), None)
    code, store = prepare_vars(pair, "aarch64", tmp_path)
    assert code == pair.code and not (tmp_path / "qemu-efi-code.fd").exists()
    assert store.stat().st_size == AARCH64_FLASH


def test_legacy_bios_means_no_firmware() -> None:
    def spec(**fw: object) -> Spec:
        return Spec.from_cfg({"arch": "x86_64", "os": "Windows", "firmware": fw, "user": {}})

    assert spec(legacyBIOS=True).boot_kind is BootKind.BIOS
    assert spec(legacyBIOS=False).boot_kind is BootKind.UEFI
    aarch64 = Spec.from_cfg({"arch": "aarch64", "os": "Windows", "firmware": {"legacyBIOS": True}})
    assert aarch64.boot_kind is BootKind.UEFI  # legacy BIOS is an x86 thing


def test_firmware_images_local_path_wins(tmp_path: Path) -> None:
    code = blob(tmp_path / "my_CODE.fd", CODE_4M)
    vars_ = blob(tmp_path / "my_VARS.fd", VARS_4M)
    images = [
        FirmwareImage("https://example.invalid/a.fd", "aarch64"),
        FirmwareImage(str(code), "x86_64"),
    ]
    pair = find_firmware("x86_64", images, descriptor_dirs=[], share_dirs=[])
    assert pair is not None and (pair.code, pair.vars_template) == (code, vars_)


def descriptor(d: Path, name: str, code: Path, vars_: Path, arch: str, features: list[str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    machines = ["pc-q35-*"] if arch == "x86_64" else ["virt-*"]
    (d / name).write_text(
        json.dumps(
            {
                "interface-types": ["uefi"],
                "mapping": {
                    "device": "flash",
                    "executable": {"filename": str(code)},
                    "nvram-template": {"filename": str(vars_)},
                },
                "targets": [{"architecture": arch, "machines": machines}],
                "features": features,
            }
        )
    )


def test_descriptor_order_and_secure_boot_skipped(tmp_path: Path) -> None:
    d = tmp_path / "fw"
    sb = blob(tmp_path / "sb_code.fd", CODE_4M)
    plain = blob(tmp_path / "code.fd", CODE_4M)
    vars_ = blob(tmp_path / "vars.fd", VARS_4M)
    descriptor(d, "40-sb.json", sb, vars_, "x86_64", ["secure-boot", "requires-smm"])
    descriptor(d, "60-plain.json", plain, vars_, "x86_64", ["acpi-s3"])
    descriptor(d, "50-arm.json", plain, vars_, "aarch64", [])
    pair = find_firmware("x86_64", (), descriptor_dirs=[d], share_dirs=[])
    assert pair is not None and pair.code == plain and "60-plain.json" in pair.source


def test_discovery_skips_bad_pair_for_good_one(tmp_path: Path) -> None:
    d = tmp_path / "fw"
    descriptor(d, "10-bad.json", blob(tmp_path / "bad.fd", CODE_4M), blob(tmp_path / "bv.fd", 131_072), "x86_64", [])
    share = tmp_path / "share"
    blob(share / "edk2-x86_64-code.fd", CODE_4M)
    blob(share / "edk2-i386-vars.fd", VARS_4M)
    pair = find_firmware("x86_64", (), descriptor_dirs=[d], share_dirs=[share])
    assert pair is not None and pair.code == share / "edk2-x86_64-code.fd"
