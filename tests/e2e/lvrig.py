"""What the libvirt e2e tests ask libvirtd directly: virsh, and that an instance left nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.conftest import LIBVIRT_SYSTEM as SYSTEM


def virsh(*args: str, uri: str = SYSTEM) -> str:
    cp = subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def nothing_left(name: str, uri: str = SYSTEM) -> None:
    domain = f"limapy-{name}"
    assert domain not in virsh("list", "--all", "--name", uri=uri).split()
    vols = virsh("vol-list", "limapy", uri=uri) if "limapy" in virsh("pool-list", "--all", "--name").split() else ""
    assert f"limapy-{name}." not in vols and f"limapy-{name}-" not in vols, vols
    assert "limapy-base-" not in vols, vols  # the last overlay on a base took the base with it
    nvram = Path("/var/lib/libvirt/qemu/nvram")
    assert not list(nvram.glob(f"{domain}_*")) if nvram.is_dir() else True
