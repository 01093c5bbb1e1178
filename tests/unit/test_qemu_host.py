"""Host detection with a fake host: no process, no real /dev/kvm."""

from __future__ import annotations

from pathlib import Path

import pytest

from limapy.base.errors import LimapyError
from limapy.qemu.host import HostProbe, detect_host, parse_version

VERSION = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright ...\n"


def probe(
    tmp: Path,
    *,
    flags: str = "fpu vmx sse4_2",
    pvm: bool = False,
    kvm: bool = True,
    env: dict[str, str] | None = None,
    machine: str = "x86_64",
    plat: str = "linux",
) -> HostProbe:
    cpuinfo = tmp / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    dev = tmp / "kvm"
    if kvm:
        dev.write_text("")
    pvm_dir = tmp / "kvm_pvm"
    if pvm:
        pvm_dir.mkdir()
    return HostProbe(
        cpuinfo=cpuinfo,
        kvm_pvm_module=pvm_dir,
        dev_kvm=dev,
        platform=plat,
        machine=machine,
        env=env or {},
        which=lambda name: f"/usr/bin/{name}",
        version_reader=lambda _b: VERSION,
        hv_support=lambda: True,
    )


def test_kvm_when_vmx_and_no_pvm(tmp_path: Path) -> None:
    facts = detect_host("x86_64", probe(tmp_path))
    assert facts.accel == "kvm" and facts.accel_notice is None
    assert facts.qemu_binary == "/usr/bin/qemu-system-x86_64"
    assert facts.qemu_version == (7, 2, 22)


def test_nested_pvm_falls_back_to_tcg_with_notice(tmp_path: Path) -> None:
    facts = detect_host("x86_64", probe(tmp_path, pvm=True))
    assert facts.accel == "tcg"
    assert facts.accel_notice and "kvm_pvm" in facts.accel_notice and "LIMAPY_QEMU_ACCEL" in facts.accel_notice
    assert "\n" not in facts.accel_notice


def test_no_vmx_svm_means_tcg(tmp_path: Path) -> None:
    facts = detect_host("x86_64", probe(tmp_path, flags="fpu sse4_2 hypervisor"))
    assert facts.accel == "tcg" and "vmx/svm" in (facts.accel_notice or "")


def test_svm_is_enough(tmp_path: Path) -> None:
    assert detect_host("x86_64", probe(tmp_path, flags="fpu svm")).accel == "kvm"


def test_missing_dev_kvm(tmp_path: Path) -> None:
    facts = detect_host("x86_64", probe(tmp_path, kvm=False))
    assert facts.accel == "tcg" and "/dev/kvm" in (facts.accel_notice or "")


def test_foreign_arch_is_tcg(tmp_path: Path) -> None:
    facts = detect_host("aarch64", probe(tmp_path))
    assert facts.accel == "tcg" and facts.qemu_binary.endswith("qemu-system-aarch64")
    assert "aarch64 guest on a x86_64 host" in (facts.accel_notice or "")


def test_macos_hvf(tmp_path: Path) -> None:
    facts = detect_host("aarch64", probe(tmp_path, machine="arm64", plat="darwin", kvm=False))
    assert (facts.arch, facts.accel) == ("aarch64", "hvf")


def test_accel_override_wins(tmp_path: Path) -> None:
    facts = detect_host("x86_64", probe(tmp_path, pvm=True, env={"LIMAPY_QEMU_ACCEL": "kvm"}))
    assert facts.accel == "kvm" and facts.accel_notice is None


def test_bad_accel_override(tmp_path: Path) -> None:
    with pytest.raises(LimapyError, match="LIMAPY_QEMU_ACCEL"):
        detect_host("x86_64", probe(tmp_path, env={"LIMAPY_QEMU_ACCEL": "whpx"}))


def test_binary_override(tmp_path: Path) -> None:
    facts = detect_host("aarch64", probe(tmp_path, env={"QEMU_SYSTEM_AARCH64": "/opt/q/bin/qa"}))
    assert facts.qemu_binary == "/opt/q/bin/qa"


def test_binary_missing(tmp_path: Path) -> None:
    p = probe(tmp_path)
    p = HostProbe(**{**p.__dict__, "which": lambda _n: None})
    with pytest.raises(LimapyError, match="qemu-system-x86_64 not found"):
        detect_host("x86_64", p)


def test_parse_version() -> None:
    assert parse_version("QEMU emulator version 9.1\n") == (9, 1, 0)
    with pytest.raises(LimapyError):
        parse_version("something else")


