"""What a boot will do, as data: the plan a driver makes before anything is written or started.

`start --dry-run` prints a plan and changes nothing; `start` (the host agent) materializes it (disk grown,
firmware store made, first-boot media and ssh.config written) and then launches it. Keeping the plan pure
data is what lets the dry run be honest and the layouts be pinned by golden files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from limapy.guest.windows.language import DEFAULT as DEFAULT_LOCALE
from limapy.guest.windows.language import Locale
from limapy.qemu.cmdline import WIN_INSTALL as WIN_INSTALL  # how a Windows instance boots (re-exported)
from limapy.qemu.cmdline import WIN_INSTALLED as WIN_INSTALLED
from limapy.qemu.cmdline import WIN_SETUP as WIN_SETUP
from limapy.qemu.firmware import VarsPlan

#: How the host agent tells that the guest is ready.
READY_LINUX = "linux"  # /run/lima-boot-done holds this boot's instance-id (over SSH)
READY_WINDOWS = "windows"  # C:\ProgramData\Lima\lima-boot-done.txt exists (over SSH)
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
class WindowsImage:
    """The image of the install ISO to install, read from its image list (or Lima's fixed index)."""

    index: int | None
    name: str | None
    is_server: bool
    locale: Locale = DEFAULT_LOCALE  # the answer file's language fields (limapy.guest.windows.language)


@dataclass(frozen=True)
class Media:
    """The first-boot media to write: the NoCloud seed, or the Windows answer ISO."""

    kind: str  # MEDIA_NOCLOUD | MEDIA_AUTOUNATTEND
    path: Path
    iid: str = ""
    mac: str = ""
    windows: WindowsImage | None = None
    openssh_msi: Path | None = None
    virtio_win: Path | None = None  # the virtio-win ISO the answer media's $WinPEDriver$ is copied from


MEDIA_NOCLOUD = "nocloud"
MEDIA_AUTOUNATTEND = "autounattend"


@dataclass(frozen=True)
class BootPlan:
    driver: str
    argv: tuple[str, ...]
    ssh_port: int
    user: str  # the guest user the readiness probe logs in as
    readiness: str  # READY_*
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
    windows_boot: str | None = None  # WIN_INSTALL / WIN_SETUP / WIN_INSTALLED
    rdp_port: int | None = None
    resume: bool = False  # the machine starts from the instance's saved (suspended) state
    discard_state: bool = False  # a saved state that cannot be resumed from: removed, the guest boots cold
    document: str = ""  # what the engine is given when it is not a command line (libvirt: the domain XML)
    #: serial.log keeps earlier boots' output (libvirt's console is appended): this boot's starts where it ended
    serial_appends: bool = False

    @property
    def windows(self) -> bool:
        return self.readiness == READY_WINDOWS

    @property
    def install(self) -> bool:
        """Windows media are attached: the install is not finished."""
        return self.windows_boot in (WIN_INSTALL, WIN_SETUP)

    @property
    def answer_boot_prompt(self) -> bool:
        """The install media's "Press any key to boot from CD or DVD" must be answered (first boot only)."""
        return self.windows_boot == WIN_INSTALL
