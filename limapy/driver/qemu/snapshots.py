"""Snapshots of a QEMU instance, as Lima takes them: `qemu-img snapshot` on the disk of a stopped instance,
HMP `savevm`/`loadvm`/`delvm` (through QMP's human-monitor-command) on a running one. The snapshot lives in
the instance's qcow2 disk (an overlay: the base image is never written).

QEMU looks a snapshot up by ID as well as by name (`qemu-img snapshot -a 1` and `loadvm 1` find the snapshot
*numbered* 1 first), so a tag that is all digits is refused at create, and apply and delete never trust the
tag to QEMU blindly: they read the list, take the snapshot whose name is the tag exactly, and hand QEMU a
word only that snapshot answers to (`address`).

A stopped instance's UEFI variable store and TPM state are not in the disk; they are copied beside it
(`snapshots/<tag>/`) and put back on apply, so a Windows guest comes back with the boot entries and TPM
secrets of that moment. A running machine with a UEFI variable store cannot be saved at all (the store is a
raw flash image, which QEMU cannot snapshot): that is refused with the reason, before QEMU is asked.
"""

from __future__ import annotations

import os
import re
import shutil

from limapy.base import proc
from limapy.base.errors import LimapyError, NotFoundError, UsageError
from limapy.driver import Snapshot
from limapy.instance import disk, store

ACTIONS = ("create", "apply", "delete")
#: A tag travels inside an HMP command line: letters, digits and `._-` only, so it is one word there.
TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
SAVE_TIMEOUT = 900.0  # savevm writes the guest's RAM into the disk: minutes for a big guest under TCG
_HMP = {"create": "savevm", "apply": "loadvm", "delete": "delvm"}
_IMG = {"create": "-c", "apply": "-a", "delete": "-d"}


def check_tag(tag: str, action: str = "create") -> None:
    if not TAG_RE.fullmatch(tag):
        raise UsageError(f"snapshot tag {tag!r} is invalid: use 1-63 letters, digits, `.`, `_` or `-`")
    if action == "create" and tag.isdigit():
        raise UsageError(f"snapshot tag `{tag}` is all digits: QEMU would take it for the ID of another snapshot",
                         hint="use a name with a letter in it, e.g. `snap" + tag + "`")  # fmt: skip


def listed(inst: store.Instance) -> list[Snapshot]:
    if not inst.disk.exists():
        return []
    out = []
    for s in disk.info(inst.disk).get("snapshots") or []:
        out.append(Snapshot(
            tag=str(s.get("name", "")), vm_state_size=int(s.get("vm-state-size", 0)), date=int(s.get("date-sec", 0)),
            vm_clock=int(s.get("vm-clock-sec", 0)) + int(s.get("vm-clock-nsec", 0)) / 1e9, id=str(s.get("id", "")),
        ))  # fmt: skip
    return out


#: How QEMU 7.2 finds the snapshot a command names (tests/security/test_state.py pins it): `qemu-img snapshot
#: -a` by ID, then by name; `qemu-img snapshot -d` and HMP `delvm` by name only; HMP `loadvm` checks that a
#: snapshot of that name exists, then goes to the one with that *ID* first (so `loadvm 1` restores ID 1 even
#: when another snapshot is named `1`).
LOOKUP = {("apply", False): "id", ("delete", False): "name", ("apply", True): "name, then id", ("delete", True): "name"}


def address(snaps: list[Snapshot], target: Snapshot, lookup: str) -> str | None:
    """What to hand QEMU so that its `lookup` (a LOOKUP value) finds `target` and no other snapshot, or None
    when no argument does (a duplicate name, or a name that is another snapshot's ID for `loadvm`)."""
    others = [s for s in snaps if s is not target]
    if lookup == "id":
        return target.id if target.id and not any(s.id == target.id for s in others) else None
    if any(s.tag == target.tag for s in others):
        return None
    if lookup == "name, then id" and any(s.id == target.tag for s in others):
        return None
    return target.tag


def run(inst: store.Instance, action: str, tag: str, *, running: bool) -> None:
    if action not in ACTIONS:
        raise UsageError(f"unknown snapshot action {action!r}")
    check_tag(tag, action)
    snaps = listed(inst)
    if action == "create":
        if any(s.tag == tag for s in snaps):
            raise LimapyError(f"snapshot `{tag}` of `{inst.name}` already exists",
                              hint="delete it first, or pick a tag")  # fmt: skip
        arg = tag
    else:
        target = next((s for s in snaps if s.tag == tag), None)  # the name, exactly: never an ID
        if target is None:
            raise NotFoundError(
                f"instance `{inst.name}` has no snapshot `{tag}`", hint=f"`limapy snapshot list {inst.name}`"
            )
        found = address(snaps, target, LOOKUP[(action, running)])
        if found is None:
            raise LimapyError(
                f"snapshot `{tag}` (ID {target.id}) of `{inst.name}` cannot be named to QEMU without naming another "
                "snapshot: another one has the same name, or that name as its ID",
                hint=f"`qemu-img snapshot -l {inst.disk}` lists them; delete or rename the other one first",
            )
        arg = found
    if running:
        _online(inst, action, arg, tag)
    else:
        _offline(inst, action, arg, tag)


def _online(inst: store.Instance, action: str, arg: str, tag: str) -> None:
    from limapy.qemu.qmp import QMP

    if inst.qemu_efi_vars.exists():
        raise LimapyError(
            f"cannot {action} a snapshot of `{inst.name}` while it runs: its UEFI variable store is a raw flash "
            "image, which QEMU cannot save with the machine",
            hint=f"`limapy stop {inst.name}` first: a stopped instance's snapshot keeps the variable store "
            "(and TPM state) with the disk",
        )
    with QMP.connect(inst.qmp_sock, timeout=SAVE_TIMEOUT) as qmp:
        out = qmp.hmp(f"{_HMP[action]} {arg}").strip()
    if out:  # HMP answers success with nothing, and a failure with its message
        raise LimapyError(f"QEMU could not {action} snapshot `{tag}` of `{inst.name}`: {out}")


def _offline(inst: store.Instance, action: str, arg: str, tag: str) -> None:
    proc.run([disk.QEMU_IMG, "snapshot", _IMG[action], arg, inst.disk])
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
