"""The QEMU boot plan as a pure function: spec + facts + the instance's file names in, a BootPlan out.

No I/O: every file check and host probe happened in `facts.gather`, so the same inputs always give the same
plan, and golden files pin the argv from a template.
"""

from __future__ import annotations

from pathlib import Path

from limapy import guest
from limapy.config.model import Spec
from limapy.driver import suspended
from limapy.driver.plan import READY_GUEST, BootPlan, Sidecar
from limapy.driver.qemu.facts import Facts
from limapy.guest import smb
from limapy.instance import pids, store
from limapy.qemu import cmdline, tpm, virtiofsd


def swtpm_sidecar(inst: store.Instance, binary: str) -> Sidecar:
    argv = tpm.swtpm_argv(binary, inst.swtpm_dir, inst.swtpm_sock, inst.swtpm_pid, inst.swtpm_log)
    return Sidecar(
        name="swtpm",
        argv=tuple(argv),
        ready=inst.swtpm_sock,
        pidfile=inst.swtpm_pid,
        marks=tuple(tuple(m) for m in pids.swtpm_marks(inst.swtpm_dir)),
        stderr=inst.swtpm_stderr_log,
        state_dir=inst.swtpm_dir,
    )


def virtiofsd_sidecars(inst: store.Instance, spec: Spec, v: virtiofsd.Virtiofsd | None) -> list[Sidecar]:
    """One virtiofsd per virtiofs mount, on the socket QEMU's vhost-user-fs device connects to."""
    if v is None:
        return []
    out = []
    for i, m in enumerate(spec.mounts_of("virtiofs")):
        argv = virtiofsd.argv(v, source=Path(m.location), sock=inst.virtiofsd_sock(i), writable=m.writable)
        out.append(virtiofsd_sidecar(inst, i, argv, f"virtiofsd ({m.location})"))
    return out


def virtiofsd_sidecar(inst: store.Instance, index: int, argv: list[str], name: str = "virtiofsd") -> Sidecar:
    """Mount `index`'s virtiofsd; known by its socket path, which is in the instance dir."""
    sock = inst.virtiofsd_sock(index)
    return Sidecar(
        name=name, argv=tuple(argv), ready=sock, pidfile=inst.virtiofsd_pid(index),
        marks=((f"--socket-path={sock}",),), stderr=inst.virtiofsd_log(index), writes_pidfile=False,
    )  # fmt: skip


def sidecars(inst: store.Instance, spec: Spec, facts: Facts) -> tuple[Sidecar, ...]:
    """The helpers this boot runs beside QEMU, in start order."""
    out = []
    if spec.tpm and facts.swtpm:
        out.append(swtpm_sidecar(inst, facts.swtpm))
    out += virtiofsd_sidecars(inst, spec, facts.virtiofsd)
    return tuple(out)


def plan(inst: store.Instance, spec: Spec, facts: Facts) -> BootPlan:
    f = facts.files
    vp = facts.vars
    os_ = guest.for_spec(spec)
    paths = cmdline.Paths.for_instance(
        inst,
        iso=f.iso,
        virtio_win=f.virtio_win,  # attached when the guest OS's devices have a driver disc
        kernel=f.kernel,
        initrd=f.initrd if f.kernel is not None else None,
        cmdline=f.kernel_cmdline if f.kernel is not None else None,
        fw_code=vp.code if vp is not None else None,
        fw_vars=vp.vars if vp is not None else None,
        additional_disks=facts.additional_disks,
        additional_disk_formats=facts.additional_disk_formats,
        virtiofs_socks=tuple(inst.virtiofsd_sock(i) for i in range(len(spec.mounts_of("virtiofs")))),
        smb_script=inst.smb_dir / smb.SCRIPT if facts.smbd else None,
    )
    argv = cmdline.build_argv(
        spec,
        inst.name,
        paths,
        facts.host,
        ssh_port=facts.ssh_port,
        mac=facts.mac,
        stage=f.stage,
        rdp_port=f.rdp_port,
    )
    notices = [facts.host.accel_notice] if facts.host.accel_notice else []
    if facts.resume is not None:
        # the very machine that was saved (its ports and media included), waiting for the state over QMP
        argv = [*facts.resume.argv, "-incoming", "defer"]
    if facts.discard_state:
        notices.append(suspended.warning(facts.discard_state))
    stage_notice = os_.stage_notice(f.stage)
    if stage_notice:
        notices.append(stage_notice)
    notices += f.notices
    return BootPlan(
        driver="qemu",
        argv=tuple(argv),
        ssh_port=facts.ssh_port,
        user=spec.user.name or "lima",
        readiness=READY_GUEST,
        iid=facts.iid,
        accel=facts.host.accel,
        notices=tuple(notices),
        # a resumed guest keeps its seed
        media=None if facts.resume else os_.first_boot_media(inst, spec, f, iid=facts.iid, mac=facts.mac),
        sidecars=sidecars(inst, spec, facts),
        disk=inst.disk,
        disk_size=spec.disk,
        record_base=facts.record_base,
        firmware=vp,
        additional_disks=tuple(d.name for d in spec.additional_disks),
        stage=None if facts.resume else f.stage,  # no boot prompt to answer in a resumed guest
        rdp_port=f.rdp_port,
        resume=facts.resume is not None,
        discard_state=bool(facts.discard_state),
        devices=os_.devices(spec, f.stage),
        smbd=facts.smbd or "",
    )
