"""The one golden-file helper (as virtinst's compare files): `compare(name, actual)` checks `actual` against
tests/golden/<name>; with LIMAPY_REGEN_GOLDEN=1 it writes the file instead, and the diff is then reviewed in git.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "golden"
ENV = "LIMAPY_REGEN_GOLDEN"


def regenerating() -> bool:
    return os.environ.get(ENV) == "1"


def compare(name: str, actual: str | bytes) -> None:
    path = ROOT / name
    data = actual.encode() if isinstance(actual, str) else actual
    if regenerating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"no golden file {path}; create it with {ENV}=1"
    want = path.read_bytes()
    if want != data:
        import difflib

        diff = "".join(
            difflib.unified_diff(
                want.decode(errors="replace").splitlines(keepends=True),
                data.decode(errors="replace").splitlines(keepends=True),
                str(path), "actual", n=2,
            )
        )  # fmt: skip
        raise AssertionError(f"{path} differs; rerun with {ENV}=1 if the change is intended\n{diff[:4000]}")
