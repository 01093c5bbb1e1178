"""`limapy list`: Lima's columns, keys, formats and exit codes, read from instance summaries.

`list` runs on every Tab of shell completion and in scripts, so it reads each instance's summary
(limapy.instance.summary: a fresh one costs a JSON read, no YAML parse) and its pid files, and imports nothing
heavy unless a format needs it. `parse` is the whole argument grammar (the CLI's fast path); the typer
command builds the same `Request` for `--help` and what the fast path leaves to click.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from limapy import LIMA_COMPAT_VERSION
from limapy.base.errors import LimapyError, UsageError
from limapy.base.names import hostname_for
from limapy.instance import store

COLUMNS = ("NAME", "STATUS", "SSH", "VMTYPE", "ARCH", "CPUS", "MEMORY", "DISK", "DIR")
FORMATS = ("table", "json", "yaml")
#: Keys Lima's JSON always has; every other key is left out when empty (Go's `omitempty`).
ALWAYS = ("name", "hostname", "status", "dir", "vmType", "arch", "protected", "limaVersion")
#: Go field names (what `--format '{{.X}}'` and `--list-fields` use) for Lima's JSON keys.
GO_FIELDS = {
    "Name": "name", "Hostname": "hostname", "Status": "status", "Dir": "dir", "VMType": "vmType", "Arch": "arch",
    "CPUs": "cpus", "Memory": "memory", "Disk": "disk", "Message": "message", "AdditionalDisks": "additionalDisks",
    "Networks": "network", "SSHLocalPort": "sshLocalPort", "SSHConfigFile": "sshConfigFile",
    "HostAgentPID": "hostAgentPID", "DriverPID": "driverPID", "Errors": "errors", "Config": "config",
    "SSHAddress": "sshAddress", "Protected": "protected", "LimaVersion": "limaVersion", "Param": "param",
    "HostOS": "HostOS", "HostArch": "HostArch", "LimaHome": "LimaHome", "IdentityFile": "IdentityFile",
}  # fmt: skip
Say = Callable[[str], None]
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from limapy.base.records import HostFields, Row


class Request:
    """One `limapy list` invocation, parsed (a plain class: `dataclasses` costs ~10 ms to import)."""

    __slots__ = ("all_fields", "connect", "filters", "format", "json", "list_fields", "names", "quiet", "yq")

    def __init__(
        self,
        names: tuple[str, ...] = (),
        format: str | None = None,  # None: table (or json for --json / --yq)
        json: bool = False,
        quiet: bool = False,
        list_fields: bool = False,
        all_fields: bool = False,
        yq: tuple[str, ...] = (),
        filters: tuple[str, ...] = (),
        connect: str | None = None,  # list limapy's domains on this libvirt host instead
    ) -> None:
        self.connect = connect
        self.names, self.format, self.json, self.quiet = tuple(names), format, json, quiet
        self.list_fields, self.all_fields, self.yq, self.filters = list_fields, all_fields, tuple(yq), tuple(filters)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, k) for k in self.__slots__))

    def __repr__(self) -> str:
        return "Request(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


_VALUED = {"-f": "format", "--format": "format", "--yq": "yq", "-l": "filters", "--filter": "filters"}
_FLAGS = {"--json": "json", "-q": "quiet", "--quiet": "quiet", "--list-fields": "list_fields",
          "--all-fields": "all_fields"}  # fmt: skip


def parse(args: Sequence[str]) -> Request | None:
    """The list grammar (flags and names in any order, `--` ends flags); None for `--help`, an unknown flag
    or a flag missing its value (left to the CLI framework, which says so)."""
    lists: dict[str, list[str]] = {"yq": [], "filters": [], "names": []}
    format: str | None = None
    flags: set[str] = set()
    i, flags_done = 0, False
    while i < len(args):
        a = args[i]
        i += 1
        if flags_done or not a.startswith("-") or a == "-":
            lists["names"].append(a)
            continue
        if a == "--":
            flags_done = True
            continue
        key, eq, value = a.partition("=") if a.startswith("--") else (a, "", "")
        if key in _VALUED:
            if not eq:
                if i >= len(args):
                    return None
                value = args[i]
                i += 1
            field = _VALUED[key]
            if field in lists:
                lists[field].append(value)
            else:
                format = value
        elif key in _FLAGS and not eq:
            flags.add(_FLAGS[key])
        else:
            return None
    return Request(
        names=tuple(lists["names"]), format=format, json="json" in flags, quiet="quiet" in flags,
        list_fields="list_fields" in flags, all_fields="all_fields" in flags, yq=tuple(lists["yq"]),
        filters=tuple(lists["filters"]),
    )  # fmt: skip


# -- rows -------------------------------------------------------------------------------------------------


def _broken(name: str, path: Path, error: str) -> Row:
    return {
        "name": name, "hostname": hostname_for(name), "status": store.BROKEN, "dir": str(path), "vmType": "",
        "arch": "", "errors": [error], "protected": False, "limaVersion": LIMA_COMPAT_VERSION,
    }  # fmt: skip


def info(inst: store.Instance, *, full: bool = True) -> Row:
    """One instance as Lima's `limactl list --json` describes it (empty fields left out, as Lima does).
    `full=False`: what the table shows is exact, the rest (config, version, protection) is left out."""
    from limapy import driver
    from limapy.instance import summary

    if not inst.lima_yaml.is_file():
        return _broken(inst.name, inst.dir, f"{inst.lima_yaml}: not found")
    try:
        found = summary.load(inst)
        spec = found.view
    except Exception as e:  # a broken lima.yaml makes the instance Broken, never the listing fail
        row = _broken(inst.name, inst.dir, str(getattr(e, "message", e)))
        row["protected"] = inst.protected.exists()
        return row
    st = driver.status(inst)
    running = st == store.RUNNING
    version = ""
    if full:
        try:
            version = inst.lima_version.read_text().strip()
        except OSError:
            pass
    listed = found.listed()
    out: Row = {
        "name": inst.name,
        "hostname": hostname_for(inst.name),
        "status": st,
        "dir": str(inst.dir),
        "vmType": spec.vm_type,
        "driver": driver.name_of(inst),  # limapy extension: the engine that runs it (qemu, libvirt)
        "arch": spec.arch,
        "cpus": spec.cpus,
        "memory": spec.memory,
        "disk": spec.disk,
        "message": spec.message,
        "additionalDisks": listed["additionalDisks"],
        "network": listed["network"],
        "sshLocalPort": _ssh_port(inst) if running else 0,
        "sshConfigFile": str(inst.ssh_config),
        "hostAgentPID": (store.ha_pid(inst) or 0) if st != store.STOPPED else 0,
        "driverPID": (driver.driver_pid(inst) or 0) if st != store.STOPPED else 0,
        "config": found.json_cfg if full else {},
        "sshAddress": "127.0.0.1",
        "protected": full and inst.protected.exists(),
        "limaVersion": version or LIMA_COMPAT_VERSION,
        "param": listed["param"],
    }
    if running and _remote_desktop(spec):
        from limapy.ops.rdp import rdp_port

        port_rdp = rdp_port(inst)
        if port_rdp:
            out["rdpAddress"] = f"127.0.0.1:{port_rdp}"  # limapy extension: a Windows guest's Remote Desktop
    if running:
        from limapy.agent.forwards import active

        fwd = active(inst)
        if fwd:
            out["portForwards"] = fwd  # limapy extension: the automatic forwards open now
    for key in [k for k, v in out.items() if k not in ALWAYS and v in (0, "", None, [], {})]:
        del out[key]  # type: ignore[misc]  # Go's omitempty: any of the optional keys
    return out


def _remote_desktop(view: Any) -> bool:
    """The guest OS offers Remote Desktop (an `os` limapy has no package for offers nothing)."""
    from limapy import guest

    try:
        return guest.for_spec(view).remote_desktop
    except LimapyError:
        return False


def _ssh_port(inst: store.Instance) -> int:
    from limapy.ssh import config_port

    return config_port(inst)


def ssh_port(inst: store.Instance) -> int:
    return _ssh_port(inst)


def table(rows: list[Row]) -> str:
    """Lima's columns; an RDP column at the end only when a listed Windows guest has Remote Desktop."""
    from limapy.base.units import format_size

    home = str(Path.home())
    rdp = any(r.get("rdpAddress") for r in rows)
    columns = [*COLUMNS, "RDP"] if rdp else list(COLUMNS)
    lines = [columns]
    for r in rows:
        d = r["dir"]
        if d == home or d.startswith(home + "/"):
            d = "~" + d[len(home) :]
        port = r.get("sshLocalPort") or 0
        lines.append(
            [
                r["name"], r["status"], f"127.0.0.1:{port}", r.get("vmType", ""), r.get("arch", ""),
                str(r.get("cpus", 0)), format_size(r.get("memory", 0)), format_size(r.get("disk", 0)), d,
                *([r.get("rdpAddress") or "-"] if rdp else []),
            ]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(columns))]
    return "\n".join("    ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in lines) + "\n"


# -- the command ------------------------------------------------------------------------------------------


def _check(req: Request) -> str:
    """The output format `req` asks for, or a UsageError for a contradiction (Lima's rules)."""
    fmt = req.format
    if req.json:
        if fmt is not None:
            raise UsageError("option --json conflicts with option --format")
        fmt = "json"
    if req.yq:
        if fmt not in (None, "json"):
            raise UsageError("option --yq only works with --format json")
        fmt = "json"
    fmt = fmt or "table"
    if fmt not in FORMATS and "{{" not in fmt:
        raise UsageError(f"--format {fmt!r}: use table, json, yaml or a Go template such as '{{{{.Name}}}}'")
    if req.quiet and fmt != "table":
        raise UsageError("option --quiet can only be used with '--format table'")
    if req.quiet and req.list_fields:
        raise UsageError("option --list-fields conflicts with option --quiet")
    return fmt


def _host_fields() -> HostFields:
    import platform

    from limapy.base import dirs
    from limapy.config.hostinfo import lima_arch

    return {"HostOS": platform.system().lower(), "HostArch": lima_arch(platform.machine()),
            "LimaHome": str(dirs.limapy_home()), "IdentityFile": str(dirs.config_dir() / store.USER_KEY)}


def _select(req: Request, present: list[str], say: Say) -> tuple[list[str], bool]:
    """The instance names to show, in the order given (all, sorted, when none is given); True when a name
    given matched nothing (Lima's exit 1)."""
    if not req.names:
        return present, False
    chosen, unmatched = [], False
    for n in req.names:
        if n in present:
            chosen.append(n)
        else:
            say(f"warning: No instance matching {n} found.")
            unmatched = True
    return chosen, unmatched


def run(req: Request, *, say: Say) -> int:
    """`limapy list`: 1 (after listing the others) when a name given is no instance, as Lima."""
    fmt = _check(req)
    if req.list_fields:
        print("\n".join(sorted(GO_FIELDS)))
        return 0
    if req.connect is not None:
        return _domains(req, fmt, say)
    template = fmt if fmt not in FORMATS else None
    if template is not None:
        _template_check(template)
    exprs = _Exprs(req) if (req.yq or req.filters) else None
    _warn_leftovers(say)
    present = store.list_dirs()
    if not present:
        say("warning: No instance found. Run `limapy create` to create an instance.")
        return 0
    names, unmatched = _select(req, present, say)
    rows = []
    full = not (exprs is None and template is None and fmt == "table")  # the table shows a few fields
    for n in names:
        row = info(store.Instance(n, store.instance_dir(n)), full=full)
        if exprs is None or all(exprs.matches(f, row) for f in req.filters):
            rows.append(row)
    _emit(req, fmt, template, rows, exprs)
    if unmatched:
        raise LimapyError("unmatched instances")
    return 0


def _warn_leftovers(say: Say) -> None:
    from limapy.instance import leftovers

    for path in leftovers.find():
        say(f"warning: {path} was left by an interrupted create, clone or delete; `limapy prune` removes it")


DOMAIN_COLUMNS = ("NAME", "STATUS", "DOMAIN", "HOST", "HERE", "DIR")


def _domains(req: Request, fmt: str, say: Say) -> int:
    """`list --connect URI`: the domains limapy made on that libvirt host, this machine's or not."""
    if fmt not in ("table", "json") or req.yq or req.filters or req.names:
        raise UsageError("with --connect, list takes only --json, --format table|json and --quiet")
    from limapy import driver

    rows = driver.inventory(req.connect or None)
    if not rows and fmt == "table" and not req.quiet:
        say(f"warning: no domain made by limapy on {req.connect or 'the default libvirt URI'}")
        return 0
    if req.quiet:
        out = "\n".join(r["domain"] for r in rows)
    elif fmt == "json":
        import json

        out = "\n".join(json.dumps(r) for r in rows)
    else:
        cells = [DOMAIN_COLUMNS] + [
            (r["name"], r["status"], r["domain"], r["host"], "yes" if r["here"] else "no", r["dir"]) for r in rows
        ]
        widths = [max(len(str(c[i])) for c in cells) for i in range(len(DOMAIN_COLUMNS))]
        out = "\n".join("    ".join(str(v).ljust(w) for v, w in zip(c, widths, strict=True)).rstrip() for c in cells)
    if out:
        print(out)
    return 0


class _Exprs:
    def __init__(self, req: Request) -> None:
        from limapy.expr import yqlite

        self.yqlite = yqlite
        try:
            for e in (*req.yq, *req.filters):
                yqlite.compile_expr(e)
        except yqlite.YqError as err:
            raise UsageError(f"--yq/--filter expression: {err}") from None

    def matches(self, expr: str, row: Row) -> bool:
        return self.yqlite.matches(expr, row)


def _template_check(template: str) -> None:
    from limapy.expr import gotmpl

    try:
        gotmpl.check(template)
    except gotmpl.TemplateError as e:
        raise UsageError(f"--format {template!r}: {e}", hint="see `limapy list --list-fields`") from None


def _emit(req: Request, fmt: str, template: str | None, rows: list[Row], exprs: _Exprs | None) -> None:
    import json

    if req.quiet:
        for r in rows:
            print(r["name"])
    elif template is not None:
        from limapy.expr import gotmpl

        host = _host_fields()
        aliases = dict(GO_FIELDS)
        for r in rows:
            try:
                print(gotmpl.render(template, {**r, **host}, aliases))
            except gotmpl.TemplateError as err:  # Go's template fails as it runs, after the rows before
                raise UsageError(f"--format {template!r}: instance `{r.get('name')}`: {err}") from None
    elif fmt == "json":
        for r in rows:
            value: Any = r
            for e in req.yq:
                assert exprs is not None
                kept, value = exprs.yqlite.evaluate(e, value)
                if not kept:
                    break
            else:
                print(value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str))
    elif fmt == "yaml":
        from limapy.config.load import dump_yaml

        for r in rows:
            sys.stdout.write("---\n" + dump_yaml(json.loads(json.dumps(r, default=str))))
    else:
        sys.stdout.write(table(rows))


def list_instances(names: Sequence[str], *, fmt: str, quiet: bool, say: Say) -> int:
    """The former entry point (names, a format, -q), kept for library users."""
    return run(Request(names=tuple(names), format=fmt, quiet=quiet), say=say)
