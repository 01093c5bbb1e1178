"""`clone SRC DST` and `rename OLD NEW` of a stopped instance.

A clone is a new machine on the same disk contents: its directory (hence its MAC, which derives from the
path), its name (hence hostname), an instance-id per boot and an SSH port picked at boot (a fixed
`ssh.localPort` is reset to 0, or the two could not run together); a fresh TPM (swtpm state is not copied,
as in Lima). Its disk is a copy of the source's qcow2 file, itself an overlay on the cached base image, so it
costs only what the guest wrote (`--full`: one self-contained qcow2). What a boot regenerates (seed,
ssh.config, logs, pid files and sockets) and `protected` are not copied. The guest OS then makes the copy a
machine of its own (GuestOS.clone_prepare: a Windows clone's identity at its first boot, `--generalize`: sysprep).

A clone of a *suspended* instance is itself suspended and resumes in seconds (issue 29): the engine shares the
source's saved state and, read-only, its disk (Driver.clone_suspended, limapy.instance.layers); after its resume,
before it is called ready, the host agent gives it its own identity (GuestOS.clone_identity), once
(`identity.pending`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from limapy.instance import store
from limapy.ops.edit import require_stopped

if TYPE_CHECKING:
    from limapy.config.model import Spec

Say = Callable[[str], None]


def _kept(inst: store.Instance) -> list[Path]:
    """The files of `inst` a clone takes over as they are (the disk and lima.yaml are handled apart)."""
    return [
        inst.lima_version, inst.driver_file, inst.product_key_file, inst.password_file, inst.admin_password_file,
        inst.win_done_installation,
        inst.kernel, inst.initrd, inst.kernel_cmdline, inst.qemu_efi_code, inst.qemu_efi_vars,
    ]  # fmt: skip


def _links(inst: store.Instance) -> list[Path]:
    return [inst.iso, inst.virtio_win, inst.openssh_msi]


def _lima_yaml(src: store.Instance, say: Say) -> bytes:
    from limapy import config
    from limapy.config.load import load, stored_yaml
    from limapy.expr.edits import apply

    raw = src.lima_yaml.read_bytes()
    if config.instance_spec(src).ssh.local_port:
        doc = load(str(src.lima_yaml), embed=False)
        apply(doc.data, ".ssh.localPort = 0")
        say("ssh.localPort is fixed in the source; the clone picks a free port at each boot")
        return stored_yaml(doc.data, doc)[0].encode()
    return raw


def clone(
    src: store.Instance, dst_name: str, *, full: bool = False, generalize: bool = False, say: Say
) -> store.Instance:
    from limapy import config, driver, guest
    from limapy.base import dirs
    from limapy.download import refs
    from limapy.instance import chain, disk

    spec = config.instance_spec(src)
    os_ = guest.for_spec(spec)
    resumes = driver.status(src) == store.SUSPENDED
    if resumes:
        _suspended_ok(src, spec, full=full, generalize=generalize)
    else:
        require_stopped(src, "clone")
    refs.register_quietly(dirs.limapy_home())  # the clone stands on the source's base too
    with store.lock(src, what="clone"), store.creating(dst_name) as tmp:
        new = store.Instance(dst_name, tmp)
        store.atomic_write(new.lima_yaml, _lima_yaml(src, say), 0o644)
        for path in _kept(src):
            if path.is_file() and not path.is_symlink():
                target = tmp / path.name
                if path in (src.kernel, src.initrd):  # read-only links into the download cache: one more name
                    with contextlib.suppress(OSError):
                        os.link(path, target)
                        continue
                shutil.copyfile(path, target)
                os.chmod(target, path.stat().st_mode & 0o777)
        for link in _links(src):
            if link.is_symlink():
                (tmp / link.name).symlink_to(os.readlink(link))
        # before the disk copy: a refusal costs nothing; after the kept files: new secrets replace the copied ones
        os_.clone_prepare(src, new, spec, generalize=generalize, resumes=resumes, say=say)
        if resumes:
            driver.for_instance(src).clone_suspended(src, new, store.instance_dir(dst_name), say)
            store.atomic_write(new.identity_pending, b"", 0o600)
        elif src.disk.exists():
            say(f"copying the disk{' (full copy)' if full else ' (qcow2 overlay)'}")
            disk.copy(src.disk, new.disk, full=full)
            below = disk.backing_file(src.disk)
            if not full and below is not None and chain.is_layer(below):  # the source's own names it relatively
                disk.rebase_name(new.disk, below)
            os.chmod(new.disk, src.disk.stat().st_mode & 0o777)
        if not full and new.disk.exists() and src.base_record.is_file():
            shutil.copyfile(src.base_record, new.base_record)
            os.chmod(new.base_record, 0o600)
    return store.Instance(dst_name, store.instance_dir(dst_name))


def _suspended_ok(src: store.Instance, spec: Spec, *, full: bool, generalize: bool) -> None:
    from limapy.base.errors import LimapyError

    if full:
        raise LimapyError(f"`{src.name}` is suspended: its clones share its disk read-only, `--full` copies a "
                          "stopped instance's disk", hint=f"`limapy stop {src.name}` first")  # fmt: skip
    if generalize:
        raise LimapyError(f"`{src.name}` is suspended: `--generalize` runs sysprep at a boot, and a clone of a "
                          "suspended instance resumes instead", hint=f"`limapy stop {src.name}` first")  # fmt: skip
    if spec.additional_disks:
        raise LimapyError(f"`{src.name}` is suspended with additional disks attached, which one guest at a time "
                          "may write", hint=f"`limapy stop {src.name}` first")  # fmt: skip


def rename(old: store.Instance, new_name: str) -> store.Instance:
    """The same machine under a new name: files that name the old one (ssh.config, the .rdp file, the seed)
    are dropped and made again at the next boot."""
    require_stopped(old, "rename")
    from limapy.instance import disk, layers

    layers.refuse_if_shared(old, "rename")  # its clones name its layer by path

    with store.lock(old, what="rename"):
        for stale in (old.ssh_config, old.rdp_file, old.cidata_iso, old.forwards_file):
            stale.unlink(missing_ok=True)
        new = store.rename(old, new_name)
        disk.move_claims(old.dir, new.dir)  # its additional disks stay its own (`disk delete` sees them used)
        return new
