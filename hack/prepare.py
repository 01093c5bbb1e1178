#!/usr/bin/env python3
"""`hack/prepare.py NAME`: what `limapy start` does before it launches the machine (the driver's plan, then
materialize), and the plan's argv on stdout, shlex-joined; nothing is booted.

`limapy start --dry-run` writes nothing, so the tests that read the first-boot media a start would write, and
the benchmark that boots the argv straight with QEMU, prepare the instance this way."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from limapy import config, driver
from limapy.instance import store


def main(name: str) -> int:
    inst = store.resolve(name)
    spec = config.instance_spec(inst)
    drv = driver.for_instance(inst)
    plan = drv.plan(inst, spec)
    drv.materialize(inst, spec, plan)
    for notice in plan.notices:
        print(notice, file=sys.stderr)
    print(shlex.join(plan.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
