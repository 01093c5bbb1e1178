"""hack/bench.py's `resume` rows: `limapy start` of a suspended instance until READY against the same
instance's cold `limapy start` until READY, measured alternately in one run (cold, suspend, resume; --pairs
times). Each resume is checked to be one: a file written to /dev/shm before the suspend must still be there."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bench_boot import ha_phases, test_image_template
from benchlib import BOOT_TIMEOUT, Row, check, median, say

if TYPE_CHECKING:
    from bench import Bench

NAME = "br"
#: limapy's own start timeout (10 min) is too short for a cold boot on a loaded 2-core host.
WAIT = ("--timeout", f"{3 * BOOT_TIMEOUT:.0f}s")


def bench_resume(self: Bench) -> None:
    tmpl = self.template or test_image_template()
    inst = self.home / NAME
    _, cp = self.lp("create", "--name", NAME, tmpl, timeout=600)
    check(cp, "limapy create (test image)")
    cold: list[float] = []
    resumed: list[float] = []
    saves: list[float] = []
    runs: list[dict[str, object]] = []
    for i in range(self.pairs):
        t_wall = time.time()
        dt, cp = self.lp("start", NAME, *WAIT, timeout=3 * BOOT_TIMEOUT + 30)
        check(cp, "limapy start (cold)")
        runs.append({"run": f"cold{i + 1}", "start_s": round(dt, 2), "phases_s": ha_phases(inst / "ha.stdout.log",
                                                                                           t_wall, t_wall + dt)})
        cold.append(dt)
        _, cp = self.lp("shell", NAME, "--", "sh", "-c", f"echo {i} >/dev/shm/bench-mark", timeout=120)
        check(cp, "limapy shell (mark)")
        ds, cp = self.lp("suspend", NAME, timeout=600)
        check(cp, "limapy suspend")
        saves.append(ds)
        t_wall = time.time()
        dr, cp = self.lp("start", NAME, *WAIT, timeout=3 * BOOT_TIMEOUT + 30)
        check(cp, "limapy start (resume)")
        if b"[resuming]" not in cp.stderr:
            raise RuntimeError(f"the start after suspend did not resume: {cp.stderr.decode()[-300:]}")
        _, cp = self.lp("shell", NAME, "--", "cat", "/dev/shm/bench-mark", timeout=120)
        check(cp, "limapy shell (check the mark)")
        if cp.stdout.strip() != str(i).encode():
            raise RuntimeError("the file written to /dev/shm before the suspend is gone: that was a boot")
        resumed.append(dr)
        runs.append({"run": f"resume{i + 1}", "start_s": round(dr, 2), "suspend_s": round(ds, 2),
                     "phases_s": ha_phases(inst / "ha.stdout.log", t_wall, t_wall + dr)})
        say(f"pair {i + 1}: cold start {dt:.1f} s, suspend {ds:.1f} s, resume {dr:.1f} s")
        _, cp = self.lp("stop", NAME, timeout=300)
        check(cp, "limapy stop")
    self.extra["resume"] = {"runs": runs}
    self.rows += [
        Row("resume.start", "resume", "limapy start of a suspended instance until READY", "s", median(resumed),
            median(cold), "the same instance's cold start until READY", target="ratio<=0.15", samples=resumed,
            floor_samples=cold, note=f"{self.pairs} cold/resume pairs; /dev/shm mark kept"),
        Row("resume.suspend", "resume", "limapy suspend of a ready guest (1 GiB)", "s", median(saves),
            median(cold), "the cold start", samples=saves),
    ]
