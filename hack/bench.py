#!/usr/bin/env python3
"""Benchmark limapy against the floor each operation is compared with, measured in the same run.

    hack/bench.py [--json] [--only cli,create,iso,boot] [--repeat N] [--pairs N] [--template YAML]

Rows (group: what is measured / the floor it is compared against):
  cli     cold `limapy --help`, `limapy validate templates/default.yaml`, `limapy list` with 20 stopped
          instances / `python -c pass` with the same interpreter (median of --repeat fresh processes)
  create  `limapy create` from a 64 MiB image / `qemu-img create` of the same overlay; from a 2 GiB image /
          the 64 MiB create (creation must not scale with the image); the instance dir size (du) / the image
  iso     NoCloud seed and Windows answer ISO built in-process (after a warm-up) / writing the same files
          as an ISO without rendering them
  boot    `limapy start` of a fresh instance until it returns READY / booting the very argv
          `limapy start --dry-run` printed, with its seed and the same fresh overlay, straight with QEMU
          until `ssh -F <dir>/ssh.config lima-<name> cat /run/lima-boot-done` answers (polled like the
          host agent); runs alternate A B A B (--pairs pairs) to cancel drift; medians.
          `limapy stop` of the ready instance / QMP system_powerdown until QEMU exits.
          (`start` and `stop` are accepted as names of this group.)

Everything runs in a private LIMAPY_HOME under /tmp that is removed at the end (--keep keeps it).
Progress goes to stderr; the table (or with --json one JSON object) to stdout. Exit 1 when a row failed
to measure, 0 otherwise (a missed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"

if __name__ == "__main__" and VENV_PY.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])

sys.path.insert(0, str(ROOT))

GROUPS = ("cli", "create", "iso", "boot")
ALIASES = {"start": "boot", "stop": "boot"}
LIST_INSTANCES = 20
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
    target: str = ""  # "ratio<=1.05", "value<150"; empty: informational
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
        if self.error or self.value is None:
            return False
        if not self.target:
            return None
        kind, op, limit = re.fullmatch(r"(ratio|value)(<=|<)([\d.]+)", self.target).groups()  # type: ignore[union-attr]
        x = self.ratio if kind == "ratio" else self.value
        if x is None:
            return False
        return x <= float(limit) if op == "<=" else x < float(limit)

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


class Bench:
    def __init__(self, home: Path, repeat: int, pairs: int, template: str | None) -> None:
        self.home = home
        self.work = home / "_bench"
        self.work.mkdir(parents=True, exist_ok=True)
        self.repeat = repeat
        self.pairs = pairs
        self.template = template
        self.env = dict(os.environ)
        self.env["LIMAPY_HOME"] = str(home)
        self.env["LIMAPY_CACHE_DIR"] = str(home / "_cache")
        self.env.pop("LIMAPY_DEBUG", None)
        os.environ.update(LIMAPY_HOME=self.env["LIMAPY_HOME"], LIMAPY_CACHE_DIR=self.env["LIMAPY_CACHE_DIR"])
        self.limapy = limapy_argv()
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}

    def lp(self, *args: str, timeout: float = 120.0) -> tuple[float, subprocess.CompletedProcess[bytes]]:
        return timed([*self.limapy, *args], self.env, timeout=timeout)

    def failed(self, group: str, ids: Sequence[tuple[str, str, str]], err: Exception) -> None:
        say(f"{group}: FAILED: {err}")
        for rid, label, unit in ids:
            self.rows.append(Row(rid, group, label, unit, None, None, "", error=str(err)))

    # -- cli -----------------------------------------------------------------------------------------------
    def tiny_image(self) -> Path:
        img = self.work / "tiny.qcow2"
        if not img.exists():
            qemu_img("create", "-q", "-f", "qcow2", str(img), "16M")
        return img

    def image_template(self, image: Path, name: str) -> Path:
        t = self.work / f"{name}.yaml"
        t.write_text(
            f"# bench template\nimages:\n- location: {json.dumps(str(image))}\n  arch: x86_64\n"
            "cpus: 1\nmemory: 512MiB\ndisk: 4GiB\nmounts: []\n"
        )
        return t

    def bench_cli(self) -> None:
        from limapy.ops.create import create

        tmpl = self.image_template(self.tiny_image(), "tiny")
        for i in range(LIST_INSTANCES):
            create(str(tmpl), name=f"list{i:02d}")
        cmds = {
            "cli.help": ("limapy --help", ["--help"]),
            "cli.validate": ("limapy validate templates/default.yaml",
                             ["validate", str(ROOT / "templates/default.yaml")]),
            "cli.list20": (f"limapy list ({LIST_INSTANCES} stopped instances)", ["list"]),
        }
        floor_argv = [sys.executable, "-c", "pass"]
        samples: dict[str, list[float]] = {k: [] for k in cmds}
        floor: list[float] = []
        # one warm-up of each (page cache, the schema digest cache), then interleaved runs
        timed(floor_argv, self.env)
        for _, args in cmds.values():
            _, cp = self.lp(*args)
            check(cp, f"limapy {' '.join(args)}")
        _, cp = self.lp("list", "--json")
        n = len([ln for ln in cp.stdout.splitlines() if ln.strip()])
        if n != LIST_INSTANCES:
            raise RuntimeError(f"limapy list --json shows {n} instances, expected {LIST_INSTANCES}")
        for _ in range(self.repeat):
            floor.append(timed(floor_argv, self.env)[0] * 1000)
            for key, (_, args) in cmds.items():
                dt, cp = self.lp(*args)
                check(cp, f"limapy {' '.join(args)}")
                samples[key].append(dt * 1000)
        targets = {"cli.help": "value<150", "cli.validate": "value<150", "cli.list20": ""}
        for key, (label, _) in cmds.items():
            self.rows.append(Row(
                key, "cli", label, "ms", median(samples[key]), median(floor), "python -c pass",
                target=targets[key], samples=samples[key], floor_samples=floor,
            ))
        for i in range(LIST_INSTANCES):
            shutil.rmtree(self.home / f"list{i:02d}", ignore_errors=True)

    # -- create --------------------------------------------------------------------------------------------
    def bench_create(self) -> None:
        img64 = self.work / "img64.qcow2"
        img2g = self.work / "img2g.qcow2"
        # preallocated, so the files really are 64 MiB and 2 GiB: any copy or hash of them would show
        qemu_img("create", "-q", "-f", "qcow2", "-o", "preallocation=falloc", str(img64), "64M")
        qemu_img("create", "-q", "-f", "qcow2", "-o", "preallocation=falloc", str(img2g), "2G")
        t64 = self.image_template(img64, "img64")
        t2g = self.image_template(img2g, "img2g")
        floor: list[float] = []
        s64: list[float] = []
        s2g: list[float] = []
        overlay = self.work / "overlay.qcow2"
        dir_kib = 0.0

        def one(tmpl: Path, name: str) -> float:
            dt, cp = self.lp("create", "--name", name, str(tmpl))
            check(cp, f"limapy create {tmpl.name}")
            return dt * 1000

        one(t64, "warm")  # warm-up
        shutil.rmtree(self.home / "warm")
        for i in range(self.repeat):
            overlay.unlink(missing_ok=True)
            t0 = time.perf_counter()
            qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(img64), str(overlay), "4G")
            floor.append((time.perf_counter() - t0) * 1000)
            s64.append(one(t64, f"c64-{i}"))
            s2g.append(one(t2g, f"c2g-{i}"))
            if i == 0:
                dir_kib = du_kib(self.home / f"c2g-{i}")
            shutil.rmtree(self.home / f"c64-{i}")
            shutil.rmtree(self.home / f"c2g-{i}")
        m64 = median(s64)
        self.rows += [
            Row("create.64m", "create", "limapy create (64 MiB image)", "ms", m64, median(floor),
                "qemu-img create of the overlay", samples=s64, floor_samples=floor),
            Row("create.2g", "create", "limapy create (2 GiB image)", "ms", median(s2g), m64,
                "limapy create (64 MiB image)", target="ratio<=1.5", samples=s2g, floor_samples=s64),
            Row("create.dir", "create", "instance dir size (2 GiB image)", "KiB", dir_kib, du_kib(img2g),
                "the image (du)", target="ratio<=0.01", note="a qcow2 overlay, never a copy"),
        ]

    # -- iso -----------------------------------------------------------------------------------------------
    def bench_iso(self) -> None:
        from limapy.cidata import linux, windows
        from limapy.config import load_config
        from limapy.iso import write_iso_file

        n = max(20, self.repeat * 5)
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBe bench"
        inst_dir = self.work / "isoinst"
        inst_dir.mkdir(exist_ok=True)
        out = self.work / "out.iso"
        lcfg = load_config(self.template or str(ROOT / "templates/default.yaml"), name="bench",
                           instance_dir=inst_dir).cfg
        wcfg = load_config(str(ROOT / "templates/windows.yaml"), name="win", instance_dir=inst_dir).cfg
        seed_kw: dict[str, Any] = dict(name="bench", instance_dir=inst_dir, iid="iid-bench", ssh_pubkeys=[key],
                                       mac="52:55:55:12:34:56")
        win_kw: dict[str, Any] = dict(name="win", arch="x86_64", password="Bench-Passw0rd.x", ssh_pubkeys=[key],
                                      image_index=None, image_name=None, is_server=False, virtio_win=False)
        seed_files = linux.build_seed(lcfg, **seed_kw)
        win_files = windows.build_answer_files(wcfg, **win_kw)
        cases: list[tuple[str, str, Callable[[], None], Callable[[], None]]] = [
            ("iso.seed", "NoCloud seed ISO (build_seed + write_seed_iso)",
             lambda: linux.write_seed_iso(out, lcfg, **seed_kw),
             lambda: write_iso_file(out, seed_files, linux.LABEL, joliet=True, rock_ridge=True,
                                    modes=linux.seed_modes(seed_files))),
            ("iso.answer", "Windows answer ISO (write_answer_iso)",
             lambda: windows.write_answer_iso(out, wcfg, **win_kw),
             lambda: write_iso_file(out, win_files, windows.LABEL, joliet=True, rock_ridge=False)),
        ]
        for rid, label, fn, floor_fn in cases:
            fn()
            floor_fn()  # warm-up: imports, template compilation
            s: list[float] = []
            f: list[float] = []
            for _ in range(n):
                t0 = time.perf_counter()
                floor_fn()
                t1 = time.perf_counter()
                fn()
                t2 = time.perf_counter()
                f.append((t1 - t0) * 1000)
                s.append((t2 - t1) * 1000)
            self.rows.append(Row(rid, "iso", label, "ms", median(s), median(f), "the same files as an ISO, unrendered",
                                 samples=s, floor_samples=f, note=f"in-process, median of {n}"))

    # -- boot ----------------------------------------------------------------------------------------------
    def bench_boot(self) -> None:
        from limapy.hostagent import PROBE_INTERVAL, READY_POLL

        tmpl = self.template or test_image_template()
        name = "bs"
        inst = self.home / name
        _, cp = self.lp("create", "--name", name, tmpl, timeout=600)
        check(cp, "limapy create (test image)")
        _, cp = self.lp("start", "--dry-run", name)
        check(cp, "limapy start --dry-run")
        argv = shlex.split(cp.stdout.decode().strip().splitlines()[-1])
        pristine = self.work / "pristine"
        pristine.mkdir(exist_ok=True)
        saved = ("disk", "cidata.iso", "ssh.config")
        for f in saved:
            shutil.copy2(inst / f, pristine / f)
        port = int(re.search(r"^\s*Port\s+(\d+)", (inst / "ssh.config").read_text(), re.M).group(1))  # type: ignore[union-attr]
        self.extra["boot"] = {"argv": argv, "probe_interval_s": PROBE_INTERVAL, "runs": []}
        a_start: list[float] = []
        b_start: list[float] = []
        a_stop: list[float] = []
        b_stop: list[float] = []

        def keep_logs(run: str) -> None:  # for --keep: the guest's own timeline of each run
            for f in ("serial.log", "ha.stdout.log", "ha.stderr.log") if run.startswith("A") else ("serial.log",):
                if (inst / f).exists():
                    shutil.copy2(inst / f, self.work / f"{run}.{f}")

        def restore(with_seed: bool) -> None:
            for f in ("qemu.pid", "qmp.sock", "serial.sock", "serial.log", "ha.pid", "ssh.sock"):
                (inst / f).unlink(missing_ok=True)
            for f in saved if with_seed else ("disk",):
                shutil.copy2(pristine / f, inst / f)

        for i in range(self.pairs):
            # A: limapy
            restore(with_seed=False)
            load0 = os.getloadavg()[0]
            t_wall = time.time()
            dt, cp = self.lp("start", name, timeout=BOOT_TIMEOUT + 30)
            check(cp, "limapy start")
            if b"READY" not in cp.stderr + cp.stdout:
                raise RuntimeError("limapy start returned without READY")
            phases = ha_phases(inst / "ha.stdout.log", t_wall, t_wall + dt)
            keep_logs(f"A{i + 1}")
            ds, cp = self.lp("stop", name, timeout=300)
            check(cp, "limapy stop")
            a_start.append(dt)
            a_stop.append(ds)
            self.extra["boot"]["runs"].append({"run": f"A{i + 1}", "start_s": round(dt, 2), "stop_s": round(ds, 2),
                                               "load1": round(load0, 2), "phases_s": phases})
            say(f"A{i + 1} limapy start {dt:.1f} s, stop {ds:.2f} s; phases {phases}")
            # B: the same argv straight with QEMU
            restore(with_seed=True)
            load0 = os.getloadavg()[0]
            dt, first_ssh, ds = direct_boot(argv, inst, name, port, PROBE_INTERVAL, READY_POLL)
            keep_logs(f"B{i + 1}")
            b_start.append(dt)
            b_stop.append(ds)
            self.extra["boot"]["runs"].append({"run": f"B{i + 1}", "start_s": round(dt, 2), "stop_s": round(ds, 2),
                                               "load1": round(load0, 2), "phases_s": {"ssh": round(first_ssh, 2)}})
            say(f"B{i + 1} direct QEMU {dt:.1f} s (first SSH {first_ssh:.1f} s), powerdown {ds:.2f} s")
        pair_ratios = [a / b for a, b in zip(a_start, b_start, strict=True)]
        own = [r["phases_s"].get("booting", 0.0) + r["start_s"] - r["phases_s"].get("ready", r["start_s"])
               for r in self.extra["boot"]["runs"] if r["run"].startswith("A")]
        self.extra["boot"]["pair_ratios"] = [round(x, 3) for x in pair_ratios]
        self.extra["boot"]["limapy_own_s"] = [round(x, 2) for x in own]
        self.rows += [
            Row("boot.start", "boot", "limapy start until READY (test image)", "s", median(a_start), median(b_start),
                "the dry-run argv with QEMU until boot-done over SSH", target="ratio<=1.05",
                samples=a_start, floor_samples=b_start, note=f"{self.pairs} A/B pairs"),
            Row("boot.own", "boot", "limapy's own time per start (outside the guest)", "s", median(own),
                median(b_start), "the direct boot", target="ratio<=0.05", samples=own,
                note="launch to QEMU running + host agent ready to CLI return; immune to the guest's noise"),
            Row("boot.stop", "boot", "limapy stop (graceful) of a ready guest", "s", median(a_stop), median(b_stop),
                "QMP system_powerdown until QEMU exits", samples=a_stop, floor_samples=b_stop),
        ]


def test_image_template() -> str:
    cp = subprocess.run([str(ROOT / "hack" / "build-test-image.sh")], capture_output=True, text=True, timeout=1800)
    if cp.returncode != 0 or not cp.stdout.strip():
        raise RuntimeError(f"hack/build-test-image.sh failed: {cp.stderr.strip()[-300:]}")
    return cp.stdout.strip().splitlines()[-1]


def ha_phases(log: Path, t_start: float, t_end: float) -> dict[str, float]:
    """Seconds from `limapy start` to each host-agent event (first of each phase), and to its return."""
    out: dict[str, float] = {}
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            ev = json.loads(line)
            t = datetime.datetime.fromisoformat(ev["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        phase = str(ev.get("phase") or "")
        if phase and phase not in out:
            out[phase] = round(t - t_start, 2)
    out["returned"] = round(t_end - t_start, 2)
    return out


def qmp(sock: Path, command: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock))
        f = s.makefile("rwb")
        f.readline()  # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            while True:  # skip events until the reply
                reply = json.loads(f.readline() or b"{}")
                if "return" in reply or "error" in reply or not reply:
                    break


def direct_boot(
    argv: list[str], inst: Path, name: str, port: int, interval: float, ready_poll: float
) -> tuple[float, float, float]:
    """(launch to boot-done, launch to first SSH answer, powerdown to exit) of the argv run straight.

    Polls as the host agent does: every `interval` until SSH answers, then every `ready_poll`."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} of the dry-run is taken; run again")
    probe = [
        "ssh", "-F", str(inst / "ssh.config"), "-o", "ControlMaster=no", "-o", "ControlPath=none",
        "-o", "ConnectTimeout=5", f"lima-{name}", "cat /run/lima-boot-done 2>/dev/null || true",
    ]
    err = open(inst / "direct.stderr.log", "wb")
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    first_ssh = 0.0
    try:
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"QEMU exited ({p.returncode}); see {inst / 'direct.stderr.log'}")
            if time.perf_counter() - t0 > BOOT_TIMEOUT:
                raise RuntimeError(f"direct boot not ready after {BOOT_TIMEOUT:.0f} s")
            try:
                cp = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                time.sleep(interval)
                continue
            if cp.returncode != 255:
                if not first_ssh:
                    first_ssh = time.perf_counter() - t0
                if cp.stdout.strip():
                    ready = time.perf_counter() - t0
                    break
            time.sleep(ready_poll if first_ssh else interval)
        t1 = time.perf_counter()
        qmp(inst / "qmp.sock", "system_powerdown")
        p.wait(timeout=120)
        return ready, first_ssh, time.perf_counter() - t1
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        err.close()


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
        target = r.target.replace("ratio", "").replace("value", "") + (" ms" if r.target.startswith("value") else "")
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
            out.append(f"  {run['run']}: ready {run['start_s']} s, stop {run['stop_s']} s, load {run['load1']}; "
                       f"{phases}")
        out.append(f"  per-pair ratios A/B: {boot.get('pair_ratios')}; limapy's own time per start (launch to "
                   f"QEMU running + host-agent ready to CLI return): {boot.get('limapy_own_s')} s")
    return "\n".join(out)


def parse_only(text: str | None) -> list[str]:
    if not text:
        return list(GROUPS)
    out: list[str] = []
    for part in text.split(","):
        g = ALIASES.get(part.strip(), part.strip())
        if g not in GROUPS:
            raise SystemExit(f"bench: --only: unknown row group {part!r} (use {', '.join(GROUPS)})")
        if g not in out:
            out.append(g)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    ap.add_argument("--only", metavar="ROWS", help=f"comma-separated groups: {','.join(GROUPS)} (default: all)")
    ap.add_argument("--repeat", type=int, default=7, metavar="N", help="runs per CLI/create row (median; default 7)")
    ap.add_argument("--pairs", type=int, default=2, metavar="N", help="A/B boot pairs (default 2)")
    ap.add_argument("--template", help="the guest template to boot (default: hack/build-test-image.sh's)")
    ap.add_argument("--keep", action="store_true", help="keep the private LIMAPY_HOME for inspection")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.pairs < 1:
        ap.error("--repeat and --pairs must be at least 1")
    groups = parse_only(args.only)
    machine = machine_info()
    home = Path(tempfile.mkdtemp(prefix="lpb-", dir="/tmp"))
    bench = Bench(home, args.repeat, args.pairs, args.template)
    runners: dict[str, tuple[Callable[[], None], list[tuple[str, str, str]]]] = {
        "cli": (bench.bench_cli, [("cli.help", "limapy --help", "ms"), ("cli.validate", "limapy validate", "ms"),
                                  ("cli.list20", "limapy list", "ms")]),
        "create": (bench.bench_create, [("create.64m", "limapy create (64 MiB)", "ms"),
                                        ("create.2g", "limapy create (2 GiB)", "ms"),
                                        ("create.dir", "instance dir size", "KiB")]),
        "iso": (bench.bench_iso, [("iso.seed", "NoCloud seed ISO", "ms"), ("iso.answer", "Windows answer ISO", "ms")]),
        "boot": (bench.bench_boot, [("boot.start", "limapy start until READY", "s"),
                                    ("boot.own", "limapy's own time per start", "s"),
                                    ("boot.stop", "limapy stop", "s")]),
    }
    try:
        for g in groups:
            fn, ids = runners[g]
            say(f"{g} ...")
            try:
                fn()
            except Exception as e:
                bench.failed(g, ids, e)
    finally:
        if "boot" in groups:  # never leave a guest running
            subprocess.run([*bench.limapy, "stop", "-f", "bs"], env=bench.env, capture_output=True)
        if args.keep:
            say(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    order = {g: i for i, g in enumerate(GROUPS)}
    rows = sorted(bench.rows, key=lambda r: order[r.group])
    if args.json:
        print(json.dumps({"machine": machine, "rows": [r.as_json() for r in rows], **bench.extra}, indent=2))
    else:
        print(table(machine, rows, bench.extra))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
