"""What hack/bench.py and hack/bench_boot.py share: rows, timing, subprocess helpers, the table."""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BOOT_TIMEOUT = 600.0


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# -- rows ---------------------------------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    group: str
    label: str
    unit: str  # "ms", "s", "KiB"
    value: float | None
    floor: float | None
    floor_label: str
    target: str = ""  # "ratio<=1.05", "value<150", both: "ratio<=4,value<=40"; empty: informational
    samples: list[float] = field(default_factory=list)
    floor_samples: list[float] = field(default_factory=list)
    note: str = ""
    error: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return self.value / self.floor

    @property
    def ok(self) -> bool | None:
        if self.error:
            return False
        if self.value is None:  # not measured on this machine (its note says why)
            return None
        if not self.target:
            return None
        for cond in self.target.split(","):
            kind, op, limit = re.fullmatch(r"(ratio|value)(<=|<)([\d.]+)", cond).groups()  # type: ignore[union-attr]
            x = self.ratio if kind == "ratio" else self.value
            if x is None or not (x <= float(limit) if op == "<=" else x < float(limit)):
                return False
        return True

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        d["ok"] = self.ok
        return d


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


# -- helpers ------------------------------------------------------------------------------------------------


def limapy_argv() -> list[str]:
    """The console script beside this interpreter (what a user runs), else `python -m limapy`."""
    script = Path(sys.executable).parent / "limapy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "limapy"]


Completed = subprocess.CompletedProcess[bytes]


def timed(argv: Sequence[str], env: dict[str, str], *, timeout: float = 120.0) -> tuple[float, Completed]:
    t0 = time.perf_counter()
    cp = subprocess.run(list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return time.perf_counter() - t0, cp


def check(cp: subprocess.CompletedProcess[bytes], what: str) -> None:
    if cp.returncode != 0:
        tail = (cp.stderr or cp.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{what} failed (exit {cp.returncode}): {' | '.join(tail)}")


def du_kib(path: Path) -> float:
    cp = subprocess.run(["du", "-sk", str(path)], capture_output=True, check=True)
    return float(cp.stdout.split()[0])


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    qemu = accel = ""
    try:
        from limapy.qemu import host

        facts = host.detect_host("x86_64")
        qemu = ".".join(str(v) for v in facts.qemu_version)
        accel = facts.accel
    except Exception as e:
        qemu = f"unavailable ({getattr(e, 'message', e)})"
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "qemu": qemu,
        "accelerator": accel,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- output -------------------------------------------------------------------------------------------------


def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "ms":
        return f"{x:.1f} ms"
    if unit == "s":
        return f"{x:.2f} s"
    return f"{x:,.0f} {unit}"


def table(machine: dict[str, Any], rows: list[Row], extra: dict[str, Any]) -> str:
    m = machine
    out = [
        f"# limapy bench {m['date']} (commit {m['commit'] or '?'})",
        f"# {m['cpu']}, {m['cores']} cores, {m['memory']}; {m['os']}",
        f"# QEMU {m['qemu']} ({m['accelerator']}), Python {m['python']}; load average at start "
        f"{' '.join(map(str, m['loadavg_start']))}, at end {' '.join(map(str, m.get('loadavg_end', [])))}",
        "",
    ]
    head = ("row", "value", "floor", "ratio", "target", "ok?")
    body = []
    for r in rows:
        target = ", ".join(
            c.replace("ratio", "").replace("value", "") + (f" {r.unit}" if c.startswith("value") else "")
            for c in r.target.split(",") if c
        )
        ok = {True: "yes", False: "NO", None: "-"}[r.ok]
        if r.error:
            ok = "ERROR"
        floor = f"{fmt(r.floor, r.unit)} ({r.floor_label})" if r.floor_label else fmt(r.floor, r.unit)
        body.append((r.label, fmt(r.value, r.unit), floor, "-" if r.ratio is None else f"{r.ratio:.3f}",
                     target or "-", ok))
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    out.append("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) + " |")
    for r in rows:
        if r.error:
            out.append(f"error in {r.id}: {r.error}")
    boot = extra.get("boot")
    if boot and boot.get("runs"):
        out += ["", f"boot runs (host agent probe interval {boot['probe_interval_s']} s); seconds from launch:"]
        for run in boot["runs"]:
            phases = ", ".join(f"{k} {v}" for k, v in run["phases_s"].items())
            stop = ", ".join(f"{k} {v}" for k, v in run.get("stop_phases_s", {}).items())
            out.append(f"  {run['run']}: ready {run['start_s']} s, stop {run['stop_s']} s, load {run['load1']}; "
                       f"{phases}" + (f"; stop: {stop}" if stop else ""))
        out.append(f"  per-pair ratios A/B: {boot.get('pair_ratios')}; limapy's own time per start (launch to "
                   f"QEMU running + host-agent ready to CLI return): {boot.get('limapy_own_s')} s")
    clone = extra.get("clone")
    if clone and clone.get("runs"):
        out += ["", "clone runs; seconds from `limapy start`:"]
        for run in clone["runs"]:
            out.append(f"  {run['run']}: ready {run['start_s']} s; "
                       + ", ".join(f"{k} {v}" for k, v in run["phases_s"].items()))
        for name, phases in clone.get("three_phases_s", {}).items():
            out.append(f"  three together, {name}: " + ", ".join(f"{k} {v}" for k, v in phases.items()))
        out.append(f"  the source's resume afterwards: {clone.get('source_resume_s')} s")
    return "\n".join(out)
