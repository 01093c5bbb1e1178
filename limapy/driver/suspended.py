"""A suspended instance's saved state: what it belongs to, and whether a start may resume from it.

`limapy suspend` has the engine save the running guest's whole machine state (for QEMU: its migration
stream) to `suspend.state`, stop the machine, and then write `suspend.json` describing it: the digest and
size of the state, what identifies the disk it was taken with (size, mtime, inode, after the machine closed
it), the configuration's digest, and the machine's command line (a resume must build the very machine that
was saved: a Windows install that finished in between would otherwise lose its install media). The state's
digest is checked at every start unless the file is provably the one that was hashed (`state_key`: its size,
mtime, inode and device, taken once it had settled; three clones resuming from one state need not hash it three
times at once). The record is written last, so a state without one is from a suspend that did not finish. A
start resumes only from a state whose record matches the instance as it is now; anything else is discarded with
one warning and the guest boots cold (its disk is never touched by this: a discarded state loses the guest's
memory, never a byte of the disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.instance import store

FORMAT = 1
_CHUNK = 1 << 20


class ResumeFailed(LimapyError):
    """The engine could not resume from the saved state (it is discarded and the guest boots cold)."""


@dataclass(frozen=True)
class Record:
    state_size: int
    state_sha256: str
    disk: tuple[int, int, int]  # size, mtime_ns, inode of the disk once the machine had closed it
    config_sha256: str
    suspended_at: float
    driver: str = "qemu"
    argv: tuple[str, ...] = ()  # the engine's command line that saved it: a resume needs the same machine
    ssh_port: int = 0
    format: int = FORMAT
    layer: str = ""  # the read-only layer the disk was made a fresh overlay on for clones (limapy.instance.layers)
    state_stat: tuple[int, ...] = ()  # the state's (size, mtime_ns, inode, device) when its digest was taken


#: A file's mtime comes from a clock that ticks every few milliseconds: a write within one tick of another keeps
#: the same mtime. A key is taken only from a file last written well before this long ago, so that any later
#: write gives it a later mtime.
SETTLED_NS = 50_000_000


def state_key(path: Path, *, settled: bool = False) -> tuple[int, ...]:
    """What changes when the state file is written, truncated or replaced (not its ctime: another hard link,
    a clone's, changes that); `settled`: () for a file written too recently to be told apart that way."""
    st = os.stat(path)
    if settled and time.time_ns() - st.st_mtime_ns < SETTLED_NS:
        return ()
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def disk_identity(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _sha256_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    fd = store.open_private(path, os.O_RDONLY)
    with open(fd, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def config_digest(inst: store.Instance) -> str:
    try:
        return hashlib.sha256(inst.lima_yaml.read_bytes()).hexdigest()
    except OSError:
        return ""


def write(inst: store.Instance, rec: Record) -> None:
    store.atomic_write(inst.suspend_record, (json.dumps(asdict(rec), indent=1) + "\n").encode(), 0o600)


def complete(inst: store.Instance, *, driver: str, argv: tuple[str, ...] = (), ssh_port: int = 0) -> Record:
    """Describe the state just saved (the machine has exited) and mark it complete."""
    size, digest = _sha256_file(inst.suspend_state)
    rec = Record(
        state_size=size,
        state_sha256=digest,
        disk=disk_identity(inst.disk),
        config_sha256=config_digest(inst),
        suspended_at=time.time(),
        driver=driver,
        argv=argv,
        ssh_port=ssh_port,
        state_stat=state_key(inst.suspend_state, settled=True),
    )
    write(inst, rec)
    return rec


def present(inst: store.Instance) -> bool:
    """A finished suspend left a record (the instance lists as Suspended; driver.status checks the same file
    itself, to stay light)."""
    return inst.suspend_record.is_file()


def leftover(inst: store.Instance) -> bool:
    """Any saved state or record at all, complete or not."""
    return inst.suspend_record.exists() or inst.suspend_state.exists()


def discard(inst: store.Instance) -> None:
    inst.suspend_record.unlink(missing_ok=True)
    inst.suspend_state.unlink(missing_ok=True)


def _read(inst: store.Instance) -> Record:
    try:
        data = json.loads(inst.suspend_record.read_text())
        data["disk"] = tuple(data["disk"])
        data["argv"] = tuple(data.get("argv") or ())
        data["state_stat"] = tuple(data.get("state_stat") or ())
        rec = Record(**data)
    except FileNotFoundError:
        raise LimapyError("the suspend did not finish (no record of the saved state)") from None
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise LimapyError(f"the record of the saved state is unreadable ({e})") from None
    if rec.format != FORMAT:
        raise LimapyError(f"the saved state has format {rec.format}, this limapy reads {FORMAT}")
    return rec


def usable(inst: store.Instance, driver: str) -> tuple[Record | None, str]:
    """The record to resume from, or (None, why not) when there is a state that must be discarded; (None, "")
    when there is nothing saved. Reads only (the digest check reads the whole state)."""
    if not leftover(inst):
        return None, ""
    try:
        rec = _read(inst)
        if rec.driver != driver:
            raise LimapyError(f"the saved state is from the {rec.driver} driver")
        if not rec.argv:
            raise LimapyError("the record of the saved state names no machine to resume it in")
        if not inst.suspend_state.is_file():
            raise LimapyError("the saved state file is missing")
        if disk_identity(inst.disk) != rec.disk:
            raise LimapyError("the disk changed after the suspend")
        if config_digest(inst) != rec.config_sha256:
            raise LimapyError("lima.yaml changed after the suspend")
        if inst.suspend_state.stat().st_size != rec.state_size:
            raise LimapyError(
                f"the saved state is {inst.suspend_state.stat().st_size} bytes, {rec.state_size} were written"
            )
        # hashed (about 0.4 s for 260 MiB, three times over when three clones resume together) unless the file is
        # the very one whose digest was taken: nothing wrote, truncated or replaced it since
        hashed = not rec.state_stat or state_key(inst.suspend_state) != rec.state_stat
        if hashed and _sha256_file(inst.suspend_state)[1] != rec.state_sha256:
            raise LimapyError("the saved state does not match its digest (corrupted)")
    except LimapyError as e:
        return None, e.message
    except OSError as e:
        return None, f"the saved state cannot be read ({e.strerror})"
    return rec, ""


def warning(why: str) -> str:
    return f"warning: the saved (suspended) state was discarded: {why}; booting cold"
