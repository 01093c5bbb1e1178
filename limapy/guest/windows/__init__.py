"""Windows guests: installed unattended from the install ISO with an answer ISO (limapy.guest.windows.answer),
the device layouts Windows has drivers for, ready once the first logon has written its marker (its progress read
from COM1 and a file), Remote Desktop, a shell through Win32-OpenSSH's DefaultShell, host folders as drive
letters over SMB (limapy.guest.windows.folders), automatic port forwards from Get-NetTCPConnection, and copies
with drive-letter paths as Win32-OpenSSH's sftp-server reads them. The members below are limapy.guest.GuestOS's;
each reaches into its module only when called."""

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


class WindowsGuest:
    name = "Windows"
    installs = True
    remote_desktop = True
    rsync = False
    copies_to_host = False
    ssh_phase = "OpenSSH up"

    def fetch(self, spec: Spec, get: Get, say: Say) -> Fetched:
        from limapy.guest.windows import boot

        return boot.fetch(spec, get, say)

    def boot_files(self, inst: Instance, spec: Spec) -> BootFiles:
        from limapy.guest.windows import layout

        return layout.windows_files(inst, spec)

    def devices(self, spec: Spec, stage: str | None) -> Devices:
        from limapy.guest.windows import boot

        return boot.devices(spec, stage)

    def first_boot_media(self, inst: Instance, spec: Spec, files: BootFiles, *, iid: str, mac: str) -> Media | None:
        from limapy.guest.windows import boot

        return boot.media(inst, spec, files)

    def stage_notice(self, stage: str | None) -> str | None:
        from limapy.guest.boot import SETUP
        from limapy.guest.windows import layout

        return layout.SETUP_NOTICE if stage == SETUP else None

    def write_media(self, inst: Instance, spec: Spec, media: Media, ssh_keys: list[str]) -> None:
        from limapy.guest.windows import boot

        boot.write_media(inst, spec, media, ssh_keys)

    def boot_timeout(self, inst: Instance, emulated: bool) -> float | None:
        from limapy.guest.windows import boot

        return boot.boot_timeout(inst, emulated)

    # -- the host agent ---------------------------------------------------------------------------------------
    def probe(self, *, iid: str, resume: bool, ssh_up: bool, now: float) -> str:
        from limapy.guest.windows import agent

        return agent.WINDOWS_PROBE

    def probe_ready(self, result: ProbeResult, *, iid: str, resume: bool) -> bool:
        from limapy.guest.windows import agent

        return agent.probe_ready(result)

    def after_resume(self, conn: Conn, first: ProbeResult, now: float) -> bool:
        import logging

        from limapy import remote
        from limapy.guest.windows import agent

        try:
            r = conn.run(agent.clock(now), timeout=30)
        except remote.RemoteError as e:
            logging.getLogger("limapy.agent.hostagent").warning("setting the resumed guest's clock: %s", e.message)
            return False
        return bool(r.exit_code == 0)

    def install_phases(self, inst: Instance) -> InstallPhases | None:
        from limapy.guest.windows import agent

        return agent.FirstLogonPhases(inst)

    def install_progress(self, written: int) -> str:
        return "Windows Setup" if written < (8 << 30) else "first logon"

    def boot_prompt(self, now: float, disk_base: int) -> BootPrompt:
        from limapy.guest.windows import bootprompt

        return bootprompt.BootPrompt(now, disk_base=disk_base)

    def ready_warnings(self, conn: Conn) -> list[str]:
        from limapy.guest.windows import agent

        return agent.warnings(conn)

    def ready_errors(self, result: ProbeResult) -> list[str]:
        from limapy.guest.windows import agent

        return agent.ready_errors(result.stdout)

    def booted(self, inst: Instance) -> None:
        from limapy.guest.windows import identity
        from limapy.instance import store

        if not inst.win_done_installation.exists():
            store.atomic_write(inst.win_done_installation, b"", 0o600)
        identity.applied(inst)

    def listeners(self) -> ListenerQuery | None:
        from limapy.guest.windows import listeners

        return listeners.QUERY

    def host_folders(self) -> HostFolders | None:
        from limapy.guest.windows import folders

        return folders.FOLDERS

    def settle(self) -> str | None:
        # READY already waits for the first logon's provisioning; what Windows does afterwards (servicing,
        # .NET's ngen, Defender's scans) has no end a script could wait for, as a Linux boot's start-up jobs have
        return None

    def clone_identity(self, spec: Spec, name: str) -> CloneIdentity | None:
        from limapy.guest.identity import CloneIdentity
        from limapy.guest.windows import resumeid

        return CloneIdentity(resumeid.COMMAND, resumeid.WHAT)

    def clone_prepare(self, src: Instance, new: Instance, spec: Spec, *, generalize: bool, resumes: bool,
                      say: Say) -> None:  # fmt: skip
        from limapy.guest.windows import identity

        if resumes:
            from limapy.guest.windows import resumeid

            say(f"the clone resumes as `{src.name}` and then gets {resumeid.WHAT}; it keeps the source's passwords")
            return

        identity.prepare(src, new, spec, generalize=generalize, say=say)

    # -- shell and copy ---------------------------------------------------------------------------------------
    def shell_script(self, spec: Any, command: Sequence[str], *, workdir: str | None, shell: str | None,
                     env: Mapping[str, str] | None, cwd: Path | None, host_home: Path | None) -> str:  # fmt: skip
        from limapy.guest.windows import shell as sh

        return sh.shell_script(spec, command, workdir=workdir, shell=shell, env=env, cwd=cwd, host_home=host_home)

    def copy_path(self, path: str) -> str:
        from limapy.guest.windows import copypath

        return copypath.copy_path(path)


GUEST = WindowsGuest()
if TYPE_CHECKING:
    _GUEST: GuestOS = GUEST  # mypy checks the protocol here
