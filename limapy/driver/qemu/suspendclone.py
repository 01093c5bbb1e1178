"""A clone of a suspended QEMU instance, itself suspended: it resumes from the source's saved state.

The saved state (QEMU's migration stream) needs the disk exactly as it was at the suspend and the very machine
that saved it (limapy.driver.suspended). So the clone gets:

- its disk: an empty overlay on a read-only layer the source's disk was frozen into (limapy.instance.layers);
  the source, too, goes on from a fresh overlay on that layer, and its record is rewritten to name it;
- the state: a second name (hard link) of the source's state file, made read-only (0400): neither instance ever
  writes it in place (a new suspend unlinks it first); a copy where the file system has no hard links;
- the machine: the source's saved command line, with every path in the source's directory moved to the clone's,
  its process name, and a free host port for each `hostfwd` (SSH, RDP): the guest never sees those, so they can
  change; its MAC, which the migration stream carries, stays (user-mode networks are private to each machine);
- what that command line opens in the source's directory and a resume does not make anew (the seed ISO, the UEFI
  variable store): copied.

The clone's record is written last, like a suspend's: a clone without one boots cold.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from limapy.base import netutil
from limapy.base.errors import LimapyError
from limapy.driver import suspended
from limapy.instance import chain, disk, layers, store

Say = Callable[[str], None]

_HOSTFWD = re.compile(r"(hostfwd=tcp:127\.0\.0\.1:)(\d+)-")
#: what QEMU makes at every start: never copied
_MADE_AT_START = (".sock", ".log", ".pid")


def retarget(argv: tuple[str, ...], src_dir: Path, new_dir: Path, src_name: str, new_name: str,
             new_port: Callable[[], int] = netutil.free_port) -> tuple[tuple[str, ...], dict[int, int]]:  # fmt: skip
    """The saved command line moved to the clone: paths, process name, host ports (old port -> new port)."""
    old_prefix, new_prefix = f"{src_dir}/", f"{new_dir}/"
    ports: dict[int, int] = {}

    def port(m: re.Match[str]) -> str:
        old = int(m.group(2))
        if old not in ports:
            ports[old] = new_port()
        return f"{m.group(1)}{ports[old]}-"

    out: list[str] = []
    for i, arg in enumerate(argv):
        arg = _HOSTFWD.sub(port, arg.replace(old_prefix, new_prefix))
        if i and argv[i - 1] == "-name" and arg == f"limapy-{src_name}":
            arg = f"limapy-{new_name}"
        out.append(arg)
    return tuple(out), ports


def _files_named(argv: tuple[str, ...], directory: Path) -> set[str]:
    """The names of files directly in `directory` the command line refers to."""
    found = set()
    for arg in argv:
        for m in re.finditer(re.escape(f"{directory}/") + r"([^,/\s]+)", arg):
            found.add(m.group(1))
    return found


def _share_state(src: store.Instance, new: store.Instance) -> None:
    os.chmod(src.suspend_state, 0o400)  # only ever read from now on, whichever name it is read by
    try:
        os.link(src.suspend_state, new.suspend_state)
    except OSError:  # no hard links here (another file system, a filesystem without them)
        shutil.copyfile(src.suspend_state, new.suspend_state)
        os.chmod(new.suspend_state, 0o400)


def clone(src: store.Instance, new: store.Instance, final_dir: Path, say: Say) -> None:
    """Make `new` (being created in its temp dir, to become `final_dir`; lima.yaml and the kept files already
    there) a suspended clone of suspended `src`. `src` is locked by the caller."""
    rec, why = suspended.usable(src, "qemu")
    if rec is None:
        raise LimapyError(
            f"the saved state of `{src.name}` cannot be resumed from ({why or 'there is none'})",
            hint=f"`limapy start {src.name}`, `limapy suspend {src.name}`, then clone it",
        )
    layer = Path(rec.layer) if rec.layer else None
    if layer is None or disk.backing_file(src.disk) != layer or not chain.is_layer(layer):
        say(f"freezing the disk of `{src.name}` as a read-only layer its clones share")
        layer = layers.freeze(src)
        rec = replace(rec, disk=suspended.disk_identity(src.disk), layer=str(layer))
        suspended.write(src, rec)  # the source still resumes: its record names its new overlay
    disk.overlay_on_layer(layer, new.disk)
    _share_state(src, new)
    argv, ports = retarget(rec.argv, src.dir, final_dir, src.name, final_dir.name)
    for name in sorted(_files_named(rec.argv, src.dir)):
        there, here = src.dir / name, new.dir / name
        if name.endswith(_MADE_AT_START) or here.exists() or here.is_symlink() or not there.is_file():
            continue
        shutil.copyfile(there, here)
        os.chmod(here, there.stat().st_mode & 0o777)
    rdp = netutil.read_port(src.rdp_port_file)
    if rdp in ports:
        store.atomic_write(new.rdp_port_file, f"{ports[rdp]}\n".encode(), 0o600)
    suspended.write(new, replace(
        rec, disk=suspended.disk_identity(new.disk), config_sha256=suspended.config_digest(new), argv=argv,
        ssh_port=ports.get(rec.ssh_port, rec.ssh_port), layer="",
    ))  # fmt: skip
