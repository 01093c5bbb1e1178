"""The shipped Windows template: loads through `template:` names, meets Windows 11's minimums."""

from __future__ import annotations

import re

import pytest

from limapy.config import load_config
from limapy.units import parse_size


@pytest.mark.parametrize("locator", ["template:windows", "template:experimental/windows"])
def test_windows_template_loads_and_meets_windows_11_minimums(locator: str) -> None:
    loaded = load_config(locator)
    cfg = loaded.cfg
    assert loaded.warnings == []
    assert (cfg["os"], cfg["vmType"], cfg["tpm"], cfg["plain"]) == ("Windows", "qemu", True, True)
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
    assert (cfg["os"], cfg["arch"], cfg["tpm"], cfg["plain"]) == ("Windows", "x86_64", False, True)
    image = next(img for img in cfg["images"] if img["arch"] == "x86_64")
    assert image["location"].startswith("https://") and image["location"].endswith("SERVER_EVAL_x64FRE_en-us.iso")
    assert image["digest"] == "sha256:d0ef4502e350e3c6c53c15b1b3020d38a5ded011bf04998e950720ac8579b23d"
    vw = [v for v in cfg["osOpts"]["Windows"]["virtioWin"] if v["arch"] == "x86_64"]
    assert len(vw) == 1 and re.fullmatch(r"sha256:[0-9a-f]{64}", vw[0]["digest"])
    assert cfg["osOpts"]["Windows"].get("productKey") is None  # evaluation media: keyless
