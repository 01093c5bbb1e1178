"""The shipped Windows template: loads through `template:` names, meets Windows 11's minimums."""

from __future__ import annotations

import re

import pytest

from limapy.base.units import parse_size
from limapy.config import load_config


@pytest.mark.parametrize("locator", ["template:windows", "template:experimental/windows"])
def test_windows_template_loads_and_meets_windows_11_minimums(locator: str) -> None:
    loaded = load_config(locator)
    cfg = loaded.cfg
    assert loaded.warnings == []
    assert (cfg["os"], cfg["vmType"], cfg["tpm"], cfg["plain"]) == ("Windows", "qemu", True, False)  # forwards on
    assert cfg["cpus"] >= 2
    assert parse_size(cfg["memory"]) >= 4 * 1024**3
    assert parse_size(cfg["disk"]) >= 64 * 1024**3
    images = {img["arch"]: img["location"] for img in cfg["images"]}
    assert set(images) == {"x86_64", "aarch64"}
    assert all(loc.startswith("~/") and loc.endswith(".iso") for loc in images.values())
    assert cfg["video"]["display"] == "default"
    win = cfg["osOpts"]["Windows"]
    assert win.get("edition") is None and win.get("imageIndex") is None
    # virtio-win for aarch64 only (its network needs NetKVM), pinned; x86_64 keeps the inbox layout.
    (vw,) = win["virtioWin"]
    assert vw["arch"] == "aarch64" and vw["location"].startswith("https://")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", vw["digest"])


@pytest.mark.parametrize("locator", ["template:windows-11", "templates/windows-11.yaml"])
def test_windows_11_is_an_alias(locator: str) -> None:
    assert load_config(locator).cfg == load_config("template:windows").cfg


def test_windows_2025_template() -> None:
    cfg = load_config("template:windows-2025").cfg
    assert (cfg["os"], cfg["arch"], cfg["tpm"], cfg["plain"]) == ("Windows", "x86_64", False, False)
    image = next(img for img in cfg["images"] if img["arch"] == "x86_64")
    assert image["location"].startswith("https://") and image["location"].endswith("SERVER_EVAL_x64FRE_en-us.iso")
    assert image["digest"] == "sha256:d0ef4502e350e3c6c53c15b1b3020d38a5ded011bf04998e950720ac8579b23d"
    vw = [v for v in cfg["osOpts"]["Windows"]["virtioWin"] if v["arch"] == "x86_64"]
    assert len(vw) == 1 and re.fullmatch(r"sha256:[0-9a-f]{64}", vw[0]["digest"])
    assert cfg["osOpts"]["Windows"].get("productKey") is None  # evaluation media: keyless


MSI_NAMES = {"x86_64": "OpenSSH-Win64-v10.0.0.0.msi", "aarch64": "OpenSSH-ARM64-v10.0.0.0.msi"}


#: A Windows config as Lima's own templates write one: no opensshMsi.
LIMA_STYLE = b"""os: Windows
plain: true
images:
- {location: /isos/win11-x64.iso, arch: x86_64}
- {location: /isos/win11-arm64.iso, arch: aarch64}
osOpts:
  Windows:
    virtioWin:
    - {location: "https://example.invalid/virtio-win.iso", arch: aarch64}
"""


@pytest.mark.parametrize(
    ("locator", "arch"),
    [("template:windows", "x86_64"), ("template:windows", "aarch64"), ("template:windows-2025", "x86_64"),
     ("lima-style", "x86_64"), ("lima-style", "aarch64")],  # Server is x86_64 only
)
def test_openssh_comes_from_a_pinned_msi_of_the_instance_arch(locator: str, arch: str) -> None:
    """Issue 23, item 3: the MSI by default (the shipped templates list it; a Windows config without any gets the
    same pinned pair, so Lima's own templates do too); Windows Update only when asked."""
    from limapy.config import check
    from limapy.config.load import load, load_bytes
    from limapy.expr import edits

    doc = load_bytes(LIMA_STYLE, "/tmp/lima-style.yaml") if locator == "lima-style" else load(locator)
    edits.apply(doc.data, f'.arch = "{arch}"')
    spec = check(doc, name="w").spec
    msi = spec.openssh_msi
    assert msi is not None and msi.arch == arch
    assert msi.location == f"https://github.com/PowerShell/Win32-OpenSSH/releases/download/10.0.0.0p2-Preview/{MSI_NAMES[arch]}"
    assert msi.digest and re.fullmatch(r"sha256:[0-9a-f]{64}", msi.digest)
    edits.apply(doc.data, '.osOpts.Windows.opensshSource = "capability"')
    assert check(doc, name="w").spec.openssh_msi is None  # the explicit opt-in: nothing to download
