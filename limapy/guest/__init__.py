"""The guest-OS seam: everything that differs by guest operating system, asked of the instance's `GuestOS`.

A guest OS is a module exposing `GUEST`, an object with the `GuestOS` members below, and `rules` beside it (lima.yaml
as that OS reads it: limapy.guest.rules, at the configuration's layer). `Linux` (limapy.guest.linux) and `Windows`
(limapy.guest.windows) are built in; `LIMAPY_GUEST_MODULES=NAME=module` registers more (limapy.guest.registry; the
tests' toy guest). The instance's is chosen once, by its `os` field (`for_spec`). The engines, the host agent,
`ops/` and `config/` ask it; none of them branches on the guest OS itself (tests/unit/test_architecture.py).

What the engines are told is data (limapy.guest.boot): the files a boot uses, the first-boot media to write, and a
neutral description of the machine's devices that limapy.qemu.cmdline and limapy.driver.libvirt.domain translate.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.guest.registry import registry

# `shell` finds its guest OS here on its hot path: this module imports neither typing nor dataclasses at run time
# (as limapy.driver); mypy reads the protocols.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Protocol

    from limapy.config.model import Spec
    from limapy.guest.boot import BootFiles, Devices, Media
    from limapy.guest.identity import CloneIdentity
    from limapy.guest.listeners import Listener
    from limapy.instance.store import Instance
else:
    Protocol = object

Say = Callable[[str], None]
#: How `create` fetches a file (through the download cache, with progress and a network template's guard):
#: (location, digest, what it is, decompress) -> the local file.
Get = Callable[[str, str | None, str, bool], Path]


class Fetched:
    """What `create` downloaded and checked, for the driver to lay out in the new instance's directory."""

    __slots__ = ("base", "disk_size", "initrd", "iso", "kernel", "kernel_cmdline", "openssh_msi", "virtio_win")

    def __init__(
        self,
        disk_size: int,
        base: Path | None = None,  # a disk image to make the overlay on
        iso: Path | None = None,  # boot/install media (a Linux ISO image, the Windows install ISO)
        kernel: Path | None = None,
        initrd: Path | None = None,
        kernel_cmdline: str | None = None,
        virtio_win: Path | None = None,
        openssh_msi: Path | None = None,
    ) -> None:
        self.disk_size = disk_size
        self.base = base
        self.iso = iso
        self.kernel = kernel
        self.initrd = initrd
        self.kernel_cmdline = kernel_cmdline
        self.virtio_win = virtio_win
        self.openssh_msi = openssh_msi

    def __repr__(self) -> str:
        return "Fetched(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


class ShellSpec(Protocol):
    """What `shell` reads of an instance's configuration (limapy.ssh.ShellSpec: a `Spec` or a summary's View)."""

    @property
    def os(self) -> Any: ...


class ProbeResult(Protocol):
    """A command's result over the host agent's connection (limapy.remote.Result)."""

    stdout: str
    stderr: str
    exit_code: int


class Conn(Protocol):
    """The host agent's connection to the running guest (limapy.remote.Guest)."""

    def run(self, command: str, timeout: float = ...) -> Any: ...

    def exec_channel(self, command: str) -> Any: ...


class ListenerQuery(Protocol):
    """How a guest lists its listening TCP sockets for automatic port forwards."""

    #: Runs in the guest for the instance's life; prints one snapshot (its lines), then a `--` line, whenever the
    #: set changes.
    script: str
    #: Guest ports never forwarded automatically, whatever the rules say (Windows: RDP, which `limapy rdp` reaches).
    ignored: frozenset[int]

    def parse(self, lines: list[str]) -> set[Listener]:
        """One snapshot's lines -> its listeners; ValueError for a snapshot it cannot read (then nothing changes)."""


class HostFolders(Protocol):
    """How a guest mounts the host folders (`mounts`) once it is up, and lets go of them."""

    def mount(self, conn: Conn, spec: Spec, warn: Say, serve: Callable[..., None], inst: Instance) -> list[Any]:
        """Mount what the boot did not; `serve` is the host side of an SFTP mount (limapy.agent.sftpjail.serve),
        `inst` the instance (its SMB account: limapy.guest.smb). The live mounts, each with `.mount` (its
        config.model.Mount) and `.how` (what `start` shows: reverse-sshfs, a drive letter)."""

    def unmount(self, conn: Conn, live: list[Any]) -> None: ...


class InstallPhases(Protocol):
    """An install's progress lines as the guest reports them (Windows' first logon: COM1 and a file)."""

    name: str  # the host agent's event phase for them

    def feed(self, text: str) -> list[str | LimapyError]:
        """New serial-console text -> lines to show, in order; a LimapyError where the install failed."""

    def lines(self, lines: list[str]) -> list[str | LimapyError]:
        """Whole lines from elsewhere (a probe's output), likewise."""


class BootPrompt(Protocol):
    """The install media's "press any key" (limapy.guest.windows.bootprompt): fed what the machine shows."""

    poll: float

    def feed(self, serial: str, disk_written: int, now: float) -> Any:
        """-> an action with `press`, `reset`, `message` and `done`."""


class GuestOS(Protocol):
    name: str  # Lima's `os` value
    installs: bool  # installs itself from install media onto an empty disk (Windows); else boots its image
    remote_desktop: bool  # `limapy rdp` can reach it
    rsync: bool  # `shell --sync` can mirror a directory into it
    copies_to_host: bool  # Lima's copyToHost runs once it is ready
    ssh_phase: str  # the host agent's event phase when its SSH first answers

    # -- create -----------------------------------------------------------------------------------------------
    def fetch(self, spec: Spec, get: Get, say: Say) -> Fetched:
        """What `create` downloads and checks before the instance exists (refusals first)."""

    # -- a boot, as the engines plan it ---------------------------------------------------------------------------
    def boot_files(self, inst: Instance, spec: Spec) -> BootFiles:
        """What the instance directory says about this boot (reads only: `start --dry-run` runs it)."""

    def devices(self, spec: Spec, stage: str | None) -> Devices:
        """The machine's devices for a boot at install `stage` (limapy.guest.boot.INSTALL, ...; None: no install)."""

    def first_boot_media(self, inst: Instance, spec: Spec, files: BootFiles, *, iid: str, mac: str) -> Media | None:
        """The media to write for this boot (None: none, e.g. an installed Windows)."""

    def stage_notice(self, stage: str | None) -> str | None:
        """What `start` says about a boot at `stage` (an install that continues)."""

    def write_media(self, inst: Instance, spec: Spec, media: Media, ssh_keys: list[str]) -> None:
        """Write the first-boot media (materialize; never a dry run)."""

    def boot_timeout(self, inst: Instance, emulated: bool) -> float | None:
        """`start`'s default wait for READY when this boot needs longer (an install); None: the usual."""

    # -- the host agent ---------------------------------------------------------------------------------------
    def probe(self, *, iid: str, resume: bool, ssh_up: bool, now: float) -> str:
        """The readiness probe's command (a resumed guest's first one may set its clock too)."""

    def probe_ready(self, result: ProbeResult, *, iid: str, resume: bool) -> bool:
        """The probe's answer says the boot scripts and provisioning are done."""

    def after_resume(self, conn: Conn, first: ProbeResult, now: float) -> bool:
        """Set a resumed guest's clock to `now` (or check that its first probe did). True when it was set."""

    def install_phases(self, inst: Instance) -> InstallPhases | None:
        """The reader of an install's progress lines (asked while its install media are attached)."""

    def install_progress(self, written: int) -> str:
        """The event phase while an install has written `written` bytes of the disk (before SSH answers)."""

    def boot_prompt(self, now: float, disk_base: int) -> BootPrompt:
        """The install media's boot prompt, when a boot needs its keys pressed (BootPlan.answer_boot_prompt)."""

    def ready_warnings(self, conn: Conn) -> list[str]:
        """What the guest's own setup left to say once ready."""

    def ready_errors(self, result: ProbeResult) -> list[str]:
        """What failed in this boot's setup (provisioning), read from the ready probe's answer: the guest runs,
        degraded, and `start` fails with it (Lima's degraded status)."""

    def booted(self, inst: Instance) -> None:
        """The host's record of a boot that became ready (Windows: the install finished)."""

    def listeners(self) -> ListenerQuery | None:
        """Its listening sockets, for automatic port forwards (None: it has no way to list them)."""

    def host_folders(self) -> HostFolders | None:
        """How it mounts host folders (None: it cannot yet, it is `plain` there; issue 26 adds Windows')."""

    def settle(self) -> str | None:
        """A command that returns once the guest's boot has ended (its init system's start-up jobs), for `suspend`
        to wait on before it saves the state: a state saved mid-boot makes every resume and every clone of it
        finish the boot again. None: nothing to wait for."""

    def clone_identity(self, spec: Spec, name: str) -> CloneIdentity | None:
        """What gives a clone resumed from its source's saved state its own identity, run once over SSH before
        it is called ready (Linux: hostname, machine-id, SSH host keys; Windows: SSH host keys); None: it has none
        to give. May take a moment (key generation): the host agent asks while the clone resumes."""

    def clone_prepare(self, src: Instance, new: Instance, spec: Spec, *, generalize: bool, resumes: bool,
                      say: Say) -> None:  # fmt: skip
        """Make `new` (a clone of `src`, its files copied, in its directory being created) a machine of its own:
        at its first boot for a stopped source (Windows: an identity for its first boot; Linux: nothing, its seed's
        instance-id changes at every boot), or `resumes` from a suspended one (clone_identity at its resume: say
        what it keeps). `generalize`: a new machine SID too (Windows' sysprep), or an error."""

    # -- shell and copy ---------------------------------------------------------------------------------------
    def shell_script(self, spec: Any, command: Sequence[str], *, workdir: str | None, shell: str | None,
                     env: Mapping[str, str] | None, cwd: Path | None, host_home: Path | None) -> str:  # fmt: skip
        """The remote command `limapy shell` sends (Lima's semantics, lima-reference.md §1.3)."""

    def copy_path(self, path: str) -> str:
        """A guest path of `limapy copy` as scp and rsync are given it (issue 26: Windows' drive letters)."""


_LOADED: dict[str, GuestOS] = {}


def load(name: str) -> GuestOS:
    """The guest OS `name` (Lima's `os` value); one line when limapy has no package for it."""
    modules = registry()
    module = modules.get(name)
    if module is None:
        raise LimapyError(f"limapy cannot run `os: {name}` guests", hint=f"it runs: {', '.join(sorted(modules))}")
    found = _LOADED.get(module)
    if found is None:
        found = _LOADED[module] = importlib.import_module(module).GUEST
    return found


def for_spec(spec: ShellSpec) -> GuestOS:
    """The instance's guest OS, chosen by its `os` field (a `Spec` or a summary's View)."""
    return load(str(getattr(spec.os, "value", spec.os)))
