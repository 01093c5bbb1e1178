"""Facts about the host that Lima's defaults depend on (user, arch, CPUs, memory, timezone)."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

_USER_RE = re.compile(r"[a-z_][a-z0-9_-]*\Z")


@dataclass(frozen=True)
class HostInfo:
    user: str
    uid: int
    full_name: str
    arch: str
    cpus: int
    memory: int
    timezone: str
    os: str
    machine_id: str = ""  # Lima mixes it into MAC addresses (osutil.MachineID)


def lima_arch(machine: str) -> str:
    m = machine.lower()
    return {
        "amd64": "x86_64",
        "x86_64": "x86_64",
        "arm64": "aarch64",
        "aarch64": "aarch64",
        "armv7l": "armv7l",
        "ppc64le": "ppc64le",
        "riscv64": "riscv64",
        "s390x": "s390x",
    }.get(m, m)


def _timezone() -> str:
    try:
        tz = Path("/etc/timezone").read_text().strip()
        if tz:
            return tz
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return ""


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _machine_id() -> str:
    for name in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = Path(name).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return platform.node()


def detect() -> HostInfo:
    import pwd

    uid = os.getuid()
    try:
        pw = pwd.getpwuid(uid)
        user, gecos = pw.pw_name, pw.pw_gecos.split(",")[0]
    except KeyError:
        user, gecos = os.environ.get("USER", "lima"), ""
    return HostInfo(
        user=user,
        uid=uid,
        full_name=gecos,
        arch=lima_arch(platform.machine()),
        cpus=os.cpu_count() or 1,
        memory=_memory(),
        timezone=_timezone(),
        os=platform.system(),
        machine_id=_machine_id(),
    )


def default_guest_user(host: HostInfo) -> tuple[str, int]:
    """Lima uses the host user name when it is a valid Linux name and not `admin`.

    limapy also runs as root (CI does); root is never a guest login, so then the guest user is `lima`, uid 1000.
    """
    if host.uid == 0 or host.user == "root":
        return "lima", 1000
    if _USER_RE.fullmatch(host.user) and host.user != "admin":
        return host.user, host.uid
    return "lima", host.uid
