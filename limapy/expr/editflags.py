"""Lima's create/start/edit shortcut flags as `--set` expressions (lima-reference.md §1.2, editflags.go).

Each flag becomes one `Edit` whose origin is the flag as typed, so a problem with the value is blamed on the
flag. The expressions stay inside limapy's `--set` subset (limapy.expr.edits), which has the forms they need:
`=`, `+=`, prepending (`.a = [..] + .a`) and `[]` over every list entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from limapy.base.errors import UsageError
from limapy.expr.edits import Edit, shortcut_sets

#: Flags Lima applies only when an instance is created (a warning names them on an existing instance).
CREATE_ONLY = ("arch", "containerd", "plain", "image_variant", "arch_variant")
CONTAINERD = {"user": (False, True), "system": (True, False), "user+system": (True, True), "none": (False, False)}
VIDEO = {True: "default", False: "none"}


def _j(value: object) -> str:
    """A value as YAML flow text (JSON is YAML): strings quoted, so `"on"` stays a string."""
    return json.dumps(value)


@dataclass
class EditFlags:
    """The flags as given (None / empty: not given)."""

    cpus: int | None = None
    memory: float | None = None
    disk: float | None = None
    sets: Sequence[str] = ()
    params: Sequence[str] = ()
    mounts: Sequence[str] = ()
    mount_only: Sequence[str] = ()
    mount_none: bool = False
    mount_type: str | None = None
    mount_writable: bool = False
    networks: Sequence[str] = ()
    port_forwards: Sequence[str] = ()
    ssh_port: int | None = None
    video: bool | None = None
    vm_type: str | None = None
    shell: str | None = None
    dns: Sequence[str] = ()
    arch: str | None = None
    plain: bool | None = None
    containerd: str | None = None
    nested_virt: bool | None = None
    image_variant: str | None = None
    arch_variant: str | None = None
    extra: list[Edit] = field(default_factory=list)

    def given_create_only(self) -> list[str]:
        return [f"--{n.replace('_', '-')}" for n in CREATE_ONLY if getattr(self, n) is not None]


def _mount_entries(specs: Sequence[str], flag: str) -> list[dict[str, object]]:
    out = []
    for item in specs:
        for part in (p for p in item.split(",") if p):
            path, sep, mode = part.rpartition(":")
            if not sep or mode not in ("w", "ro", "rw"):
                path, mode = part, ""
            if not path:
                raise UsageError(f"{flag} {item!r}: empty directory")
            loc = os.path.expanduser(path)
            out.append({"location": loc, "mountPoint": loc, "writable": mode in ("w", "rw")})
    return out


def _port_forward(text: str) -> Edit:
    ports, *opts = text.split(",")
    host, sep, guest = ports.partition(":")
    if not sep or not host.strip().isdigit() or not guest.strip().isdigit():
        raise UsageError(f"--port-forward {text!r}: expected HOSTPORT:GUESTPORT[,static=true]")
    rule: dict[str, object] = {"guestPort": int(guest), "hostPort": int(host)}
    for o in opts:
        key, _, value = o.partition("=")
        if key.strip() != "static" or value.strip().lower() not in ("true", "false"):
            raise UsageError(f"--port-forward {text!r}: unknown option {o!r} (only static=true|false)")
        rule["static"] = value.strip().lower() == "true"
    return Edit(f".portForwards += [{_j(rule)}]", f"--port-forward {text}")


def _param(text: str) -> Edit:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--param {text!r}: expected KEY=VALUE")
    return Edit(f'.param["{key}"] = {_j(value)}', f"--param {text}", must_exist=True)


def _network(text: str) -> Edit:
    if text == "vzNAT":
        entry: dict[str, object] = {"vzNAT": True}
    elif text.startswith("lima:") and text[5:]:
        entry = {"lima": text[5:]}
    else:
        raise UsageError(f"--network {text!r}: expected vzNAT or lima:NAME")
    return Edit(f".networks += [{_j(entry)}]", f"--network {text}")


def to_edits(f: EditFlags, *, existing: bool = False) -> list[Edit]:
    """The edits, in Lima's order; create-only flags are dropped on an existing instance."""
    out: list[Edit] = list(shortcut_sets(f.cpus, f.memory, f.disk))
    if f.mount_none and (f.mounts or f.mount_only):
        raise UsageError("--mount-none cannot be combined with --mount or --mount-only")
    if f.mounts:
        entries = list(reversed(_mount_entries(f.mounts, "--mount")))
        out.append(Edit(f".mounts = {_j(entries)} + .mounts", "--mount " + ",".join(f.mounts)))
    if f.mount_only:
        entries = _mount_entries(f.mount_only, "--mount-only")
        out.append(Edit(f".mounts = {_j(entries)}", "--mount-only " + ",".join(f.mount_only)))
    if f.mount_none:
        out.append(Edit(".mounts = null", "--mount-none"))
    if f.mount_type is not None:
        out.append(Edit(f".mountType = {_j(f.mount_type)}", f"--mount-type {f.mount_type}"))
    if f.mount_writable:
        out.append(Edit(".mounts[].writable = true", "--mount-writable"))
    if f.vm_type is not None:
        out.append(Edit(f".vmType = {_j(f.vm_type)}", f"--vm-type {f.vm_type}"))
    out += [_network(n) for n in f.networks]
    if f.dns:
        ips = [ip for item in f.dns for ip in item.split(",") if ip]
        out.append(Edit(f".dns += {_j(ips)} | .hostResolver.enabled = false", "--dns " + ",".join(ips)))
    out += [_param(p) for p in f.params]
    if f.video is not None:
        out.append(Edit(f".video.display = {_j(VIDEO[f.video])}", f"--video={str(f.video).lower()}"))
    if f.ssh_port is not None:
        if not 0 <= f.ssh_port <= 65535:
            raise UsageError(f"--ssh-port {f.ssh_port}: not a TCP port")
        out.append(Edit(f".ssh.localPort = {int(f.ssh_port)}", f"--ssh-port {f.ssh_port}"))
    if f.shell is not None:
        out.append(Edit(f".user.shell = {_j(f.shell)}", f"--shell {f.shell}"))
    out += [_port_forward(p) for p in f.port_forwards]
    if f.nested_virt is not None:
        out.append(Edit(f".nestedVirtualization = {_j(f.nested_virt)}", f"--nested-virt={str(f.nested_virt).lower()}"))
    if not existing:
        if f.arch is not None:
            out.append(Edit(f".arch = {_j(f.arch)}", f"--arch {f.arch}"))
        if f.containerd is not None:
            if f.containerd not in CONTAINERD:
                raise UsageError(f"--containerd {f.containerd!r}: use one of {', '.join(CONTAINERD)}")
            system, user = CONTAINERD[f.containerd]
            out.append(Edit(f".containerd.system = {_j(system)} | .containerd.user = {_j(user)}",
                            f"--containerd {f.containerd}"))
        if f.plain is not None:
            out.append(Edit(f".plain = {_j(f.plain)}", f"--plain={str(f.plain).lower()}"))
        for flag, key, value in (("image-variant", "variant", f.image_variant),
                                 ("arch-variant", "archVariant", f.arch_variant)):  # fmt: skip
            if value is None:
                continue
            if value == "":
                raise UsageError(f"`--{flag}` must not be empty")
            # editflags.go line 401: only the images of that variant stay
            out.append(Edit(f".images = [.images[] | select(.{key} == {_j(value)})]", f"--{flag} {value}"))
    out += [Edit.of(s) for s in f.sets]
    out += f.extra
    return out
