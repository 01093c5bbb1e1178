"""Host facts for the QEMU driver: which binary, which version, which accelerator.

The accelerator choice is deliberately careful: on nested "PVM" hosts `/dev/kvm` opens but is the
`kvm_pvm` module, and ordinary guests die there with "KVM internal error". KVM is picked only where the
CPU advertises vmx/svm (x86) and `/sys/module/kvm_pvm` is absent. Every probe takes injectable paths
or readers so unit tests need no real host.
"""

from __future__ import annotations

import os
import platform as _platform
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from limapy.base.dirs import ENV_ACCEL
from limapy.base.errors import ExternalToolError, LimapyError

ACCELS = ("kvm", "hvf", "tcg")

#: Lima arch name -> qemu-system-<suffix>
QEMU_ARCH = {
    "x86_64": "x86_64",
    "aarch64": "aarch64",
    "armv7l": "arm",
    "riscv64": "riscv64",
    "ppc64le": "ppc64",
    "s390x": "s390x",
}

#: Hard minimum (below: refuse) per Lima's Linux driver.
MIN_VERSION = (4, 0, 0)

_VERSION_RE = re.compile(r"QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class HostFacts:
    arch: str
    qemu_binary: str
    qemu_version: tuple[int, int, int]
    accel: str
    accel_notice: str | None


def _default_version_reader(binary: str) -> str:
    from limapy.base.proc import run

    return run([binary, "--version"], timeout=30).stdout.decode(errors="replace")


@dataclass(frozen=True)
class HostProbe:
    """Where detection looks; every field can be replaced in tests."""

    cpuinfo: Path = Path("/proc/cpuinfo")
    kvm_pvm_module: Path = Path("/sys/module/kvm_pvm")
    dev_kvm: Path = Path("/dev/kvm")
    platform: str = sys.platform
    machine: str = field(default_factory=_platform.machine)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    which: Callable[[str], str | None] = shutil.which
    version_reader: Callable[[str], str] = _default_version_reader
    hv_support: Callable[[], bool] | None = None


def normalize_arch(machine: str) -> str:
    m = machine.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}.get(m, m)


def binary_env_var(guest_arch: str) -> str:
    """QEMU_SYSTEM_X86_64, QEMU_SYSTEM_AARCH64, ... (Lima's override names)."""
    return "QEMU_SYSTEM_" + QEMU_ARCH.get(guest_arch, guest_arch).upper()


def find_binary(guest_arch: str, probe: HostProbe) -> str:
    if guest_arch not in QEMU_ARCH:
        raise LimapyError(f"unsupported guest arch {guest_arch!r} for QEMU")
    override = probe.env.get(binary_env_var(guest_arch))
    if override:
        return override
    name = f"qemu-system-{QEMU_ARCH[guest_arch]}"
    found = probe.which(name)
    if not found:
        pkg = "qemu-system-x86" if guest_arch == "x86_64" else "qemu-system-arm"
        raise ExternalToolError(
            f"{name} not found in PATH",
            hint=f"install QEMU (apt install {pkg}) or set {binary_env_var(guest_arch)}",
        )
    return found


def parse_version(text: str) -> tuple[int, int, int]:
    m = _VERSION_RE.search(text)
    if not m:
        raise ExternalToolError(f"cannot parse QEMU version from {text.strip()[:80]!r}")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def cpu_flags(cpuinfo_text: str) -> set[str]:
    flags: set[str] = set()
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def kvm_unusable_reason(host_arch: str, probe: HostProbe) -> str | None:
    """Why KVM cannot run ordinary guests here, or None when it can."""
    if not probe.platform.startswith("linux"):
        return "not a Linux host"
    if not probe.dev_kvm.exists():
        return "/dev/kvm does not exist"
    if not os.access(probe.dev_kvm, os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    if probe.kvm_pvm_module.exists():
        return "/dev/kvm is the nested kvm_pvm module, which cannot run stock guests"
    if host_arch == "x86_64":
        try:
            text = probe.cpuinfo.read_text(errors="replace")
        except OSError:
            return f"cannot read {probe.cpuinfo}"
        if not cpu_flags(text) & {"vmx", "svm"}:
            return f"the CPU advertises no vmx/svm in {probe.cpuinfo}"
    return None


def _hvf_supported(probe: HostProbe) -> bool:
    if probe.hv_support is not None:
        return probe.hv_support()
    from limapy.base.proc import run

    try:
        out = run(["sysctl", "-n", "kern.hv_support"], check=False, timeout=10).stdout
    except LimapyError:
        return False
    return out.strip() == b"1"


def choose_accel(guest_arch: str, host_arch: str, probe: HostProbe) -> tuple[str, str | None]:
    """(accelerator, one-line notice or None)."""
    forced = probe.env.get(ENV_ACCEL, "").strip().lower()
    if forced:
        if forced not in ACCELS:
            raise LimapyError(
                f"{ENV_ACCEL}={forced!r} is not one of {', '.join(ACCELS)}",
                hint=f"unset {ENV_ACCEL} to let limapy choose",
            )
        return forced, None
    slow = f"using TCG software emulation (slow); set {ENV_ACCEL} to override"
    if guest_arch != host_arch:
        return "tcg", f"{guest_arch} guest on a {host_arch} host: {slow}"
    if probe.platform == "darwin":
        if _hvf_supported(probe):
            return "hvf", None
        return "tcg", f"Hypervisor.framework is not available: {slow}"
    reason = kvm_unusable_reason(host_arch, probe)
    if reason is None:
        return "kvm", None
    return "tcg", f"KVM not used ({reason}): {slow}"


def detect_host(guest_arch: str, probe: HostProbe | None = None) -> HostFacts:
    probe = probe or HostProbe()
    host_arch = normalize_arch(probe.machine)
    binary = find_binary(guest_arch, probe)
    version = parse_version(probe.version_reader(binary))
    if version < MIN_VERSION:
        raise ExternalToolError(
            f"{binary} is QEMU {'.'.join(map(str, version))}; limapy needs at least {'.'.join(map(str, MIN_VERSION))}"
        )
    accel, notice = choose_accel(guest_arch, host_arch, probe)
    return HostFacts(arch=host_arch, qemu_binary=binary, qemu_version=version, accel=accel, accel_notice=notice)


def check_minimum_version(host: HostFacts, wanted: str | None) -> None:
    """Enforce `vmOpts.qemu.minimumVersion` (fatal, as in Lima)."""
    if not wanted:
        return
    want = parse_version(f"QEMU emulator version {wanted}")
    if host.qemu_version < want:
        have = ".".join(map(str, host.qemu_version))
        raise LimapyError(f"QEMU {have} is older than vmOpts.qemu.minimumVersion {wanted}")
