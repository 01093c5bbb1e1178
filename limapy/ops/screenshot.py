"""`limapy screenshot NAME -o FILE`: the guest's screen, through its driver (works during a Windows install)."""

from __future__ import annotations

from pathlib import Path

from limapy import driver
from limapy.instance import store


def screenshot(inst: store.Instance, out: Path) -> None:
    driver.for_instance(inst).screenshot(inst, out)
