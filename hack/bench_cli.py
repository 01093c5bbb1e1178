"""hack/bench.py's cli rows: the commands people run all day, each against the interpreter floor
(`python -c pass` with the same interpreter), medians of --repeat fresh processes run interleaved.

- cli.help / cli.validate: `limapy --help`, `limapy validate templates/default.yaml` (warm caches: the
  help text and the schema digest, as on a user's second call).
- cli.list20 / cli.list200: `limapy list` with 20 and 200 stopped instances (fresh summaries);
  cli.list20cold: the same after every summary was removed (each instance read in full; informational).
- cli.complete: the completion request bash's Tab after `limapy start list0` makes (typer's script sets
  `_LIMAPY_COMPLETE` and `COMP_WORDS`), answered with the 20 instance names starting so (`start` offers the
  instances that are not running: each one's status is read from its pid files, the costliest completion).
- cli.shell: `limapy shell NAME true` on an instance that looks running (its host agent and QEMU pid
  files name live processes carrying their marks), until limapy execs `ssh`: the `ssh` on PATH is a
  stand-in that exits at once, so the row is limapy's own time plus one exec.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchlib import ROOT, Row, check, median, say, timed

if TYPE_CHECKING:
    from bench import Bench

SMALL, LARGE = 20, 200
STANDIN_SSH = """#!/bin/sh
# hack/bench_cli.py's stand-in for OpenSSH: answers -V like OpenSSH, otherwise exits at once
[ "$1" = "-V" ] && echo "OpenSSH_9.2p1 Debian-2, OpenSSL 3.0 (limapy bench stand-in)" >&2
exit 0
"""


def _fake_running(bench: Bench, name: str) -> list[subprocess.Popen[bytes]]:
    """Make `name` look running to `driver.status`: live processes whose command lines carry the marks
    limapy checks (pids.hostagent_marks / pids.qemu_marks), named by its pid files; an ssh.config port."""
    from limapy.instance import pids

    d = bench.home / name
    sleeper = [sys.executable, "-c", "import time; time.sleep(3600)"]
    agent = subprocess.Popen([*sleeper, *pids.hostagent_args(name, d)])
    qemu = subprocess.Popen([*sleeper, *(a for mark in pids.qemu_marks(name, d / "qemu.pid") for a in mark)])
    (d / "ha.pid").write_text(f"{agent.pid}\n")
    (d / "qemu.pid").write_text(f"{qemu.pid}\n")
    (d / "ssh.config").write_text(f"Host lima-{name}\n  Hostname 127.0.0.1\n  Port 60022\n")
    return [agent, qemu]


def bench_cli(bench: Bench) -> None:
    from limapy.ops.create import create

    tmpl = bench.image_template(bench.tiny_image(), "tiny")
    names = [f"list{i:03d}" for i in range(LARGE)]
    for n in names[:SMALL]:
        create(str(tmpl), name=n)
    # the other 180 as copies of the first (create's own cost is the create rows' business)
    for n in names[SMALL:]:
        shutil.copytree(bench.home / names[0], bench.home / n, symlinks=True)
        (bench.home / n / "limapy-summary.json").unlink(missing_ok=True)
    small_home = bench.home.parent / (bench.home.name + "-small")
    small_home.mkdir(exist_ok=True)
    for n in names[:SMALL]:  # copies, not links: a summary is keyed by its lima.yaml's path
        shutil.copytree(bench.home / n, small_home / n, symlinks=True)
    env_small = {**bench.env, "LIMAPY_HOME": str(small_home)}
    bindir = bench.work / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "ssh").write_text(STANDIN_SSH)
    (bindir / "ssh").chmod(0o755)
    env_shell = {**bench.env, "PATH": f"{bindir}:{bench.env.get('PATH', '')}"}
    sleepers = _fake_running(bench, names[0])
    try:
        _measure(bench, names, env_small, env_shell, small_home)
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        shutil.rmtree(small_home, ignore_errors=True)
        for n in names:
            shutil.rmtree(bench.home / n, ignore_errors=True)


def _measure(bench: Bench, names: list[str], env_small: dict[str, str], env_shell: dict[str, str],
             small_home: Path) -> None:
    lp = bench.limapy
    cmds: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "cli.help": ("limapy --help", ["--help"], bench.env),
        "cli.validate": ("limapy validate templates/default.yaml", ["validate", str(ROOT / "templates/default.yaml")],
                         bench.env),
        "cli.list20": (f"limapy list ({SMALL} stopped instances)", ["list"], env_small),
        "cli.list200": (f"limapy list ({LARGE} stopped instances)", ["list"], bench.env),
        "cli.shell": ("limapy shell NAME true (until ssh runs)", ["shell", names[0], "true"], env_shell),
        # what bash's Tab after `limapy start list0` runs (typer's completion script), 20 instances
        "cli.complete": (f"Tab: limapy start list0<TAB> ({SMALL} instances)", [],
                         {**env_small, "_LIMAPY_COMPLETE": "complete_bash", "COMP_WORDS": "limapy\nstart\nlist0",
                          "COMP_CWORD": "2"}),
    }
    floor_argv = [sys.executable, "-c", "pass"]
    timed(floor_argv, bench.env)
    for label, args, env in cmds.values():  # warm-up: page cache, help/schema/summary/ssh-version caches
        check(timed([*lp, *args], env)[1], label)
    _, cp = timed([*lp, "list", "--json"], bench.env)
    n = len([ln for ln in cp.stdout.splitlines() if ln.strip()])
    if n != len(names):
        raise RuntimeError(f"limapy list --json shows {n} instances, expected {len(names)}")
    _, cp = timed([*lp, *cmds["cli.complete"][1]], cmds["cli.complete"][2])
    if cp.stdout.decode().split() != names[:SMALL]:
        raise RuntimeError(f"the completion request answered {cp.stdout[:200]!r}, not the {SMALL} instance names")
    samples: dict[str, list[float]] = {k: [] for k in (*cmds, "cli.list20cold")}
    floor: list[float] = []
    for _ in range(bench.repeat):
        floor.append(timed(floor_argv, bench.env)[0] * 1000)
        for key, (label, args, env) in cmds.items():
            dt, cp = timed([*lp, *args], env)
            check(cp, label)
            samples[key].append(dt * 1000)
        for n in names[:SMALL]:
            (small_home / n / "limapy-summary.json").unlink(missing_ok=True)
        dt, cp = timed([*lp, "list"], env_small)
        check(cp, "limapy list (cold)")
        samples["cli.list20cold"].append(dt * 1000)
    targets = {"cli.help": "ratio<=4", "cli.validate": "ratio<=4", "cli.list20": "ratio<=6",
               "cli.list200": "ratio<=10", "cli.shell": "ratio<=4,value<=40", "cli.complete": "ratio<=4",
               "cli.list20cold": ""}
    labels = {k: v[0] for k, v in cmds.items()} | {"cli.list20cold": f"limapy list ({SMALL}, no summaries yet)"}
    for key in targets:
        bench.rows.append(Row(
            key, "cli", labels[key], "ms", median(samples[key]), median(floor), "python -c pass",
            target=targets[key], samples=samples[key], floor_samples=floor,
        ))
    say(f"cli: floor {median(floor):.1f} ms")
