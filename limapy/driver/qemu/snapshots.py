"""Snapshots of a QEMU instance, as Lima takes them: `qemu-img snapshot` on the disk of a stopped instance,
HMP `savevm`/`loadvm`/`delvm` (through QMP's human-monitor-command) on a running one. The snapshot lives in
the instance's qcow2 disk (an overlay: the base image is never written).

A stopped instance's UEFI variable store and TPM state are not in the disk; they are copied beside it
(`snapshots/<tag>/`) and put back on apply, so a Windows guest comes back with the boot entries and TPM
secrets of that moment. A running machine with a UEFI variable store cannot be saved at all (the store is a
raw flash image, which QEMU cannot snapshot): that is refused with the reason, before QEMU is asked.
"""

from __future__ import annotations

import os
import re
import shutil

from limapy import disk, proc, store
from limapy.driver import Snapshot
from limapy.errors import LimapyError, NotFoundError, UsageError

ACTIONS = ("create", "apply", "delete")
#: A tag travels inside an HMP command line: letters, digits and `._-` only, so it is one word there.
TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
SAVE_TIMEOUT = 900.0  # savevm writes the guest's RAM into the disk: minutes for a big guest under TCG
_HMP = {"create": "savevm", "apply": "loadvm", "delete": "delvm"}
_IMG = {"create": "-c", "apply": "-a", "delete": "-d"}


def check_tag(tag: str) -> None:
    if not TAG_RE.fullmatch(tag):
        raise UsageError(f"snapshot tag {tag!r} is invalid: use 1-63 letters, digits, `.`, `_` or `-`")


def listed(inst: store.Instance) -> list[Snapshot]:
    if not inst.disk.exists():
        return []
    out = []
    for s in disk.info(inst.disk).get("snapshots") or []:
        out.append(Snapshot(
            tag=str(s.get("name", "")), vm_state_size=int(s.get("vm-state-size", 0)), date=int(s.get("date-sec", 0)),
            vm_clock=int(s.get("vm-clock-sec", 0)) + int(s.get("vm-clock-nsec", 0)) / 1e9,
        ))  # fmt: skip
    return out


def run(inst: store.Instance, action: str, tag: str, *, running: bool) -> None:
    if action not in ACTIONS:
        raise UsageError(f"unknown snapshot action {action!r}")
    check_tag(tag)
    tags = [s.tag for s in listed(inst)]
    if action == "create" and tag in tags:
        raise LimapyError(f"snapshot `{tag}` of `{inst.name}` already exists", hint="delete it first, or pick a tag")
    if action != "create" and tag not in tags:
        raise NotFoundError(
            f"instance `{inst.name}` has no snapshot `{tag}`", hint=f"`limapy snapshot list {inst.name}`"
        )
    if running:
        _online(inst, action, tag)
    else:
        _offline(inst, action, tag)


def _online(inst: store.Instance, action: str, tag: str) -> None:
    from limapy.qemu.qmp import QMP

    if inst.qemu_efi_vars.exists():
        raise LimapyError(
            f"cannot {action} a snapshot of `{inst.name}` while it runs: its UEFI variable store is a raw flash "
            "image, which QEMU cannot save with the machine",
            hint=f"`limapy stop {inst.name}` first: a stopped instance's snapshot keeps the variable store "
            "(and TPM state) with the disk",
        )
    with QMP.connect(inst.qmp_sock, timeout=SAVE_TIMEOUT) as qmp:
        out = qmp.hmp(f"{_HMP[action]} {tag}").strip()
    if out:  # HMP answers success with nothing, and a failure with its message
        raise LimapyError(f"QEMU could not {action} snapshot `{tag}` of `{inst.name}`: {out}")


def _offline(inst: store.Instance, action: str, tag: str) -> None:
    proc.run([disk.QEMU_IMG, "snapshot", _IMG[action], tag, inst.disk])
    saved = inst.snapshot_files(tag)
    if action == "create":
        _save_state(inst, tag)
    elif action == "apply":
        _restore_state(inst, tag)
    else:
        shutil.rmtree(saved, ignore_errors=True)


def _save_state(inst: store.Instance, tag: str) -> None:
    saved = inst.snapshot_files(tag)
    shutil.rmtree(saved, ignore_errors=True)
    if not inst.qemu_efi_vars.is_file() and not inst.swtpm_dir.is_dir():
        return
    saved.mkdir(mode=0o700, parents=True)
    os.chmod(saved.parent, 0o700)
    if inst.qemu_efi_vars.is_file():
        shutil.copyfile(inst.qemu_efi_vars, saved / inst.qemu_efi_vars.name)
        os.chmod(saved / inst.qemu_efi_vars.name, 0o600)
    if inst.swtpm_dir.is_dir():
        shutil.copytree(inst.swtpm_dir, saved / inst.swtpm_dir.name, symlinks=True)


def _restore_state(inst: store.Instance, tag: str) -> None:
    saved = inst.snapshot_files(tag)
    vars_copy = saved / inst.qemu_efi_vars.name
    if vars_copy.is_file():
        tmp = inst.qemu_efi_vars.with_name(inst.qemu_efi_vars.name + ".tmp")
        shutil.copyfile(vars_copy, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, inst.qemu_efi_vars)
    tpm_copy = saved / inst.swtpm_dir.name
    if tpm_copy.is_dir():
        shutil.rmtree(inst.swtpm_dir, ignore_errors=True)
        shutil.copytree(tpm_copy, inst.swtpm_dir, symlinks=True)
