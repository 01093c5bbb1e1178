"""hack/bench.py's `clone` rows (issue 29): a clone of the suspended test guest, from `limapy start` to READY, against
the same guest's cold `limapy start` to READY in the same run; then three clones started together (`limapy start
c1 c2 c3`), each clone's READY (its host agent's `ready` event) against the same cold start; then the source
resumes. Per pair: cold start of the source, a /dev/shm mark, suspend, clone, start the clone (the mark must be
there: a resume, not a boot), delete the clone, stop the source."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench_boot import ha_phases, test_image_template
from benchlib import BOOT_TIMEOUT, Row, check, median, say

if TYPE_CHECKING:
    from bench import Bench

NAME = "bc"
THREE = ("bc1", "bc2", "bc3")
WAIT = ("--timeout", f"{3 * BOOT_TIMEOUT:.0f}s")


def ready_at(log: Path) -> float:
    """The wall time of the host agent's `ready` event in `log`."""
    for line in log.read_text().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("phase") == "ready":
            return datetime.datetime.fromisoformat(ev["time"]).timestamp()
    raise RuntimeError(f"no ready event in {log}")


def _resumed_clone(self: Bench, name: str, mark: str) -> None:
    _, cp = self.lp("shell", name, "--", "sh", "-c", "cat /dev/shm/bench-mark; hostname", timeout=120)
    check(cp, f"limapy shell {name}")
    if cp.stdout.split() != [mark.encode(), f"lima-{name}".encode()]:
        raise RuntimeError(f"{name} did not resume with its own hostname: {cp.stdout!r}")


def bench_clone(self: Bench) -> None:
    tmpl = self.template or test_image_template()
    inst = self.home / NAME
    _, cp = self.lp("create", "--name", NAME, tmpl, timeout=600)
    check(cp, "limapy create (test image)")
    cold: list[float] = []
    clones: list[float] = []
    runs: list[dict[str, object]] = []
    for i in range(self.pairs):
        t_wall = time.time()
        dt, cp = self.lp("start", NAME, *WAIT, timeout=3 * BOOT_TIMEOUT + 30)
        check(cp, "limapy start (cold)")
        cold.append(dt)
        runs.append({"run": f"cold{i + 1}", "start_s": round(dt, 2),
                     "phases_s": ha_phases(inst / "ha.stdout.log", t_wall, t_wall + dt)})  # fmt: skip
        _, cp = self.lp("shell", NAME, "--", "sh", "-c", f"echo {i} >/dev/shm/bench-mark", timeout=120)
        check(cp, "limapy shell (mark)")
        check(self.lp("suspend", NAME, timeout=600)[1], "limapy suspend")
        clone = f"bcp{i}"
        dc, cp = self.lp("clone", NAME, clone, timeout=300)
        check(cp, "limapy clone (suspended)")
        t_wall = time.time()
        dr, cp = self.lp("start", clone, *WAIT, timeout=3 * BOOT_TIMEOUT + 30)
        check(cp, "limapy start (clone)")
        if b"[resuming]" not in cp.stderr or b"own identity" not in cp.stderr:
            raise RuntimeError(f"the clone did not resume with its own identity: {cp.stderr.decode()[-300:]}")
        _resumed_clone(self, clone, str(i))
        clones.append(dr)
        runs.append({"run": f"clone{i + 1}", "start_s": round(dr, 2), "clone_s": round(dc, 2),
                     "phases_s": ha_phases(self.home / clone / "ha.stdout.log", t_wall, t_wall + dr)})  # fmt: skip
        say(f"pair {i + 1}: cold start {dt:.1f} s, clone {dc:.2f} s, clone's start {dr:.1f} s")
        check(self.lp("delete", "-f", clone, timeout=120)[1], "limapy delete (clone)")
        check(self.lp("stop", NAME, timeout=300)[1], "limapy stop")
    # three together, from a suspended source
    t_wall = time.time()
    dt, cp = self.lp("start", NAME, *WAIT, timeout=3 * BOOT_TIMEOUT + 30)
    check(cp, "limapy start (cold)")
    cold.append(dt)
    _, cp = self.lp("shell", NAME, "--", "sh", "-c", "echo 3 >/dev/shm/bench-mark", timeout=120)
    check(cp, "limapy shell (mark)")
    check(self.lp("suspend", NAME, timeout=600)[1], "limapy suspend")
    for name in THREE:
        check(self.lp("clone", NAME, name, timeout=300)[1], "limapy clone (suspended)")
    t0 = time.time()
    _, cp = self.lp("start", *THREE, *WAIT, timeout=3 * BOOT_TIMEOUT + 60)
    check(cp, "limapy start (three clones)")
    each = [ready_at(self.home / name / "ha.stdout.log") - t0 for name in THREE]
    three = {name: ha_phases(self.home / name / "ha.stdout.log", t0, t0 + max(each)) for name in THREE}
    for name in THREE:
        _resumed_clone(self, name, "3")
    say(f"three clones together: READY after {', '.join(f'{x:.1f}' for x in each)} s")
    for name in THREE:
        check(self.lp("delete", "-f", name, timeout=120)[1], "limapy delete (clone)")
    ds, cp = self.lp("start", NAME, *WAIT, timeout=3 * BOOT_TIMEOUT + 30)
    check(cp, "limapy start (the source, after its clones)")
    if b"[resuming]" not in cp.stderr:
        raise RuntimeError("the source did not resume after its clones")
    check(self.lp("stop", NAME, timeout=300)[1], "limapy stop")
    self.extra["clone"] = {"runs": runs, "three_ready_s": [round(x, 2) for x in each], "three_phases_s": three,
                           "source_resume_s": round(ds, 2)}  # fmt: skip
    floor = median(cold)
    self.rows += [
        Row("clone.resume", "clone", "limapy start of a suspended instance's clone until READY", "s",
            median(clones), floor, "the source's cold start until READY", target="ratio<=0.15", samples=clones,
            floor_samples=cold, note=f"{self.pairs} cold/clone pairs; own hostname, /dev/shm mark kept"),
        Row("clone.three", "clone", "limapy start of 3 clones together: the last one's READY", "s", max(each),
            floor, "the source's cold start until READY", target="ratio<=0.25", samples=each, floor_samples=cold,
            note="each clone's ready event from the command's start; the source resumed afterwards"),
    ]  # fmt: skip
