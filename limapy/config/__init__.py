"""Read a lima.yaml exactly as Lima does: load + embed `base:`, layer defaults, fill, validate.

    loaded = load_config("templates/default.yaml")   # raises ConfigError listing every problem
    loaded.cfg["cpus"]
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from limapy.base.errors import ConfigError
from limapy.config.model import Spec

if TYPE_CHECKING:
    from limapy.base.records import Listed
    from limapy.config.locate import Fetcher


def listed(cfg: dict[str, Any]) -> Listed:
    """The filled fields Lima's `list --json` echoes as they are (additionalDisks, networks, param)."""
    return {
        "additionalDisks": cfg.get("additionalDisks") or [],
        "network": cfg.get("networks") or [],
        "param": cfg.get("param") or {},
    }


@dataclass
class Loaded:
    doc: Any  # limapy.config.load.Document (the embedded template, not filled)
    cfg: dict[str, Any]  # filled: for lima.yaml, `validate --fill` and `list --json`; read it through `spec`
    warnings: list[str] = field(default_factory=list)

    @functools.cached_property
    def spec(self) -> Spec:
        return Spec.from_cfg(self.cfg)

    def listed(self) -> Listed:
        return listed(self.cfg)


class InstanceLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dir(self) -> Path: ...

    @property
    def lima_yaml(self) -> Path: ...


def _read_layer(path: Path) -> dict[str, Any] | None:
    from limapy.config.load import load

    if not path.is_file():
        return None
    return load(str(path), embed=False).data


def check(
    doc: Any,
    *,
    name: str | None = None,
    instance_dir: Path | None = None,
    host: Any = None,
    bootable: bool = True,
) -> Loaded:
    """Validate an embedded Document; raise ConfigError with every problem as `FILE:LINE:COL: ...`.

    `bootable`: also limapy's rules for what its `start` can boot (validate_instance); False checks Lima's
    validation alone (Lima's golden cases)."""
    from limapy.base import dirs
    from limapy.config import defaults, hostinfo
    from limapy.config.schema import binary_problems, schema_problems, unknown_keys
    from limapy.config.validate import lima_warnings, unused_params, validate
    from limapy.config.validate_instance import instance_problems
    from limapy.config.yamlread import format_path

    _remote_policy(doc)
    _remote_sockets(doc)
    warnings = list(doc.warnings)
    for path in unknown_keys(doc.data):
        warnings.append(f"{doc.where(path)}: warning: field `{format_path(path)}` is unknown to Lima 2.2 (typo?)")
    problems = unused_params(doc.data)
    problems += binary_problems(doc.data) + schema_problems(doc.data)
    cfg: dict[str, Any] = {}
    if not problems:
        d = _read_layer(dirs.config_dir() / "default.yaml")
        o = _read_layer(dirs.config_dir() / "override.yaml")
        layered = defaults.layer(d, doc.data, o)
        warnings += _containerd_warnings(doc, layered) + _network_warnings(doc, layered)
        if layered.get("nestedVirtualization") is True and layered.get("vmType") in (None, "", "default", "qemu"):
            where = doc.where(("nestedVirtualization",))
            warnings.append(f"{where}: warning: field `nestedVirtualization` is true: QEMU takes no setting for it "
                            "(Lima's QEMU driver ignores it too); with KVM the guest sees the host CPU's "
                            "virtualization extensions when the host allows nested guests")  # fmt: skip
        fill_warnings: list[str] = []
        cfg = defaults.fill(
            layered,
            host=host or hostinfo.detect(),
            name=name or doc.name_hint or "default",
            instance_dir=str(instance_dir) if instance_dir else None,
            warnings=fill_warnings,
        )
        warnings += [f"{doc.source}: {w}" for w in fill_warnings]
        problems = validate(cfg) + (instance_problems(cfg) if bootable else [])
        warnings += [f"{doc.source}: {w}" for w in lima_warnings(cfg)]
        if doc.incomplete:  # what the missing base would have provided cannot be required
            problems = [p for p in problems if p.path != ("images",)]
    if problems:
        # Lima's own wording after the position (the schema's problems already name their field)
        err = ConfigError([f"{doc.where(p.path)}: {p.message}" for p in problems])
        err.warnings = warnings  # type: ignore[attr-defined]
        raise err
    return Loaded(doc, cfg, warnings)


def _containerd_warnings(doc: Any, layered: dict[str, Any]) -> list[str]:
    """A configuration that asks for containerd (not Lima's default `user: true`, which is filled for every
    Linux guest, but a `true` set in a template, `_config/*.yaml` or `--containerd`) learns it gets none."""
    cont = layered.get("containerd")
    if not isinstance(cont, dict) or layered.get("plain") is True:
        return []
    return [f"{doc.where(('containerd', key))}: warning: field `containerd.{key}` is true, but limapy does not "
            "install containerd (the field is filled as Lima fills it, and ignored)"
            for key in ("system", "user") if cont.get(key) is True]  # fmt: skip


def _network_warnings(doc: Any, layered: dict[str, Any]) -> list[str]:
    """`networks` (socket_vmnet, `lima:user-v2`, vzNAT; `--network`) is valid Lima, and limapy attaches none of
    them: each entry is a warning, so a guest that misses its second NIC is no surprise."""
    out = []
    for i, net in enumerate(layered.get("networks") or []):
        if not isinstance(net, dict):
            continue
        what = next((f"{k}: {net[k]}" for k in ("lima", "socket", "vzNAT") if net.get(k) not in (None, "")), "")
        out.append(f"{doc.where(('networks', i))}: warning: networks[{i}] ({what}) is not attached: limapy gives "
                   "the guest its user-mode network only (127.0.0.1 forwards)")  # fmt: skip
    return out


def _remote_policy(doc: Any) -> None:
    """What a template from the network may not name (config.trust): host files to read or write later, host
    paths as images, kernels, firmware or Windows media, URLs on local addresses. Mounts stay: they are the
    user's own choice, shown in the template. Its `base:` and `file:` references were checked while loading."""
    from limapy.config import trust

    problems = trust.problems(doc)
    if problems:
        from limapy.config.locate import REMOTE_HINT, RemoteReadsLocal

        raise RemoteReadsLocal(problems, hint=REMOTE_HINT)


def load_config(
    locator: str,
    *,
    name: str | None = None,
    fetcher: Fetcher | None = None,
    instance_dir: Path | None = None,
) -> Loaded:
    from limapy.config.load import load

    doc = load(locator, fetcher=fetcher)
    return check(doc, name=name, instance_dir=instance_dir)


def load_instance(inst: InstanceLike) -> Loaded:
    """An instance's lima.yaml, layered and filled, as every command sees it."""
    return load_config(str(inst.lima_yaml), name=inst.name, instance_dir=inst.dir)


def instance_spec(inst: InstanceLike) -> Spec:
    return load_instance(inst).spec


#: Where a template from the network may put a host socket: `NAME` (filled into <instance>/sock/NAME) or
#: `{{.Dir}}/sock/NAME`, as Lima's own templates write it.
_REMOTE_SOCKET = re.compile(r"(?:\{\{\s*\.Dir\s*\}\}/sock/)?[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")


def _remote_sockets(doc: Any) -> None:
    """A template from the network names host sockets in the instance's `sock/` directory only: elsewhere a
    forward would replace a host file (the host agent removes a stale socket before forwarding)."""
    if not doc.remote_sources or doc.allow_local:
        return
    from limapy.config.locate import REMOTE_HINT, RemoteReadsLocal

    problems = []
    for i, pf in enumerate(doc.data.get("portForwards") or []):
        sock = pf.get("hostSocket") if isinstance(pf, dict) else None
        path = ("portForwards", i, "hostSocket")
        if not sock or doc.mark(path)[0] not in doc.remote_sources:
            continue
        ok = isinstance(sock, str) and _REMOTE_SOCKET.fullmatch(sock) and ".." not in sock.split("/")
        if not ok:
            problems.append(f"{doc.where(path)}: refusing the host socket `{sock}` (portForwards[{i}].hostSocket): "
                            "this template came from the network; it may name a socket in the instance's sock/ "
                            "directory only")  # fmt: skip
    if problems:
        raise RemoteReadsLocal(problems, hint=REMOTE_HINT)
