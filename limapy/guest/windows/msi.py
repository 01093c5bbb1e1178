"""Win32-OpenSSH MSIs for the answer ISO: which platform a Windows Installer package installs for."""

from __future__ import annotations

import struct
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.guest.windows.media import ms_arch

# --------------------------------------------------------------------------- OpenSSH MSI

#: MSI Summary Information "Template" platforms (Windows Installer docs) -> Lima arch names.
_MSI_PLATFORMS = {"x64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "intel": "i686", "arm": "armv7l"}


def msi_platform(path: Path) -> str | None:
    """The architecture an MSI installs for, from its Summary Information stream's Template property
    ("x64;1033", "Arm64;1033"); None when the file is no MSI or names no known platform."""
    import olefile  # lazily: only `create` with an OpenSSH MSI needs it

    try:
        if not olefile.isOleFile(str(path)):
            return None
        with olefile.OleFileIO(str(path)) as ole:
            template = ole.get_metadata().template
    except (OSError, ValueError, struct.error):
        return None
    if isinstance(template, bytes):
        template = template.decode("latin-1", "replace")
    platform = str(template or "").split(";", 1)[0].split(",", 1)[0].strip().lower()
    return _MSI_PLATFORMS.get(platform)


def check_msi(path: Path, arch: str, location: str) -> None:
    found = msi_platform(path)
    if found is None:
        raise LimapyError(
            f"osOpts.Windows.opensshMsi {location}: not a Windows Installer package for a known platform",
            hint="use an OpenSSH-Win64 or OpenSSH-ARM64 .msi from https://github.com/PowerShell/Win32-OpenSSH/releases",
        )
    if found != arch:
        raise LimapyError(
            f"osOpts.Windows.opensshMsi {location} installs for {ms_arch(found)}, but the instance arch is {arch}",
            hint=f"use the {ms_arch(arch)} MSI (OpenSSH-{'Win64' if arch == 'x86_64' else 'ARM64'}-*.msi) here",
        )
