"""The QEMU driver: QEMU run directly, one process per instance, owned by the instance's host agent.

    facts.gather (reads)  ->  planner.plan (pure)  ->  materialize (writes)  ->  machine.launch (runs)

The QEMU knowledge itself (argv, firmware, host probing, QMP, swtpm) lives in limapy.qemu; this package
composes it into the limapy.driver seam.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.driver import Fetched, Say, Snapshot
from limapy.driver.layout import lay_out
from limapy.driver.plan import BootPlan, Sidecar
from limapy.driver.qemu import facts, machine, planner
from limapy.driver.qemu.materialize import materialize as _materialize
from limapy.driver.sidecars import stop_leftovers
from limapy.instance import pids, store

log = logging.getLogger("limapy.driver.qemu")


#: More virtiofs mounts than any instance has: leftovers are looked for at each index up to this.
MAX_VIRTIOFS = 64


def leftover_sidecars(inst: store.Instance) -> tuple[Sidecar, ...]:
    """Every sidecar a boot of `inst` may have started, to stop after a crash (found by pid file and marks)."""
    found = [planner.swtpm_sidecar(inst, "swtpm")]
    for i in range(MAX_VIRTIOFS):
        if inst.virtiofsd_pid(i).exists() or inst.virtiofsd_sock(i).exists():
            found.append(planner.virtiofsd_sidecar(inst, i, []))
    return tuple(found)


class QemuDriver:
    name = "qemu"

    def check(self, spec: Spec, connect: str | None = None) -> None:
        """swtpm for `tpm: true`; a display and static forwards QEMU can serve on 127.0.0.1 only."""
        from limapy.qemu import cmdline

        if spec.tpm:
            from limapy.qemu.tpm import find_swtpm

            find_swtpm()
        cmdline.display_arg(spec)
        cmdline.static_forwards(spec)

    def adapt(self, spec: Spec) -> Spec:
        return spec

    def remove(self, inst: store.Instance) -> None:
        pass  # everything is in the instance dir

    def create(self, tmp: Path, spec: Spec, fetched: Fetched, say: Say) -> None:
        lay_out(tmp, fetched, say)

    def plan(self, inst: store.Instance, spec: Spec) -> BootPlan:
        return planner.plan(inst, spec, facts.gather(inst, spec))

    def materialize(self, inst: store.Instance, spec: Spec, plan: BootPlan) -> None:
        _materialize(inst, spec, plan)

    def launch(self, inst: store.Instance, plan: BootPlan) -> machine.QemuMachine:
        return machine.launch(inst, plan)

    def emulated(self, spec: Spec) -> bool:
        from limapy.qemu import host

        probe = host.HostProbe()
        try:
            accel, _ = host.choose_accel(spec.arch, host.normalize_arch(probe.machine), probe)
        except LimapyError:
            return True
        return accel == "tcg"

    def pid(self, inst: store.Instance) -> int | None:
        """QEMU of `inst`, when `qemu.pid` names it (its command line names the instance and its pid file)."""
        return pids.live(inst.qemu_pid, pids.qemu_marks(inst.name, inst.qemu_pid))

    def stop(self, inst: store.Instance, timeout: float) -> bool:
        pid = self.pid(inst)
        clean = True
        if pid is not None:
            from limapy.qemu.qmp import QMP, QMPError

            clean = False
            try:
                with QMP.connect(inst.qmp_sock, timeout=5.0) as qmp:
                    qmp.system_powerdown()
                clean = pids.wait_gone(pid, timeout)
            except QMPError as e:
                log.warning("QMP unreachable (%s); stopping QEMU", e.message)
            if not clean:
                machine.hard_stop(inst, pid)
        stop_leftovers(leftover_sidecars(inst))
        machine.remove_runtime_files(inst)
        return clean

    def force_stop(self, inst: store.Instance) -> None:
        pid = self.pid(inst)
        if pid is not None:
            machine.hard_stop(inst, pid, quit_timeout=5.0)
        stop_leftovers(leftover_sidecars(inst))
        machine.remove_runtime_files(inst)

    def suspend(self, inst: store.Instance) -> None:
        from limapy.driver.qemu.suspend import save

        pid = self.pid(inst)
        if pid is None:
            raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
        save(inst, pid, self.name)

    def clone_suspended(self, src: store.Instance, new: store.Instance, final_dir: Path, say: Say) -> None:
        from limapy.driver.qemu import suspendclone

        suspendclone.clone(src, new, final_dir, say)

    def screenshot(self, inst: store.Instance, out: Path) -> None:
        from limapy.qemu.qmp import QMP

        if self.pid(inst) is None:
            raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
        with QMP.connect(inst.qmp_sock, timeout=5.0) as qmp:
            qmp.screendump(out.resolve())

    def console_paths(self, inst: store.Instance) -> Mapping[str, Path]:
        return {"serial": inst.serial_log, "qemu": inst.qemu_stderr_log, "hostagent": inst.ha_stderr_log}

    def snapshot(self, inst: store.Instance, action: str, tag: str) -> None:
        from limapy.driver.qemu import snapshots

        snapshots.run(inst, action, tag, running=self.pid(inst) is not None)

    def snapshots(self, inst: store.Instance) -> list[Snapshot]:
        from limapy.driver.qemu import snapshots

        return snapshots.listed(inst)


DRIVER = QemuDriver()
