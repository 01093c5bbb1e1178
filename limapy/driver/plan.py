"""What a boot will do, as data: the plan a driver makes before anything is written or started.

`start --dry-run` prints a plan and changes nothing; `start` (the host agent) materializes it (disk grown,
firmware store made, first-boot media and ssh.config written) and then launches it. Keeping the plan pure
data is what lets the dry run be honest and the layouts be pinned by golden files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from limapy.guest.boot import INSTALL, SETUP, Devices, Media
from limapy.qemu.firmware import VarsPlan

#: How the host agent tells that the guest is ready.
READY_GUEST = "guest"  # the guest OS's probe says so, over SSH (limapy.guest.GuestOS.probe)
READY_NONE = "none"  # ready as soon as the machine runs (engines without a guest to ask)


@dataclass(frozen=True)
class Sidecar:
    """A helper process that must run before the machine and stop after it (swtpm; virtiofsd next)."""

    name: str
    argv: tuple[str, ...]
    ready: Path  # a socket that exists once it serves
    pidfile: Path
    marks: tuple[tuple[str, ...], ...]  # what its command line carries (limapy.instance.pids)
    stderr: Path
    state_dir: Path | None = None  # made 0700 before it starts
    writes_pidfile: bool = True  # False: the supervisor writes `pidfile` itself once it has started it


@dataclass(frozen=True)
class BootPlan:
    driver: str
    argv: tuple[str, ...]
    ssh_port: int
    user: str  # the guest user the readiness probe logs in as
    readiness: str  # READY_GUEST / READY_NONE
    iid: str
    accel: str = ""
    notices: tuple[str, ...] = ()
    media: Media | None = None
    sidecars: tuple[Sidecar, ...] = ()
    disk: Path | None = None
    disk_size: int = 0  # grow the disk to this many bytes
    record_base: bool = False  # the disk's base has no record yet (an instance from an older limapy)
    firmware: VarsPlan | None = None
    additional_disks: tuple[str, ...] = ()  # names to claim for this instance
    stage: str | None = None  # how far an install is (limapy.guest.boot.INSTALL, ...); None: no install
    rdp_port: int | None = None
    resume: bool = False  # the machine starts from the instance's saved (suspended) state
    discard_state: bool = False  # a saved state that cannot be resumed from: removed, the guest boots cold
    document: str = ""  # what the engine is given when it is not a command line (libvirt: the domain XML)
    #: serial.log keeps earlier boots' output (libvirt's console is appended): this boot's starts where it ended
    serial_appends: bool = False
    devices: Devices | None = None  # the guest OS's devices for this boot (limapy.guest.GuestOS.devices)
    smbd: str = ""  # `mountType: smb`: the smbd the instance's smb/ is written for (limapy.guest.smb)

    @property
    def install(self) -> bool:
        """Install media are attached: the install is not finished."""
        return self.stage in (INSTALL, SETUP)

    @property
    def answer_boot_prompt(self) -> bool:
        """The install media's "Press any key to boot from CD or DVD" must be answered (first boot only)."""
        return self.stage == INSTALL
