"""Host folders in a Linux guest, checked and completed once the guest is up.

9p and virtiofs mounts are in the seed (cloud-init `mounts:`, QEMU's devices): here each is checked in the
guest, and when the guest's kernel lacks that file system the mount falls back to reverse-sshfs with one
warning that names the fix. reverse-sshfs mounts are made here: `sshfs -o slave` in the guest, as the guest
user, talking SFTP over an exec channel of the host agent's SSH connection to the SFTP server the host agent
gives (limapy.agent.sftpjail), which serves only the mount's folder. They end with the host agent (its SSH
connection).
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limapy.base.names import mount_tag
from limapy.config.model import Mount, Spec
from limapy.guest.linux.seed import kernel_mount_options

log = logging.getLogger("limapy.guest.linux.mounts")

MOUNT_TIMEOUT = 30.0
Warn = Callable[[str], None]
#: The host side of a reverse-sshfs mount: SFTP on a channel, confined to a folder (limapy.agent.sftpjail.serve).
Serve = Callable[..., None]


@dataclass
class ReverseMount:
    mount: Mount
    channel: Any
    thread: threading.Thread

    @property
    def how(self) -> str:
        return f"{self.mount.mount_point} (reverse-sshfs)"


def _q(text: str) -> str:
    return shlex.quote(text)


def _run(guest: Any, script: str, timeout: float = 60.0) -> tuple[int, str]:
    r = guest.run(script, timeout=timeout)
    return r.exit_code, (r.stdout + r.stderr).strip()


def mounted(guest: Any, m: Mount) -> str:
    """The file system type mounted at the mount point ("" when nothing is)."""
    code, out = _run(guest, f"findmnt -n -o FSTYPE --mountpoint {_q(m.mount_point)} 2>/dev/null")
    return out.splitlines()[-1].strip() if code == 0 and out else ""


def kernel_has(guest: Any, fstype: str) -> bool:
    script = (f"grep -qw {_q(fstype)} /proc/filesystems || sudo -n modprobe {_q(fstype)} >/dev/null 2>&1; "
              f"grep -qw {_q(fstype)} /proc/filesystems")  # fmt: skip
    return _run(guest, script)[0] == 0


def check_kernel_mounts(guest: Any, spec: Spec, warn: Warn) -> list[Mount]:
    """Check the 9p/virtiofs mounts; mount what cloud-init did not; the ones the kernel cannot do, returned
    for reverse-sshfs."""
    fallback: list[Mount] = []
    kind = spec.mount_type
    for m in spec.mounts_of(kind):
        if mounted(guest, m) == kind:
            continue
        if not kernel_has(guest, kind):
            warn(f"mount {m.location} -> {m.mount_point}: the guest kernel has no {kind}; mounting it with "
                 f"reverse-sshfs instead (set `mountType: reverse-sshfs`, or add {kind} to mountTypesUnsupported)")
            fallback.append(m)
            continue
        tag, mp = _q(mount_tag(m.location, m.mount_point)), _q(m.mount_point)
        script = f"sudo -n mkdir -p {mp} && sudo -n mount -t {kind} -o {_q(kernel_mount_options(spec, m))} {tag} {mp}"
        code, out = _run(guest, script)
        if code != 0:
            warn(f"mount {m.location} -> {m.mount_point} ({kind}) failed in the guest: {out.splitlines()[-1:]}")
    return fallback


def sshfs_options(m: Mount, *, allow_other: bool) -> str:
    opts = ["slave", "idmap=user"]
    if allow_other:
        opts.append("allow_other")
    if not m.writable:
        opts.append("ro")
    if not m.sshfs.cache:
        opts.append("dir_cache=no")
    if m.sshfs.follow_symlinks:
        opts.append("follow_symlinks")
    return ",".join(opts)


def _prepare(guest: Any, mounts: list[Mount], warn: Warn) -> tuple[bool, bool]:
    """(sshfs present, allow_other allowed): mount points made and given to the guest user."""
    if _run(guest, "command -v sshfs >/dev/null")[0] != 0:
        warn("reverse-sshfs mounts need sshfs in the guest (apt install sshfs, dnf install fuse-sshfs); "
             "the mounts are skipped")
        return False, False
    allow = _run(guest, "grep -q '^user_allow_other' /etc/fuse.conf 2>/dev/null || "
                        "{ echo user_allow_other | sudo -n tee -a /etc/fuse.conf >/dev/null; }")[0] == 0
    for m in mounts:
        # FUSE mounts as a user need a mount point the user can write: made for them, or given to them when it
        # is an empty directory (cloud-init makes one for a 9p/virtiofs entry that fell back to sshfs).
        mp = _q(m.mount_point)
        give = f'sudo -n chown "$(id -u):$(id -g)" {mp}'
        _run(guest, f"if [ ! -e {mp} ]; then sudo -n mkdir -p {mp} && {give}; "
                    f'elif [ -d {mp} ] && [ ! -w {mp} ] && [ -z "$(ls -A {mp} 2>/dev/null)" ]; then {give}; fi')
    return True, allow


def _wait_mounted(guest: Any, m: Mount, thread: threading.Thread) -> bool:
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while time.monotonic() < deadline and thread.is_alive():
        if mounted(guest, m).startswith("fuse"):
            return True
        time.sleep(0.2)
    return False


def reverse_sshfs(guest: Any, mounts: list[Mount], warn: Warn, serve: Serve) -> list[ReverseMount]:
    """Mount each folder with sshfs in the guest, its SFTP served by `serve` (the host agent's
    limapy.agent.sftpjail.serve); returns the live mounts (stop them with `unmount`)."""
    if not mounts:
        return []
    ok, allow_other = _prepare(guest, mounts, warn)
    if not ok:
        return []
    live = []
    for m in mounts:
        Path(m.location).mkdir(parents=True, exist_ok=True)
        cmd = f"exec sshfs -f -o {_q(sshfs_options(m, allow_other=allow_other))} :/ {_q(m.mount_point)}"
        chan = guest.exec_channel(cmd)
        thread = threading.Thread(
            target=_serve, args=(serve, chan, Path(m.location), not m.writable),
            name=f"sftp {m.location}", daemon=True,
        )  # fmt: skip
        thread.start()
        if not _wait_mounted(guest, m, thread):
            err = chan.recv_stderr(4096).decode(errors="replace").strip() if chan.recv_stderr_ready() else ""
            warn(f"reverse-sshfs mount {m.location} -> {m.mount_point} did not come up" + (f": {err}" if err else ""))
            chan.close()
            continue
        log.info("reverse-sshfs: %s -> %s", m.location, m.mount_point)
        live.append(ReverseMount(m, chan, thread))
    return live


def _serve(serve: Callable[..., None], chan: Any, root: Path, read_only: bool) -> None:
    try:
        serve(chan, root, read_only=read_only)
    except Exception:  # the guest went away: nothing to report beyond the mount's end
        log.debug("sftp for %s ended", root, exc_info=True)


def unmount(guest: Any, live: list[ReverseMount]) -> None:
    for rm in live:
        try:
            _run(guest, f"fusermount3 -u {_q(rm.mount.mount_point)} 2>/dev/null || "
                        f"fusermount -u {_q(rm.mount.mount_point)} 2>/dev/null", timeout=10)
        except Exception:
            log.debug("unmount of %s failed", rm.mount.mount_point, exc_info=True)
        rm.channel.close()


class Folders:
    """Linux's host folders (limapy.guest.HostFolders): the seed's 9p/virtiofs mounts checked (reverse-sshfs where
    the kernel lacks them), reverse-sshfs mounts made."""

    def mount(self, conn: Any, spec: Spec, warn: Warn, serve: Serve, inst: Any = None) -> list[ReverseMount]:
        if spec.mounts_of("smb"):
            warn("mountType: smb: the mounts are served to the guest at //192.168.5.4/m0, m1, ... (limapy.guest.smb); "
                 "limapy maps them itself in Windows guests only: mount them with `mount -t cifs` (the account is the "
                 "host user, its password in the instance's smb/password)")
        fallback = []
        if spec.mount_type in ("9p", "virtiofs"):
            fallback = check_kernel_mounts(conn, spec, warn)
        return reverse_sshfs(conn, [*spec.mounts_of("reverse-sshfs"), *fallback], warn, serve)

    def unmount(self, conn: Any, live: list[Any]) -> None:
        unmount(conn, live)


FOLDERS = Folders()
