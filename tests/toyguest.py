"""A third guest operating system for the guest-OS seam's tests: a toy "FreeBSD" (Lima 2.1 added FreeBSD guests;
limapy has no package for them), as tests/toydriver.py is a second engine for the driver seam.

Registered with one line, LIMAPY_GUEST_MODULES=FreeBSD=tests.toyguest, it is what `os: FreeBSD` instances run: the
image `create` fetches, the first-boot media (a /bin/sh script that writes this boot's instance-id where the
probe reads it, as Lima's boot scripts write /run/lima-boot-done), the readiness probe, and `limapy shell`'s
remote command. Its rules are Lima's for FreeBSD (limapy.guest.rules.LIMA_ONLY). Nothing in limapy/ names it.
tests/stubengine.py runs it: the "machine" is a directory the stub engine serves over SSH.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from limapy.base.fsutil import atomic_write
from limapy.config.model import Spec
from limapy.guest import BootPrompt, Conn, Fetched, Get, HostFolders, InstallPhases, ListenerQuery, ProbeResult, Say
from limapy.guest.boot import BootFiles, Devices, Media
from limapy.guest.identity import CloneIdentity
from limapy.guest.rules import LIMA_ONLY
from limapy.instance.store import Instance

RULES = LIMA_ONLY["FreeBSD"]
SEED = "toy-seed.sh"
MARKER = "var/run/toy-boot-done"


class ToyGuest:
    name = "FreeBSD"
    installs = False
    remote_desktop = False
    rsync = False
    copies_to_host = False
    ssh_phase = "ssh"

    def fetch(self, spec: Spec, get: Get, say: Say) -> Fetched:
        image = spec.image
        return Fetched(disk_size=spec.disk, base=get(image.location, image.digest, "toy image", False).resolve())

    def boot_files(self, inst: Instance, spec: Spec) -> BootFiles:
        return BootFiles()

    def devices(self, spec: Spec, stage: str | None) -> Devices:
        return Devices()

    def first_boot_media(self, inst: Instance, spec: Spec, files: BootFiles, *, iid: str, mac: str) -> Media | None:
        return Media("toy-seed", inst.dir / SEED, iid=iid, mac=mac)

    def stage_notice(self, stage: str | None) -> str | None:
        return None

    def write_media(self, inst: Instance, spec: Spec, media: Media, ssh_keys: list[str]) -> None:
        """A boot script for the stub engine to run in the guest's root: it records the keys and the user, then
        writes this boot's instance-id last."""
        script = "\n".join([
            "#!/bin/sh", "set -eu", "mkdir -p var/run etc",
            f"printf '%s\\n' {' '.join(shlex.quote(k) for k in ssh_keys)} > etc/authorized_keys",
            f"printf '%s\\n' {shlex.quote(spec.user.name)} > etc/user",
            f"printf '%s\\n' {shlex.quote(media.iid)} > {MARKER}", "",
        ])  # fmt: skip
        atomic_write(media.path, script.encode(), 0o600)

    def boot_timeout(self, inst: Instance, emulated: bool) -> float | None:
        return None

    def probe(self, *, iid: str, resume: bool, ssh_up: bool, now: float) -> str:
        return f"cat {MARKER} 2>/dev/null || true"

    def probe_ready(self, result: ProbeResult, *, iid: str, resume: bool) -> bool:
        return result.stdout.strip() == iid

    def after_resume(self, conn: Conn, first: ProbeResult, now: float) -> bool:
        return False

    def install_phases(self, inst: Instance) -> InstallPhases | None:
        return None

    def install_progress(self, written: int) -> str:
        return "booting"

    def boot_prompt(self, now: float, disk_base: int) -> BootPrompt:
        raise NotImplementedError

    def ready_errors(self, result: ProbeResult) -> list[str]:
        return []

    def ready_warnings(self, conn: Conn) -> list[str]:
        return [f"the toy guest's user is {conn.run('cat etc/user', timeout=10).stdout.strip()}"]

    def booted(self, inst: Instance) -> None:
        pass

    def listeners(self) -> ListenerQuery | None:
        return None

    def host_folders(self) -> HostFolders | None:
        return None

    def settle(self) -> str | None:
        return None

    def clone_identity(self, spec: Spec, name: str) -> CloneIdentity | None:
        return None

    def clone_prepare(self, src: Instance, new: Instance, spec: Spec, *, generalize: bool, resumes: bool,
                      say: Say) -> None:  # fmt: skip
        pass

    def shell_script(self, spec: Any, command: Sequence[str], *, workdir: str | None, shell: str | None,
                     env: Mapping[str, str] | None, cwd: Path | None, host_home: Path | None) -> str:  # fmt: skip
        sh = shell or spec.user.shell or "/bin/sh"
        line = " ".join(shlex.quote(a) for a in command)
        cd = f"cd {shlex.quote(workdir)} && " if workdir else ""
        return f"{cd}exec {shlex.quote(sh)}" + (f" -c {shlex.quote(line)}" if command else "")

    def copy_path(self, path: str) -> str:
        return path


GUEST = ToyGuest()
