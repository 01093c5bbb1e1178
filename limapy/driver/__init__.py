"""The driver seam: what an engine that runs instances provides, and which engine runs which instance.

An engine is a module exposing `DRIVER`, an object with the `Driver` methods below. `qemu` (QEMU run
directly, limapy.driver.qemu) is built in; `LIMAPY_DRIVER_MODULES=NAME=module[,NAME=module]` registers more
(the tests' toy driver). A new instance gets the driver `LIMAPY_DRIVER` names, else the one its `vmType`
implies; the choice is kept in the instance's `driver` file when it is not that default, so every later
command finds the same engine. Commands and the host agent reach the engine only through here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.instance import pids, store

# `status` is on the hot path of `shell`, `list` and completion: this module imports neither typing nor
# dataclasses (~15 ms together) at run time. The protocols are plain classes then; mypy sees Protocols.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from limapy.base.records import DomainRow
    from limapy.config.model import Spec
    from limapy.driver.plan import BootPlan
    from limapy.guest import Fetched as Fetched  # what create fetched (the guest OS's), for the engine to lay out
else:
    Protocol = object

ENV_MODULES = "LIMAPY_DRIVER_MODULES"
ENV_DRIVER = "LIMAPY_DRIVER"
BUILTIN = {"qemu": "limapy.driver.qemu", "libvirt": "limapy.driver.libvirt"}
#: Engines whose machine process is found without importing the engine (pid file + command-line marks), so
#: `list`, `shell` and completion tell Running from Stopped cheaply; the engine's own `pid` must agree.
LIGHT_PIDS: dict[str, Callable[[store.Instance], int | None]] = {
    "qemu": lambda inst: pids.live(inst.qemu_pid, pids.qemu_marks(inst.name, inst.qemu_pid)),
    # the domain runs on the libvirt host; the host agent that runs it names itself in `libvirt.active`
    "libvirt": lambda inst: pids.live(inst.dir / "libvirt.active", pids.hostagent_marks(inst.name, inst.dir)),
}
#: The driver a `vmType` means when no other is chosen; Lima's other types have none in limapy.
VM_TYPES = {"qemu": "qemu"}

Say = Callable[[str], None]


def __getattr__(name: str) -> object:
    """`Fetched` (limapy.guest's), imported when an engine asks for it: `status` never needs the guest seam."""
    if name == "Fetched":
        from limapy.guest import Fetched

        return Fetched
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Machine(Protocol):
    """A running instance, owned by the host agent that launched it."""

    pid: int

    def alive(self) -> bool: ...

    def check(self) -> None:
        """Raise LimapyError when the machine is stuck for good (QEMU: a KVM internal error)."""

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the machine to end; True when it has."""

    def failure(self) -> str:
        """The engine's last words (QEMU's stderr tail), for an error message."""

    def disk_allocated(self) -> int:
        """Bytes the guest has written to its disk so far (the Windows boot-prompt logic watches it)."""

    def send_key(self, key: str) -> None: ...

    def reset(self) -> None: ...

    def request_powerdown(self) -> None:
        """Ask the guest to power down (ACPI) and return at once; `shutdown` then waits for it without asking again
        (the host agent tidies its services meanwhile). Best effort: `shutdown` asks when this could not."""

    def shutdown(self, timeout: float) -> bool:
        """Ask the guest to power down, force it after `timeout`; helpers stop after. True when it was clean."""


class Driver(Protocol):
    name: str

    def check(self, spec: Spec, connect: str | None = None) -> None:
        """Refuse, at create and before any download, what this engine cannot boot on this host (`connect`:
        the engine's host as `create --connect` names it; only engines with remote hosts take one)."""

    def adapt(self, spec: Spec) -> Spec:
        """The configuration as this engine runs it (libvirt: host folders over reverse-sshfs)."""

    def create(self, tmp: Path, spec: Spec, fetched: Fetched, say: Say) -> None:
        """Lay the disk and media out in the instance's directory being created (`tmp`)."""

    def plan(self, inst: store.Instance, spec: Spec) -> BootPlan:
        """What a boot would do. Reads the instance and the host; writes nothing (`start --dry-run`)."""

    def materialize(self, inst: store.Instance, spec: Spec, plan: BootPlan) -> None:
        """Make the plan's files: disk size, firmware store, first-boot media, ssh.config."""

    def launch(self, inst: store.Instance, plan: BootPlan) -> Machine:
        """Start helpers and the machine; return once the engine accepts commands."""

    def emulated(self, spec: Spec) -> bool:
        """True when this host runs `spec`'s CPU in software (no KVM/HVF): boots take several times longer."""

    def pid(self, inst: store.Instance) -> int | None:
        """The engine's process for `inst` when one runs (`list`'s driverPID), else None."""

    def stop(self, inst: store.Instance, timeout: float) -> bool:
        """Stop a machine whose host agent is gone: power down, force after `timeout`. True when clean."""

    def force_stop(self, inst: store.Instance) -> None:
        """Stop now, without the guest (its disk caches still reach the disk), and clean up after it."""

    def suspend(self, inst: store.Instance) -> None:
        """Save the running machine's whole state in the instance dir and stop it (limapy.driver.suspended);
        the next `plan` resumes from it. An engine that cannot raises LimapyError and the machine runs on."""

    def clone_suspended(self, src: store.Instance, new: store.Instance, final_dir: Path, say: Say) -> None:
        """`clone` of a suspended instance: make `new` (in its temp dir, becoming `final_dir`) a suspended clone
        that resumes from `src`'s saved state, sharing its disk read-only; or LimapyError."""

    def remove(self, inst: store.Instance) -> None:
        """`delete`: remove what the engine keeps outside the instance dir (a libvirt domain and volumes)."""

    def screenshot(self, inst: store.Instance, out: Path) -> None: ...

    def console_paths(self, inst: store.Instance) -> Mapping[str, Path]:
        """Where to look when a boot goes wrong: serial log, the engine's own log, ..."""

    def snapshot(self, inst: store.Instance, action: str, tag: str) -> None:
        """`create`, `apply` or `delete` snapshot `tag`: of the disk when stopped, of the whole running machine
        (through the engine) when running; refused with the reason when the engine cannot."""

    def snapshots(self, inst: store.Instance) -> list[Snapshot]:
        """The instance's snapshots, oldest first."""


class Snapshot:
    """One snapshot of an instance (a plain class: this module stays free of `dataclasses`, see above)."""

    __slots__ = ("date", "id", "tag", "vm_clock", "vm_state_size")

    def __init__(self, tag: str, vm_state_size: int, date: int, vm_clock: float, id: str = "") -> None:
        self.tag = tag
        self.id = id  # the engine's own ID (QEMU numbers its snapshots), "" when it has none
        self.vm_state_size = vm_state_size  # bytes of machine state (0: a disk-only snapshot, taken while stopped)
        self.date = date  # seconds since the epoch
        self.vm_clock = vm_clock  # the guest's running time when taken, seconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Snapshot({self.tag!r}, {self.vm_state_size}, {self.date}, {self.vm_clock})"


def check_ssh_port(spec: Spec) -> int:
    """The configured ssh.localPort (0 = pick one at boot); refused when something listens on it."""
    from limapy.base import netutil

    want = spec.ssh.local_port
    if want and not netutil.port_is_free(want):
        raise LimapyError(
            f"ssh.localPort {want} is already in use on 127.0.0.1",
            hint="free it, or set `ssh.localPort: 0` to let limapy pick a free port",
        )
    return want


def registry() -> dict[str, str]:
    """Driver name -> module: the built-in ones, then `LIMAPY_DRIVER_MODULES`."""
    out = dict(BUILTIN)
    for item in (os.environ.get(ENV_MODULES) or "").split(","):
        name, sep, module = item.strip().partition("=")
        if sep and name and module:
            out[name.strip()] = module.strip()
    return out


_LOADED: dict[str, Driver] = {}


def load(name: str) -> Driver:
    modules = registry()
    module = modules.get(name)
    if module is None:
        raise LimapyError(f"driver `{name}` does not exist", hint=f"drivers: {', '.join(sorted(modules))}")
    drv = _LOADED.get(module)
    if drv is None:
        drv = importlib.import_module(module).DRIVER
        _LOADED[module] = drv
    return drv


def chosen_for(spec: Spec, requested: str | None = None) -> str:
    """The driver a new instance of `spec` gets: `requested` (`--driver`), else $LIMAPY_DRIVER, else its
    vmType's."""
    env = (requested or os.environ.get(ENV_DRIVER) or "").strip()
    if env:
        load(env)  # an unknown name fails here, before anything is created
        return env
    name = VM_TYPES.get(spec.vm_type)
    if name is None:
        raise LimapyError(
            f"vmType `{spec.vm_type}` is not supported by limapy (it runs: {', '.join(sorted(VM_TYPES))})",
            hint="set `vmType: qemu`",
        )
    return name


def name_of(inst: store.Instance) -> str:
    """The driver `inst` was created with (its `driver` file; QEMU when there is none)."""
    try:
        text = inst.driver_file.read_text().strip()
    except FileNotFoundError:
        return "qemu"
    except OSError as e:
        raise LimapyError(f"cannot read {inst.driver_file}: {e.strerror}") from None
    return text or "qemu"


def for_instance(inst: store.Instance) -> Driver:
    return load(name_of(inst))


def inventory(connect: str | None, engine: str = "libvirt") -> list[DomainRow]:
    """The machines limapy made that an engine holds on a host (`list --connect`): rows with name, status,
    domain, host (the machine whose limapy made it), here (this machine has the instance) and dir. An
    optional capability: only engines that keep machines on a host of their own have it."""
    listing = getattr(load(engine), "domains", None)
    if listing is None:
        raise LimapyError(f"the {engine} driver keeps no machines on a host to list")
    rows: list[DomainRow] = listing(connect)
    return rows


def record(tmp: Path, name: str, connect: str | None = None) -> None:
    """Keep a driver choice in a new instance's directory (nothing to keep for the default), and the engine's
    host as asked for (`driver.uri`; the engine completes it at create)."""
    if name != "qemu":
        store.atomic_write(store.Instance(tmp.name, tmp).driver_file, f"{name}\n".encode(), 0o644)
    if connect:
        store.atomic_write(tmp / "driver.uri", f"{connect}\n".encode(), 0o600)


def driver_pid(inst: store.Instance) -> int | None:
    try:
        name = name_of(inst)
        light = LIGHT_PIDS.get(name) if name in BUILTIN and registry()[name] == BUILTIN[name] else None
        return light(inst) if light is not None else load(name).pid(inst)
    except LimapyError:
        return None


def status(inst: store.Instance) -> str:
    """Running when host agent and machine are alive, Stopped when neither is, Broken otherwise."""
    if not inst.lima_yaml.is_file():
        return store.BROKEN
    ha = store.ha_pid(inst)
    vm = driver_pid(inst)
    if ha and vm:
        return store.RUNNING
    if ha is None and vm is None:
        # suspended.present, without importing that module on the hot path of `list` and `shell`
        return store.SUSPENDED if inst.suspend_record.is_file() else store.STOPPED
    return store.BROKEN
