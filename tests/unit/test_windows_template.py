"""The shipped Windows template: loads through `template:` names, meets Windows 11's minimums."""

from __future__ import annotations

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
    assert win.get("edition") is None and win.get("imageIndex") is None and not win.get("virtioWin")
