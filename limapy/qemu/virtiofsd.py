"""virtiofsd, the vhost-user back end of a `mountType: virtiofs` mount: where it is and its command line.

Found through QEMU's vhost-user descriptors (`*/qemu/vhost-user/*.json`, `"type": "fs"`), then the usual
paths. Two implementations exist and take different options:

- QEMU's own C virtiofsd (Debian 12: `/usr/lib/qemu/virtiofsd`, QEMU <= 7.2): `--socket-path`,
  `-o source=`, `-o cache=`; runs as root only (its namespace sandbox needs CAP_SYS_ADMIN) and has no
  read-only option, so a read-only mount is a read-only bind of the folder in a private mount namespace
  that only this virtiofsd sees (`unshare -m`): the guest cannot write through it whatever it asks for.
- The standalone Rust virtiofsd (Debian 13 `virtiofsd`, Fedora): `--socket-path`, `--shared-dir`,
  `--cache`, `--readonly`, and `--sandbox none` when not root.

Each instance runs one virtiofsd per mount as a sidecar of QEMU (limapy.driver.sidecars).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from limapy.base.errors import ExternalToolError

DESCRIPTOR_DIRS = (
    Path("/etc/qemu/vhost-user"),
    Path("/usr/share/qemu/vhost-user"),
    Path("/usr/local/share/qemu/vhost-user"),
)
KNOWN = (Path("/usr/libexec/virtiofsd"), Path("/usr/lib/virtiofsd"), Path("/usr/lib/qemu/virtiofsd"))
#: QEMU's C implementation (its last release is QEMU 7.2's).
C_VIRTIOFSD = Path("/usr/lib/qemu/virtiofsd")


@dataclass(frozen=True)
class Virtiofsd:
    binary: str
    rust: bool  # the standalone implementation (its own options, runs unprivileged)


def _from_descriptors(dirs: Sequence[Path]) -> list[Path]:
    found = []
    for d in dirs:
        try:
            files = sorted(d.glob("*.json"))
        except OSError:
            continue
        for f in files:
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("type") == "fs" and isinstance(data.get("binary"), str):
                found.append(Path(data["binary"]))
    return found


def find(
    *, which: Callable[[str], str | None] = shutil.which, descriptor_dirs: Sequence[Path] = DESCRIPTOR_DIRS
) -> Virtiofsd:
    """The standalone virtiofsd first (PATH, then the descriptors and known paths), QEMU's own after it."""
    candidates: list[Path] = []
    on_path = which("virtiofsd")
    if on_path:
        candidates.append(Path(on_path))
    candidates += _from_descriptors(descriptor_dirs)
    candidates += list(KNOWN)
    existing = [c for c in dict.fromkeys(candidates) if c.is_file() and os.access(c, os.X_OK)]
    rust = [c for c in existing if c.resolve() != C_VIRTIOFSD]
    if rust:
        return Virtiofsd(str(rust[0]), True)
    if existing:
        return Virtiofsd(str(existing[0]), False)
    raise ExternalToolError(
        "virtiofsd not found: `mountType: virtiofs` needs it",
        hint="install virtiofsd (apt install virtiofsd, or qemu-system-common for QEMU's own), "
        "or set `mountType: reverse-sshfs`",
    )


def check_usable(v: Virtiofsd, *, uid: int | None = None) -> None:
    """QEMU's C virtiofsd runs as root only."""
    if not v.rust and (os.getuid() if uid is None else uid) != 0:
        raise ExternalToolError(
            f"{v.binary} (QEMU's virtiofsd) must run as root; limapy runs as a user",
            hint="install the standalone virtiofsd (apt install virtiofsd), or set `mountType: reverse-sshfs`",
        )


#: In a private mount namespace: bind the folder onto itself read-only (when asked), then become virtiofsd.
#: The folder reaches the shell as a positional parameter, never as text in the script.
_WRAPPER = 'if [ "$1" = ro ]; then mount --bind -- "$2" "$2" && mount -o remount,bind,ro -- "$2" || exit 1; fi; ' \
    'shift 2; exec "$@"'


def argv(v: Virtiofsd, *, source: Path, sock: Path, writable: bool, uid: int | None = None) -> list[str]:
    """One virtiofsd serving `source` on `sock` (it creates the socket and serves one QEMU).

    Read-only is enforced on the host by the read-only bind, whichever virtiofsd it is (QEMU's C one has no
    read-only option, and the guest's `ro` mount option is only a promise). As root the namespace is a plain
    mount namespace; as a user it is a user namespace where the user is root (the standalone virtiofsd's
    documented way to run unprivileged), which also makes the files it creates the user's."""
    root = (os.getuid() if uid is None else uid) == 0
    if v.rust:
        daemon = [v.binary, f"--socket-path={sock}", f"--shared-dir={source}", "--cache=auto"]
        if not root:
            daemon.append("--sandbox=none")
    else:
        daemon = [v.binary, f"--socket-path={sock}", "-o", f"source={source}", "-o", "cache=auto"]
    ns = ["unshare", "--mount", "--propagation", "private"]
    if not root:
        ns[1:1] = ["--user", "--map-root-user"]
    if writable and root:
        return daemon
    return [*ns, "sh", "-c", _WRAPPER, "virtiofsd", "rw" if writable else "ro", str(source), *daemon]
