"""The effects of a QEMU boot plan, in one place: `start` runs this right before it launches QEMU."""

from __future__ import annotations

import logging
from pathlib import Path

from limapy import ssh
from limapy.config.model import Spec
from limapy.driver import media, suspended
from limapy.driver.plan import BootPlan
from limapy.guest import smb
from limapy.instance import chain, disk, store
from limapy.qemu import firmware

log = logging.getLogger("limapy.driver.qemu")


def materialize(inst: store.Instance, spec: Spec, plan: BootPlan) -> None:
    """Disk grown, base recorded, UEFI store made, additional disks claimed, first-boot media, ssh.config."""
    store.check_links(inst)  # nothing below may write through a link planted in the instance dir
    if plan.discard_state:
        suspended.discard(inst)
    if plan.disk is not None and not plan.resume:  # a resumed guest must find its disk as it left it
        if plan.record_base:
            base = chain.base_image(plan.disk)
            if base is not None:
                disk.record_base(inst.base_record, base)
        disk.grow(plan.disk, plan.disk_size)
    if plan.firmware is not None:
        firmware.make_vars(plan.firmware)
    for name in plan.additional_disks:
        disk.claim_additional_disk(name, inst.dir)
    for m in spec.shared_mounts:  # as Lima: a mounted folder that does not exist yet is made
        Path(m.location).mkdir(parents=True, exist_ok=True)
    if plan.smbd:  # the private smbd's smb.conf, script, account (limapy.guest.smb)
        smb.write(inst.smb_dir, smb.shares(spec.mounts_of("smb")), plan.smbd)
    if plan.media is not None:
        media.write(inst, spec, plan.media)
    if plan.rdp_port:
        store.atomic_write(inst.rdp_port_file, f"{plan.rdp_port}\n".encode(), 0o600)
    key_path, _ = store.ensure_user_key()
    ssh.write_ssh_config(inst, spec, key_path, plan.ssh_port)
    log.debug("materialized %s: port %d, accel %s", inst.name, plan.ssh_port, plan.accel)
