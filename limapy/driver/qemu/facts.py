"""What a QEMU boot depends on outside the spec, gathered by reading only: host, firmware, instance files,
free ports, and what the guest OS reads of the instance dir (its media, how far an install got). `start --dry-run`
runs this and the planner, and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from limapy import guest
from limapy.base import netutil
from limapy.base.errors import LimapyError
from limapy.config.model import BootKind, Spec
from limapy.driver import check_ssh_port, suspended
from limapy.guest import smb
from limapy.guest.boot import BootFiles
from limapy.instance import disk, store
from limapy.qemu import firmware, host, virtiofsd


@dataclass(frozen=True)
class Facts:
    host: host.HostFacts
    ssh_port: int
    mac: str
    iid: str
    files: BootFiles
    vars: firmware.VarsPlan | None = None
    swtpm: str | None = None
    virtiofsd: virtiofsd.Virtiofsd | None = None
    smbd: str | None = None  # `mountType: smb` with mounts: the smbd QEMU runs per guest connection
    additional_disks: tuple[Path, ...] = ()
    additional_disk_formats: tuple[str, ...] = ()
    record_base: bool = False
    resume: suspended.Record | None = None  # a saved state to resume from (limapy.driver.suspended)
    discard_state: str = ""  # why a saved state cannot be resumed from


def gather(inst: store.Instance, spec: Spec, *, iid: str | None = None) -> Facts:
    """Everything the planner needs about the host and the instance; writes nothing."""
    store.check_links(inst)  # nothing may later write through a link planted in the instance dir
    facts = host.detect_host(spec.arch)
    host.check_minimum_version(facts, spec.qemu_minimum_version)
    if not inst.disk.exists():
        raise LimapyError(
            f"the disk of `{inst.name}` is missing ({inst.disk})", hint="delete and re-create the instance"
        )
    record = disk.verify_base(inst.base_record, inst.disk, inst.name)
    files = guest.for_spec(spec).boot_files(inst, spec)  # its media, how far an install got
    swtpm = None
    if spec.tpm:
        from limapy.qemu.tpm import find_swtpm

        swtpm = find_swtpm()  # a clear error before anything runs
    vfsd = None
    if spec.mounts_of("virtiofs"):
        vfsd = virtiofsd.find()
        virtiofsd.check_usable(vfsd)
    smbd = None
    if spec.mounts_of("smb"):
        smbd = smb.find_smbd()
        if smbd is None:
            raise LimapyError("smbd not found: `mountType: smb` needs samba on the host",
                              hint="install samba (apt install samba), or set `plain: true` for no mounts")
    vars_plan = None
    if files.kernel is None and spec.boot_kind is not BootKind.BIOS:
        # A Linux guest booted by direct kernel boot needs no UEFI: QEMU's own loader is faster (about 4 s
        # under TCG) and keeps bootindex 0 for the kernel.
        pair = firmware.find_firmware(spec.arch, spec.firmware_images, qemu_binary=facts.qemu_binary)
        vars_plan = firmware.plan_vars(
            pair, spec.arch, padded_code=inst.qemu_efi_code, vars_store=inst.qemu_efi_vars
        )
    adds = tuple(disk.checked_disk_path(d.name) for d in spec.additional_disks)
    record_state, why = suspended.usable(inst, "qemu")
    port = record_state.ssh_port if record_state is not None else check_ssh_port(spec) or netutil.free_port()
    return Facts(
        host=facts,
        ssh_port=port,
        mac=netutil.mac_address(inst.dir),
        iid=iid or f"iid-{int(time.time())}",
        vars=vars_plan,
        swtpm=swtpm,
        virtiofsd=vfsd,
        smbd=smbd,
        additional_disks=adds,
        additional_disk_formats=tuple(disk.attach_format(p, d.name) for p, d in zip(adds, spec.additional_disks,
                                                                                       strict=True)),
        files=files,
        record_base=record,
        resume=record_state,
        discard_state=why,
    )
