"""A second engine for the driver seam's tests: it records every call and boots nothing.

Registered with LIMAPY_DRIVER_MODULES=toy=tests.toydriver (and chosen with LIMAPY_DRIVER=toy); each call is
a JSON line in <instance>/toy.calls naming the call and the process that made it. Its "machine" is the host
agent itself: running while <instance>/toy.pid names that host agent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.driver import Fetched, Say, Snapshot
from limapy.driver.plan import READY_NONE, BootPlan
from limapy.instance import pids, store

CALLS = "toy.calls"
PID = "toy.pid"
SNAPSHOTS = "toy.snapshots"


def record(directory: Path, call: str) -> None:
    with open(directory / CALLS, "a") as f:
        f.write(json.dumps({"call": call, "pid": os.getpid()}) + "\n")


class ToyMachine:
    def __init__(self, inst: store.Instance) -> None:
        self.inst = inst
        self.pid = os.getpid()
        (inst.dir / PID).write_text(f"{self.pid}\n")

    def alive(self) -> bool:
        return (self.inst.dir / PID).exists()

    def check(self) -> None:
        pass

    def wait_exit(self, timeout: float) -> bool:
        time.sleep(min(timeout, 0.2))
        return not self.alive()

    def failure(self) -> str:
        return ""

    def disk_allocated(self) -> int:
        return 0

    def send_key(self, key: str) -> None:
        record(self.inst.dir, f"send_key {key}")

    def reset(self) -> None:
        record(self.inst.dir, "reset")

    def request_powerdown(self) -> None:
        record(self.inst.dir, "request_powerdown")

    def shutdown(self, timeout: float) -> bool:
        record(self.inst.dir, "shutdown")
        (self.inst.dir / PID).unlink(missing_ok=True)
        return True


class ToyDriver:
    name = "toy"

    def check(self, spec: Spec, connect: str | None = None) -> None:
        pass

    def adapt(self, spec: Spec) -> Spec:
        return spec

    def remove(self, inst: store.Instance) -> None:
        record(inst.dir, "remove")

    def create(self, tmp: Path, spec: Spec, fetched: Fetched, say: Say) -> None:
        record(tmp, "create")

    def plan(self, inst: store.Instance, spec: Spec) -> BootPlan:
        record(inst.dir, "plan")
        return BootPlan(driver="toy", argv=("toy-machine", inst.name), ssh_port=0, user=spec.user.name,
                        readiness=READY_NONE, iid="iid-toy")

    def materialize(self, inst: store.Instance, spec: Spec, plan: BootPlan) -> None:
        record(inst.dir, "materialize")

    def launch(self, inst: store.Instance, plan: BootPlan) -> ToyMachine:
        record(inst.dir, "launch")
        return ToyMachine(inst)

    def emulated(self, spec: Spec) -> bool:
        return False

    def pid(self, inst: store.Instance) -> int | None:
        return pids.live(inst.dir / PID, pids.hostagent_marks(inst.name, inst.dir))

    def stop(self, inst: store.Instance, timeout: float) -> bool:
        record(inst.dir, "stop")
        (inst.dir / PID).unlink(missing_ok=True)
        return True

    def force_stop(self, inst: store.Instance) -> None:
        record(inst.dir, "force_stop")
        (inst.dir / PID).unlink(missing_ok=True)

    def suspend(self, inst: store.Instance) -> None:
        raise LimapyError("the toy driver cannot suspend")

    def screenshot(self, inst: store.Instance, out: Path) -> None:
        record(inst.dir, "screenshot")
        out.write_bytes(b"toy screen\n")

    def console_paths(self, inst: store.Instance) -> Mapping[str, Path]:
        return {}

    def snapshot(self, inst: store.Instance, action: str, tag: str) -> None:
        record(inst.dir, f"snapshot {action} {tag}")
        tags = [s.tag for s in self.snapshots(inst)]
        tags = [*tags, tag] if action == "create" else [t for t in tags if t != tag]
        (inst.dir / SNAPSHOTS).write_text("".join(t + "\n" for t in tags))

    def snapshots(self, inst: store.Instance) -> list[Snapshot]:
        path = inst.dir / SNAPSHOTS
        tags = path.read_text().split() if path.exists() else []
        return [Snapshot(tag=t, vm_state_size=0, date=0, vm_clock=0.0) for t in tags]


DRIVER = ToyDriver()
