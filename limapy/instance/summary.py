"""Instance summaries: an instance's filled configuration, cached beside it, keyed by what it was read from.

`shell`, `copy`, `list` and shell completion need an instance's filled configuration, and reading it costs a
YAML parse, the layering and the fill (ruamel alone is ~20 ms to import). So every full read of an instance
(`create`, `start`, `edit`, a `list` that found no fresh summary) leaves `<dir>/limapy-summary.json` (0600)
holding the filled configuration and the key it is valid for:

- limapy's version (the fill changes with it), the host user's uid, `$HOME` and the host's CPU count (the
  fill reads them: the guest user, `{{.Home}}`, Lima's default cpus);
- size, mtime (ns), inode and ctime (ns) of every file the configuration was read from: `lima.yaml`, any local base or
  provision file it names, and `$LIMAPY_HOME/_config/{default,override}.yaml` (their absence is recorded too).

A summary is used only when every part of its key still holds; anything else (missing, unreadable, corrupt,
another version, a changed or new file, a configuration with a part read from the network or stdin) means
a full read, which writes a new summary. The summary is a cache and never the truth: removing it loses
nothing, and a full read always wins.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path

from limapy.base import dirs, stamps

TYPE_CHECKING = False  # typing itself costs ~4 ms on the hot path; mypy still sees the block
if TYPE_CHECKING:
    from typing import Any

    from limapy.base.records import Config as Filled
    from limapy.base.records import Listed, ViewFields
    from limapy.config import Loaded
    from limapy.config.model import Spec
    from limapy.instance.store import Instance

VERSION = 6  # 5: issue 27 (Go templates, Lima's FillDefault fields, params as Go strings); 6: the view's `os`


class _Obj:
    """Attributes from a JSON object, for the few fields the hot path reads (see `View`)."""

    def __init__(self, fields: Mapping[str, object]) -> None:
        self.__dict__.update(fields)


class View:
    """What `list` and `shell` read of the configuration, precomputed from the `Spec` when the summary is
    written, so they need neither the YAML reader nor the config model: the fields of a list row, and
    limapy.ssh.ShellSpec (the guest OS, the user, the ssh options, the mount locations)."""

    vm_type: str
    arch: str
    cpus: int
    memory: int
    disk: int
    message: str
    os: str  # the guest OS (Lima's `os` value: limapy.guest picks its shell from it)
    plain: bool  # no forwards: the host agent makes no ControlMaster (absent from an older limapy's summary)

    def __init__(self, fields: ViewFields) -> None:
        self.__dict__.update({k: v for k, v in fields.items() if not k.startswith("view_")})
        self.user = _User(fields["view_user"])
        self.ssh = _SSH(fields["view_ssh"])
        self.mounts = tuple(_Mount(m) for m in fields["view_mounts"])


class _User(_Obj):
    name: str
    shell: str


class _SSH(_Obj):
    load_dot_ssh_pubkeys: bool
    forward_agent: bool
    forward_x11: bool
    forward_x11_trusted: bool


class _Mount(_Obj):
    location: str


def view_fields(spec: Spec) -> ViewFields:
    """The `View` of `spec`, as JSON."""
    return {
        "vm_type": spec.vm_type, "arch": spec.arch, "cpus": spec.cpus, "memory": spec.memory, "disk": spec.disk,
        "message": spec.message, "os": spec.os.value, "plain": spec.plain,
        "view_user": {"name": spec.user.name, "shell": spec.user.shell},
        "view_ssh": {"load_dot_ssh_pubkeys": spec.ssh.load_dot_ssh_pubkeys, "forward_agent": spec.ssh.forward_agent,
                "forward_x11": spec.ssh.forward_x11, "forward_x11_trusted": spec.ssh.forward_x11_trusted},
        "view_mounts": [{"location": m.location} for m in spec.mounts],
    }  # fmt: skip


def _layers() -> list[Path]:
    conf = dirs.config_dir()
    return [conf / "default.yaml", conf / "override.yaml"]


class Summary:
    """A filled configuration, as a full read would give it (`cfg`), with its `Spec` built on demand."""

    def __init__(self, cfg: Filled | str, view: ViewFields | None = None, warnings: list[str] | None = None,
                 listed: Listed | None = None) -> None:  # fmt: skip
        self._cfg = cfg  # from a summary: its JSON text, parsed only when asked for (`list` tables never do)
        self._view = view
        self._listed = listed
        self.warnings = warnings or []

    @functools.cached_property
    def view(self) -> View:
        return View(self._view if self._view is not None else view_fields(self.spec))

    @functools.cached_property
    def cfg(self) -> Filled:
        if isinstance(self._cfg, str):
            try:
                value = json.loads(self._cfg)
            except ValueError:  # only a hand-edited summary: `list --json` shows no config then
                return {}
            return value if isinstance(value, dict) else {}
        return self._cfg

    @functools.cached_property
    def json_cfg(self) -> Filled:
        """`cfg` as `list --json` shows it: plain JSON (a summary's own `cfg` is lossy there: see `json_default`;
        only a full read's, which `start` uses, carries binary content as bytes)."""
        if isinstance(self._cfg, str):
            return self.cfg
        plain: Filled = _plain(self._cfg)
        return plain

    @functools.cached_property
    def spec(self) -> Spec:
        from limapy.config.model import Spec

        return Spec.from_cfg(self.cfg)

    def listed(self) -> Listed:
        """The filled fields Lima's `list --json` echoes as they are (additionalDisks, networks, param)."""
        if self._listed is not None:
            return self._listed
        from limapy.config import listed

        return listed(self.cfg)


def json_default(value: object) -> str:
    """How JSON shows what it has no type for: binary content (a data provision's file) as Go's encoding/json
    shows Lima's string holding it (UTF-8, invalid bytes as U+FFFD); anything else as its text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _plain(value: Any) -> Any:
    """The filled configuration as JSON sees it (ruamel's scalars are subclasses of str/int/float/bool)."""
    return json.loads(json.dumps(value, default=json_default))


def write(inst: Instance, loaded: Loaded) -> None:
    """Record `loaded` (just read in full) as `inst`'s summary; silently nothing when it cannot be keyed."""
    from limapy.instance import store

    doc = loaded.doc
    if doc is None or not getattr(doc, "local", False):
        return
    files = [inst.lima_yaml, *(Path(f) for f in doc.files), *_layers()]
    record = {
        "v": VERSION,
        "host": stamps.host(),
        "files": stamps.record(files),
        "warnings": list(loaded.warnings),
        "view": view_fields(loaded.spec),
        "listed": _plain(loaded.listed()),
        "cfg": json.dumps(loaded.cfg, separators=(",", ":"), default=json_default),  # a string: see Summary.cfg
    }
    try:
        store.atomic_write(inst.summary_file, json.dumps(record, separators=(",", ":")).encode(), 0o600)
    except OSError:
        pass  # a read-only instance dir: every command reads in full, as without summaries


_VIEW_TYPES = {"vm_type": str, "arch": str, "cpus": int, "memory": int, "disk": int, "message": str,
               "os": str, "view_user": dict, "view_ssh": dict, "view_mounts": list}  # fmt: skip


def _view_ok(view: object) -> bool:
    if not isinstance(view, dict):
        return False
    if not all(isinstance(view.get(k), t) for k, t in _VIEW_TYPES.items()):
        return False
    user, ssh = view["view_user"], view["view_ssh"]
    return (
        all(isinstance(user.get(k), str) for k in ("name", "shell"))
        and all(isinstance(ssh.get(k), bool) for k in _SSH.__annotations__)
        and all(isinstance(m, dict) and isinstance(m.get("location"), str) for m in view["view_mounts"])
    )


def _fresh(record: Mapping[str, Any], inst: Instance) -> bool:
    if record.get("v") != VERSION or record.get("host") != stamps.host():
        return False
    files = record.get("files")
    if not (isinstance(files, list) and isinstance(record.get("cfg"), str) and _view_ok(record.get("view"))):
        return False
    listed = record.get("listed")
    if not (isinstance(listed, dict) and {"additionalDisks", "network", "param"} <= listed.keys()):
        return False
    named = {str(inst.lima_yaml), *(str(p) for p in _layers())}
    return stamps.unchanged(files) and named <= {e[0] for e in files}


def cached(inst: Instance) -> Summary | None:
    """`inst`'s summary when it is fresh, else None. Never raises for a bad file."""
    from limapy.base.errors import LimapyError
    from limapy.instance import store

    try:
        fd = store.open_private(inst.summary_file, os.O_RDONLY)
    except (OSError, LimapyError):  # absent, unreadable, or a link limapy did not make
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            record = json.loads(f.read(16 * 1024 * 1024))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not _fresh(record, inst):
        return None
    warnings = record.get("warnings")
    return Summary(record["cfg"], record["view"], [str(w) for w in warnings] if isinstance(warnings, list) else [],
                   record["listed"])


def load(inst: Instance) -> Summary:
    """`inst`'s filled configuration: the fresh summary, else a full read (which leaves a new summary).
    Raises what the full read raises (a ConfigError for a broken lima.yaml)."""
    found = cached(inst)
    if found is not None:
        return found
    return refresh(inst)


def refresh(inst: Instance) -> Summary:
    """A full read of `inst`'s configuration, recorded as its summary (what `start` and the host agent use)."""
    from limapy import config

    loaded = config.load_instance(inst)
    write(inst, loaded)
    return Summary(loaded.cfg, None, list(loaded.warnings))


def spec(inst: Instance) -> Spec:
    return load(inst).spec
