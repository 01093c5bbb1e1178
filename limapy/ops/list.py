"""`limapy list`: Lima's columns and keys (NDJSON for --json)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from limapy import LIMA_COMPAT_VERSION, store
from limapy.names import hostname_for
from limapy.units import format_size, parse_size

COLUMNS = ("NAME", "STATUS", "SSH", "VMTYPE", "ARCH", "CPUS", "MEMORY", "DISK", "DIR")


def ssh_port(inst: store.Instance) -> int:
    try:
        m = re.search(r"^\s*Port\s+(\d+)", inst.ssh_config.read_text(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def info(inst: store.Instance) -> dict[str, Any]:
    """One instance as Lima's `limactl list --json` describes it."""
    from limapy.config import load_config

    errors: list[str] = []
    cfg: dict[str, Any] = {}
    try:
        cfg = load_config(str(inst.lima_yaml), name=inst.name, instance_dir=inst.dir).cfg
    except Exception as e:  # a broken lima.yaml makes the instance Broken, never the listing fail
        errors.append(str(getattr(e, "message", e)))
    st = store.status(inst) if not errors else "Broken"
    port = ssh_port(inst) if st == "Running" else 0
    try:
        memory = parse_size(cfg.get("memory") or 0)
        disk = parse_size(cfg.get("disk") or 0)
    except ValueError:
        memory = disk = 0
    try:
        version = inst.lima_version.read_text().strip()
    except OSError:
        version = ""
    rdp = ""
    if st == "Running" and cfg.get("os") == "Windows":
        from limapy.ops.rdp import rdp_port

        port_rdp = rdp_port(inst)
        rdp = f"127.0.0.1:{port_rdp}" if port_rdp else ""
    out = {
        "name": inst.name,
        "hostname": hostname_for(inst.name),
        "status": st,
        "dir": str(inst.dir),
        "vmType": cfg.get("vmType", "qemu"),
        "arch": cfg.get("arch", ""),
        "cpus": cfg.get("cpus", 0),
        "memory": memory,
        "disk": disk,
        "message": cfg.get("message", ""),
        "additionalDisks": cfg.get("additionalDisks") or [],
        "network": cfg.get("networks") or [],
        "sshLocalPort": port,
        "sshConfigFile": str(inst.ssh_config),
        "hostAgentPID": store.ha_pid(inst) or 0,
        "driverPID": store.qemu_pid(inst) or 0,
        "errors": errors,
        "config": cfg,
        "sshAddress": "127.0.0.1",
        "protected": (inst.dir / "protected").exists(),
        "limaVersion": version or LIMA_COMPAT_VERSION,
        "param": cfg.get("param") or {},
    }
    if rdp:
        out["rdpAddress"] = rdp  # limapy extension: a Windows guest's Remote Desktop forward
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
