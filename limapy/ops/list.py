"""`limapy list`: Lima's columns and keys (NDJSON for --json)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from limapy import LIMA_COMPAT_VERSION, store
from limapy.config.model import Spec
from limapy.names import hostname_for
from limapy.units import format_size

COLUMNS = ("NAME", "STATUS", "SSH", "VMTYPE", "ARCH", "CPUS", "MEMORY", "DISK", "DIR")


def ssh_port(inst: store.Instance) -> int:
    try:
        m = re.search(r"^\s*Port\s+(\d+)", inst.ssh_config.read_text(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def info(inst: store.Instance) -> dict[str, Any]:
    """One instance as Lima's `limactl list --json` describes it."""
    from limapy import config, driver

    errors: list[str] = []
    loaded: config.Loaded | None = None
    spec: Spec | None = None
    try:
        loaded = config.load_instance(inst)
        spec = loaded.spec
    except Exception as e:  # a broken lima.yaml makes the instance Broken, never the listing fail
        errors.append(str(getattr(e, "message", e)))
        loaded = None
    st = driver.status(inst) if spec is not None else "Broken"
    port = ssh_port(inst) if st == "Running" else 0
    try:
        version = inst.lima_version.read_text().strip()
    except OSError:
        version = ""
    rdp = ""
    if spec is not None and st == "Running" and spec.is_windows:
        from limapy.ops.rdp import rdp_port

        port_rdp = rdp_port(inst)
        rdp = f"127.0.0.1:{port_rdp}" if port_rdp else ""
    listed = loaded.listed() if loaded is not None else {"additionalDisks": [], "network": [], "param": {}}
    out = {
        "name": inst.name,
        "hostname": hostname_for(inst.name),
        "status": st,
        "dir": str(inst.dir),
        "vmType": spec.vm_type if spec is not None else "qemu",
        "arch": spec.arch if spec is not None else "",
        "cpus": spec.cpus if spec is not None else 0,
        "memory": spec.memory if spec is not None else 0,
        "disk": spec.disk if spec is not None else 0,
        "message": spec.message if spec is not None else "",
        "additionalDisks": listed["additionalDisks"],
        "network": listed["network"],
        "sshLocalPort": port,
        "sshConfigFile": str(inst.ssh_config),
        "hostAgentPID": store.ha_pid(inst) or 0,
        "driverPID": driver.driver_pid(inst) or 0,
        "errors": errors,
        "config": loaded.cfg if loaded is not None else {},
        "sshAddress": "127.0.0.1",
        "protected": inst.protected.exists(),
        "limaVersion": version or LIMA_COMPAT_VERSION,
        "param": listed["param"],
    }
    if rdp:
        out["rdpAddress"] = rdp  # limapy extension: a Windows guest's Remote Desktop forward
    if st == "Running":
        from limapy.guest.forwards import active

        fwd = active(inst)
        if fwd:
            out["portForwards"] = fwd  # limapy extension: the automatic forwards open now
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """Lima's columns; an RDP column at the end only when a listed Windows guest has Remote Desktop."""
    home = str(Path.home())
    rdp = any(r.get("rdpAddress") for r in rows)
    columns = [*COLUMNS, "RDP"] if rdp else list(COLUMNS)
    lines = [columns]
    for r in rows:
        d = r["dir"]
        if d == home or d.startswith(home + "/"):
            d = "~" + d[len(home) :]
        lines.append(
            [
                r["name"],
                r["status"],
                f"127.0.0.1:{r['sshLocalPort']}" if r["sshLocalPort"] else "127.0.0.1:0",
                r["vmType"],
                r["arch"],
                str(r["cpus"]),
                format_size(r["memory"]),
                format_size(r["disk"]),
                d,
                *([r.get("rdpAddress") or "-"] if rdp else []),
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(columns))]
    return "\n".join(
        "    ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in lines
    ) + "\n"


def list_instances(names: Sequence[str], *, fmt: str, quiet: bool, say: Callable[[str], None]) -> int:
    """`limapy list`: 1 when a name given is no instance (Lima's exit code), else 0."""
    import json

    from limapy.errors import UsageError

    if fmt not in ("table", "json", "yaml"):
        raise UsageError(f"--format {fmt!r}: use table, json or yaml")
    all_names = store.list_instances()
    chosen = all_names
    rc = 0
    if names:
        chosen = [n for n in all_names if n in names]
        for n in names:
            if n not in all_names:
                say(f"warning: No instance matching {n} found.")
                rc = 1
    if not all_names:
        say("warning: No instance found. Run `limapy create` to create an instance.")
        return 0
    if quiet:
        for n in chosen:
            print(n)
        return rc
    rows = [info(store.Instance(n, store.instance_dir(n))) for n in chosen]
    if fmt == "json":
        for r in rows:
            print(json.dumps(r, separators=(",", ":"), default=str))
    elif fmt == "yaml":
        from limapy.config.load import dump_yaml

        for r in rows:
            sys.stdout.write("---\n" + dump_yaml(json.loads(json.dumps(r, default=str))))
    else:
        sys.stdout.write(table(rows))
    return rc
