"""hack/bench.py: the non-booting rows run end to end as a process and print one JSON object; the table
logic judges targets correctly."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "hack" / "bench.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("limapy_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["limapy_bench"] = mod  # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.timeout(300)
def test_cli_and_iso_rows_as_json() -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (the list rows create instances on a tiny qcow2)")
    cp = subprocess.run(
        [sys.executable, str(BENCH), "--only", "cli,iso", "--repeat", "1", "--json"],
        capture_output=True, text=True, timeout=280,
    )
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)
    machine = doc["machine"]
    for key in ("cpu", "cores", "memory", "qemu", "accelerator", "python", "date", "loadavg_start", "loadavg_end"):
        assert machine.get(key) not in (None, ""), key
    rows = {r["id"]: r for r in doc["rows"]}
    assert set(rows) == {"cli.help", "cli.validate", "cli.list20", "cli.list200", "cli.list20cold", "cli.shell",
                         "cli.complete", "iso.seed", "iso.answer"}
    for r in rows.values():
        assert r["error"] == "", r
        assert r["value"] > 0 and r["floor"] > 0, r
        assert r["ratio"] == pytest.approx(r["value"] / r["floor"], rel=1e-3)
        assert r["samples"] and r["floor_samples"]
    assert rows["cli.help"]["floor_label"] == "python -c pass"
    assert rows["cli.help"]["target"] == "ratio<=4"
    assert rows["cli.shell"]["target"] == "ratio<=4,value<=40"
    assert rows["cli.help"]["ok"] in (True, False) and rows["cli.shell"]["ok"] in (True, False)
    assert rows["iso.seed"]["ok"] is None  # informational


def test_table_without_json_has_every_requested_row() -> None:
    bench = load_bench()
    machine = {"date": "d", "commit": "c", "cpu": "cpu", "cores": 2, "memory": "1 GiB", "os": "os",
               "qemu": "7.2", "accelerator": "tcg", "python": "3.11", "loadavg_start": [1.0], "loadavg_end": [2.0]}
    rows = [
        bench.Row("boot.start", "boot", "start", "s", 42.0, 40.0, "direct", target="ratio<=1.05"),
        bench.Row("cli.help", "cli", "help", "ms", 160.0, 20.0, "python -c pass", target="value<150"),
        bench.Row("iso.seed", "iso", "seed", "ms", None, None, "", error="boom"),
    ]
    text = bench.table(machine, rows, {})
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(lines) == 4  # header + 3 rows
    assert "1.050" in lines[1] and "yes" in lines[1]
    assert "NO" in lines[2]
    assert "ERROR" in lines[3] and "error in iso.seed: boom" in text
    assert "load average at start 1.0, at end 2.0" in text


def test_targets_and_groups() -> None:
    bench = load_bench()
    assert bench.Row("x", "boot", "x", "s", 10.6, 10.0, "f", target="ratio<=1.05").ok is False
    assert bench.Row("x", "boot", "x", "s", 10.5, 10.0, "f", target="ratio<=1.05").ok is True
    assert bench.Row("x", "cli", "x", "ms", 150.0, 20.0, "f", target="value<150").ok is False
    assert bench.Row("x", "cli", "x", "ms", 149.9, 20.0, "f", target="value<150").ok is True
    both = "ratio<=4,value<=40"  # every condition must hold
    assert bench.Row("x", "cli", "x", "ms", 39.0, 10.0, "f", target=both).ok is True
    assert bench.Row("x", "cli", "x", "ms", 41.0, 20.0, "f", target=both).ok is False
    assert bench.Row("x", "cli", "x", "ms", 30.0, 5.0, "f", target=both).ok is False
    assert bench.Row("x", "iso", "x", "ms", 1.0, 1.0, "f").ok is None
    assert bench.parse_only("cli,stop,start") == ["cli", "boot"]
    assert bench.parse_only(None) == list(bench.GROUPS)
    with pytest.raises(SystemExit):
        bench.parse_only("cli,nope")
