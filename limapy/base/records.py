"""The JSON that travels between limapy's parts and processes, where limapy gives it its shape (or keeps Lima's):
`list --json` rows, the summary's view, the host agent's events, the automatic forwards' record, a libvirt host's
domains, and what QEMU's monitor and qemu-img answer. TypedDicts, for mypy: the modules on the hot paths of
`shell` and `list` import this one only under TYPE_CHECKING (typing costs milliseconds to import).

A lima.yaml as data (`Config`: a template, a layered or a filled configuration) keeps Lima's shape: limapy.config
reads it, everything else reads the typed `Spec` made from it (tests/unit/test_architecture.py checks that).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

#: A lima.yaml as data: Lima's shape (pkg/limatype), read by limapy.config and carried elsewhere.
Config = dict[str, Any]


class ForwardRow(TypedDict):
    """A forward the host agent holds now (its record; `list --json`'s `portForwards`), as Lima's events name one."""

    type: str  # forward, reverse
    protocol: str  # tcp, unix
    guestAddr: str  # IP:PORT or a socket in the guest
    hostAddr: str  # 127.0.0.1:PORT or a socket under the instance dir


class Row(TypedDict, total=False):
    """One instance as `limactl list --json` shows it (Lima's keys), with limapy's extensions."""

    name: str
    hostname: str
    status: str
    dir: str
    vmType: str
    driver: str  # limapy: the engine
    arch: str
    cpus: int
    memory: int
    disk: int
    message: str
    additionalDisks: list[Any]
    network: list[Any]
    sshLocalPort: int
    sshConfigFile: str
    hostAgentPID: int
    driverPID: int
    errors: list[str]
    config: Mapping[str, Any]
    sshAddress: str
    protected: bool
    limaVersion: str
    param: Mapping[str, str]
    rdpAddress: str  # limapy: a guest's Remote Desktop
    portForwards: list[ForwardRow]  # limapy: the automatic forwards open now


class HostFields(TypedDict):
    """What `list --format` templates may name beside an instance's fields (Lima's FormatData)."""

    HostOS: str
    HostArch: str
    LimaHome: str
    IdentityFile: str


class ViewUser(TypedDict):
    name: str
    shell: str


class ViewSSH(TypedDict):
    load_dot_ssh_pubkeys: bool
    forward_agent: bool
    forward_x11: bool
    forward_x11_trusted: bool


class ViewMount(TypedDict):
    location: str


class ViewFields(TypedDict):
    """What `list` and `shell` read of a configuration, kept in its summary (limapy.instance.summary.View)."""

    vm_type: str
    arch: str
    cpus: int
    memory: int
    disk: int
    message: str
    os: str
    plain: NotRequired[bool]  # absent from an older limapy's summary
    view_user: ViewUser
    view_ssh: ViewSSH
    view_mounts: list[ViewMount]


class Listed(TypedDict):
    """A configuration's fields as `list --json` shows them (Go's marshalling of Lima's types)."""

    additionalDisks: list[Any]
    network: list[Any]
    param: Mapping[str, str]


class Status(TypedDict, total=False):
    """Lima's host agent status (pkg/hostagent/events), as limapy's host agent writes it and Lima's may."""

    running: bool
    degraded: bool
    exiting: bool
    errors: list[str]
    sshLocalPort: int
    cloudInitProgress: Mapping[str, Any]
    portForward: Mapping[str, Any]


class Event(TypedDict):
    """A line of ha.stdout.log: Lima's event (time, status) and limapy's phase and message."""

    time: str
    status: Status
    phase: str
    message: NotRequired[str]


class DomainRow(TypedDict):
    """A domain limapy made on a libvirt host (`list --connect`)."""

    name: str
    status: str
    domain: str
    host: str  # the machine whose limapy made it
    here: bool  # this machine has the instance
    dir: str


class QMPEvent(TypedDict, total=False):
    """A QMP event (QEMU's docs/interop/qmp-spec)."""

    event: str
    data: Mapping[str, Any]
    timestamp: Mapping[str, int]


#: `query-migrate`'s answer: `status` (setup, active, completed, failed, ...), `error-desc` on failure.
MigrateInfo = TypedDict("MigrateInfo", {"status": str, "error-desc": str, "ram": Mapping[str, Any]}, total=False)
#: `qemu-img info --output=json`: the fields limapy reads.
ImageInfo = TypedDict(
    "ImageInfo",
    {"virtual-size": int, "actual-size": int, "format": str, "backing-filename": str,
     "full-backing-filename": str, "backing-filename-format": str, "format-specific": Mapping[str, Any],
     "snapshots": list[Mapping[str, Any]]},
    total=False,
)  # fmt: skip
