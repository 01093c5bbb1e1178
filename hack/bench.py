#!/usr/bin/env python3
"""Benchmark limapy against the floor each operation is compared with, measured in the same run.

    hack/bench.py [--json] [--only cli,create,iso,boot,...] [--repeat N] [--pairs N] [--template YAML]

Rows (group: what is measured / the floor it is compared against):
  cli     `limapy --help`, `limapy validate templates/default.yaml`, `limapy list` with 20 and 200 stopped
          instances, `limapy shell NAME true` until it execs ssh / `python -c pass` with the same
          interpreter (median of --repeat fresh processes; hack/bench_cli.py)
  create  `limapy create` from a 64 MiB image / `qemu-img create` of the same overlay; from a 2 GiB image /
          the 64 MiB create (creation must not scale with the image); each on first use (a new image file, an
          empty download cache; no digest); the instance dir size (du) / the image
  iso     NoCloud seed and Windows answer ISO built in-process (after a warm-up) / writing the same files
          as an ISO without rendering them
  boot    `limapy start` of a fresh instance until it returns READY / booting the very argv
          the driver planned (hack/prepare.py), with its seed and the same fresh overlay, straight with QEMU
          until `ssh -F <dir>/ssh.config lima-<name> cat /run/lima-boot-done` answers (polled like the
          host agent); runs alternate A B A B (--pairs pairs) to cancel drift; medians.
          `limapy stop` of the ready instance / QMP system_powerdown until QEMU exits.
          (`start` and `stop` are accepted as names of this group.)
  boot-uefi, boot-aarch64  the same start row for the UEFI x86_64 image and the aarch64 image
          (hack/build-test-image.sh --boot uefi / --arch aarch64); aarch64 runs under TCG, several times slower
  resume  `limapy start` of a suspended instance until READY (a /dev/shm mark proves the resume) / the same
          instance's cold start until READY, alternately (--pairs pairs); `limapy suspend` of it
  clone   `limapy start` of a clone of the suspended test guest until READY (its own hostname, the /dev/shm mark
          kept) / the same guest's cold start until READY (--pairs pairs); three clones started together, the last
          one's READY / the same cold start; the source resumes afterwards (hack/bench_clone.py)
  shares  reading a 64 MiB file in the guest through each mount type / the same read on the host;
          an automatic port forward answering on the host after the guest listens / a static (hostfwd) one

Everything runs in a private LIMAPY_HOME under /tmp that is removed at the end (--keep keeps it). limapy's
bytecode is brought up to date first (compileall), as an installed wheel's is.
Progress goes to stderr; the table (or with --json one JSON object) to stdout. Exit 1 when a row failed
to measure, 0 otherwise (a missed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"

if __name__ == "__main__" and VENV_PY.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from benchlib import (  # noqa: E402
    Row,
    check,
    du_kib,
    limapy_argv,
    machine_info,
    median,
    qemu_img,
    say,
    table,
    timed,
)

GROUPS = ("cli", "create", "iso", "boot", "boot-uefi", "boot-aarch64", "resume", "clone", "shares")
ALIASES = {"start": "boot", "stop": "boot"}


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
        from bench_cli import bench_cli

        bench_cli(self)

    # -- create --------------------------------------------------------------------------------------------
    def bench_create(self) -> None:
        img64 = self.work / "img64.qcow2"
        img2g = self.work / "img2g.qcow2"
        t64 = self.image_template(img64, "img64")
        t2g = self.image_template(img2g, "img2g")
        floor: list[float] = []
        s64: list[float] = []
        s2g: list[float] = []
        overlay = self.work / "overlay.qcow2"
        dir_kib = 0.0

        def fresh(img: Path, size: str) -> None:
            """First use: a new file (new inode and ctime, so nothing remembered by stat applies) and an empty
            download cache. Preallocated, so it really is that big: any copy or hash of it would show."""
            img.unlink(missing_ok=True)
            qemu_img("create", "-q", "-f", "qcow2", "-o", "preallocation=falloc", str(img), size)
            shutil.rmtree(Path(self.env["LIMAPY_CACHE_DIR"]) / "download", ignore_errors=True)

        def one(tmpl: Path, name: str) -> float:
            dt, cp = self.lp("create", "--name", name, str(tmpl))
            check(cp, f"limapy create {tmpl.name}")
            return dt * 1000

        fresh(img64, "64M")
        one(t64, "warm")  # warm-up: page cache, the template's validate memo and schema verdict
        shutil.rmtree(self.home / "warm")
        for i in range(self.repeat):
            fresh(img64, "64M")
            overlay.unlink(missing_ok=True)
            t0 = time.perf_counter()
            qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(img64), str(overlay), "4G")
            floor.append((time.perf_counter() - t0) * 1000)
            s64.append(one(t64, f"c64-{i}"))
            fresh(img2g, "2G")
            s2g.append(one(t2g, f"c2g-{i}"))
            if i == 0:
                dir_kib = du_kib(self.home / f"c2g-{i}")
            shutil.rmtree(self.home / f"c64-{i}")
            shutil.rmtree(self.home / f"c2g-{i}")
        m64 = median(s64)
        first = "first use: a new file, an empty download cache"
        self.rows += [
            Row("create.64m", "create", "limapy create (64 MiB image, first use)", "ms", m64, median(floor),
                "qemu-img create of the overlay", samples=s64, floor_samples=floor, note=first),
            Row("create.2g", "create", "limapy create (2 GiB image, first use)", "ms", median(s2g), m64,
                "limapy create (64 MiB image)", target="ratio<=1.5", samples=s2g, floor_samples=s64, note=first),
            Row("create.dir", "create", "instance dir size (2 GiB image)", "KiB", dir_kib, du_kib(img2g),
                "the image (du)", target="ratio<=0.01", note="a qcow2 overlay, never a copy"),
        ]

    # -- iso -----------------------------------------------------------------------------------------------
    def bench_iso(self) -> None:
        from limapy.base.iso import write_iso_file
        from limapy.config import load_config
        from limapy.guest.linux import seed as linux
        from limapy.guest.windows import answer as windows

        n = max(20, self.repeat * 5)
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBe bench"
        inst_dir = self.work / "isoinst"
        inst_dir.mkdir(exist_ok=True)
        out = self.work / "out.iso"
        lcfg = load_config(self.template or str(ROOT / "templates/default.yaml"), name="bench",
                           instance_dir=inst_dir).spec
        wcfg = load_config(str(ROOT / "templates/windows.yaml"), name="win", instance_dir=inst_dir).spec
        seed_kw: dict[str, Any] = dict(name="bench", iid="iid-bench", ssh_pubkeys=[key], mac="52:55:55:12:34:56")
        win_kw: dict[str, Any] = dict(name="win", arch="x86_64", password="Bench-Passw0rd.x", ssh_pubkeys=[key],
                                      image_index=None, image_name=None, is_server=False)
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
        from bench_boot import bench_boot

        bench_boot(self)

    def bench_boot_uefi(self) -> None:
        from bench_boot import bench_boot

        bench_boot(self, "boot-uefi")

    def bench_boot_aarch64(self) -> None:
        from bench_boot import bench_boot

        bench_boot(self, "boot-aarch64")

    def bench_resume(self) -> None:
        from bench_resume import bench_resume

        bench_resume(self)

    def bench_clone(self) -> None:
        from bench_clone import bench_clone

        bench_clone(self)

    # -- shares ----------------------------------------------------------------------------------------------
    def bench_shares(self) -> None:
        from bench_shares import bench_shares

        bench_shares(self)


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
    # limapy's bytecode up to date first, as an installed wheel's is: with PYTHONDONTWRITEBYTECODE set (as here),
    # a module edited since hack/setup.sh compiled it is compiled again at every start (`shell` until exec took
    # 2.5x the instructions that way), which would be measured instead of limapy
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "limapy")], capture_output=True)
    machine = machine_info()
    home = Path(tempfile.mkdtemp(prefix="lpb-", dir="/tmp"))
    bench = Bench(home, args.repeat, args.pairs, args.template)
    runners: dict[str, tuple[Callable[[], None], list[tuple[str, str, str]]]] = {
        "cli": (bench.bench_cli, [("cli.help", "limapy --help", "ms"), ("cli.validate", "limapy validate", "ms"),
                                  ("cli.list20", "limapy list (20)", "ms"), ("cli.list200", "limapy list (200)", "ms"),
                                  ("cli.shell", "limapy shell NAME true", "ms")]),
        "create": (bench.bench_create, [("create.64m", "limapy create (64 MiB)", "ms"),
                                        ("create.2g", "limapy create (2 GiB)", "ms"),
                                        ("create.dir", "instance dir size", "KiB")]),
        "iso": (bench.bench_iso, [("iso.seed", "NoCloud seed ISO", "ms"), ("iso.answer", "Windows answer ISO", "ms")]),
        "boot": (bench.bench_boot, [("boot.start", "limapy start until READY", "s"),
                                    ("boot.own", "limapy's own time per start", "s"),
                                    ("boot.stop", "limapy stop", "s")]),
        "boot-uefi": (bench.bench_boot_uefi, [("boot-uefi.start", "limapy start until READY (UEFI)", "s")]),
        "boot-aarch64": (bench.bench_boot_aarch64, [("boot-aarch64.start", "limapy start (aarch64)", "s")]),
        "resume": (bench.bench_resume, [("resume.start", "limapy start of a suspended instance", "s"),
                                        ("resume.suspend", "limapy suspend", "s")]),
        "clone": (bench.bench_clone, [("clone.resume", "limapy start of a suspended clone", "s"),
                                      ("clone.three", "limapy start of 3 clones together", "s")]),
        "shares": (bench.bench_shares, [("mount.virtiofs", "read through virtiofs", "ms"),
                                        ("mount.reverse-sshfs", "read through reverse-sshfs", "ms"),
                                        ("forward.latency", "automatic port forward", "s")]),
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
        if set(groups) - {"cli", "create", "iso"}:  # never leave a guest running
            clones = ("bc1", "bc2", "bc3", *(f"bcp{i}" for i in range(args.pairs)))
            for name in ("bs", "bu", "ba", "br", "bc", *clones, "m-virtiofs", "m-reversesshfs", "m-9p"):
                subprocess.run([*bench.limapy, "stop", "-f", name], env=bench.env, capture_output=True)
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
