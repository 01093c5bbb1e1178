"""Linux guests: booted from their image with a NoCloud seed (cloud-init), virtio devices, ready when the seed's
boot script has written this boot's instance-id; host folders over 9p, virtiofs or reverse-sshfs, automatic port
forwards from /proc/net/tcp. The members below are limapy.guest.GuestOS's; each reaches into its module only when
called (`shell` finds this module on its hot path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from limapy.config.model import Spec
    from limapy.guest import (
        BootPrompt,
        Conn,
        Fetched,
        Get,
        GuestOS,
        HostFolders,
        InstallPhases,
        ListenerQuery,
        ProbeResult,
        Say,
    )
    from limapy.guest.boot import BootFiles, Devices, Media
    from limapy.guest.identity import CloneIdentity
    from limapy.instance.store import Instance

#: Readiness: the seed's boot script writes this boot's instance-id here as its very last step.
LINUX_PROBE = "cat /run/lima-boot-done 2>/dev/null || true"


class LinuxGuest:
    name = "Linux"
    installs = False
    remote_desktop = False
    rsync = True
    copies_to_host = True
    ssh_phase = "ssh"

    def fetch(self, spec: Spec, get: Get, say: Say) -> Fetched:
        from limapy.guest.linux import boot

        return boot.fetch(spec, get, say)

    def boot_files(self, inst: Instance, spec: Spec) -> BootFiles:
        from limapy.guest.linux import boot

        return boot.files(inst, spec)

    def devices(self, spec: Spec, stage: str | None) -> Devices:
        from limapy.guest.linux import boot

        return boot.DEVICES

    def first_boot_media(self, inst: Instance, spec: Spec, files: BootFiles, *, iid: str, mac: str) -> Media | None:
        from limapy.guest.linux import boot

        return boot.media(inst, iid, mac)

    def stage_notice(self, stage: str | None) -> str | None:
        return None

    def write_media(self, inst: Instance, spec: Spec, media: Media, ssh_keys: list[str]) -> None:
        from limapy.guest.linux import boot

        boot.write_media(inst, spec, media, ssh_keys)

    def boot_timeout(self, inst: Instance, emulated: bool) -> float | None:
        return None

    # -- the host agent ---------------------------------------------------------------------------------------
    def probe(self, *, iid: str, resume: bool, ssh_up: bool, now: float) -> str:
        if resume and not ssh_up:  # the first command in a resumed guest sets its clock (limapy.guest.linux.clock)
            from limapy.guest.linux import clock

            return f"{clock.linux(now)}; {LINUX_PROBE}"
        return LINUX_PROBE

    def probe_ready(self, result: ProbeResult, *, iid: str, resume: bool) -> bool:
        # a resumed guest is past this boot's scripts: /run (tmpfs) holds the suspended boot's id
        return result.stdout.strip() == iid or bool(resume and result.stdout.strip())

    def after_resume(self, conn: Conn, first: ProbeResult, now: float) -> bool:
        from limapy.guest.linux import clock

        return clock.FAILED not in first.stderr  # the first probe set it

    def install_phases(self, inst: Instance) -> InstallPhases | None:
        return None

    def install_progress(self, written: int) -> str:
        return "booting"

    def boot_prompt(self, now: float, disk_base: int) -> BootPrompt:
        raise NotImplementedError("a Linux guest boots its image: no install media prompt")

    def ready_errors(self, result: ProbeResult) -> list[str]:
        return []

    def ready_warnings(self, conn: Conn) -> list[str]:
        return []

    def booted(self, inst: Instance) -> None:
        pass

    def listeners(self) -> ListenerQuery | None:
        from limapy.guest.linux import listeners

        return listeners.QUERY

    def host_folders(self) -> HostFolders | None:
        from limapy.guest.linux import mounts

        return mounts.FOLDERS

    def settle(self) -> str | None:
        from limapy.guest.linux import settle

        return settle.SCRIPT

    def clone_identity(self, spec: Spec, name: str) -> CloneIdentity | None:
        from limapy.guest.linux import identity

        return identity.identity(name)

    def clone_prepare(self, src: Instance, new: Instance, spec: Spec, *, generalize: bool, resumes: bool,
                      say: Say) -> None:  # fmt: skip
        if resumes:
            from limapy.guest.linux import identity

            say(f"the clone resumes as `{src.name}` and then gets its own {identity.summary(new.name)}")
        if generalize:
            from limapy.base.errors import LimapyError

            raise LimapyError("`clone --generalize` is for Windows guests (sysprep)",
                              hint="a Linux clone gets its own hostname, machine-id and SSH host keys without it")

    # -- shell and copy ---------------------------------------------------------------------------------------
    def shell_script(self, spec: Any, command: Sequence[str], *, workdir: str | None, shell: str | None,
                     env: Mapping[str, str] | None, cwd: Path | None, host_home: Path | None) -> str:  # fmt: skip
        from limapy.guest.linux import shell as sh

        return sh.shell_script(spec, command, workdir=workdir, shell=shell, env=env, cwd=cwd, host_home=host_home)

    def copy_path(self, path: str) -> str:
        return path


GUEST = LinuxGuest()
if TYPE_CHECKING:
    _GUEST: GuestOS = GUEST  # mypy checks the protocol here
