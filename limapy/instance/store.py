"""Instance directories under $LIMAPY_HOME: Lima's file names, prefixes, status, locks, atomic writes.

Layout and semantics follow lima-reference.md §3. An instance is a directory directly under the home whose
name does not start with `_` or `.` and which holds `lima.yaml`; that file is the marker, so a directory being
created (`.<name>.tmp-XXXX`) or half-deleted is never listed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from limapy.base import dirs, fsutil
from limapy.base.errors import InstanceError, LimapyError, NotFoundError, UsageError, shown
from limapy.base.fsutil import atomic_write as atomic_write  # re-exported: instance files are written through store
from limapy.base.fsutil import fsync_dir
from limapy.base.fsutil import open_private as open_private  # re-exported: instance files are opened through store
from limapy.base.names import LIMA_YAML
from limapy.instance import chain
from limapy.instance.userkey import USER_KEY as USER_KEY  # re-exported: the key's home was here
from limapy.instance.userkey import ensure_user_key as ensure_user_key

NAME_RE = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")  # fullmatch only ($ alone accepts "x\n")
MAX_NAME_LEN = 76
# Linux sun_path is 108 bytes; Lima checks len(<dir>/ssh.sock.1234567890123456) against it (§2.3).
UNIX_PATH_MAX = 108
_SOCK_PROBE = "/ssh.sock.1234567890123456"

RUNNING = "Running"
STOPPED = "Stopped"
BROKEN = "Broken"
SUSPENDED = "Suspended"  # limapy extension: the guest's state is saved (`limapy suspend`)

LOCK_FILE = "lock"
DEFAULT_LOCK_TIMEOUT = 30.0


def validate_name(name: str) -> None:
    """Lima's ValidateInstName: identifier regex, at most 76 characters, not ending in .yaml/.yml."""
    if not name:
        raise UsageError("instance name must not be empty")
    if len(name) > MAX_NAME_LEN:
        raise UsageError(f"instance name `{shown(name)}` is too long: at most {MAX_NAME_LEN} characters")
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"instance name `{shown(name)}` is invalid: it must match {NAME_RE.pattern}",
            hint="use letters and digits, separated by single '.', '_' or '-'",
        )
    if name.endswith((".yaml", ".yml")):
        raise UsageError(f"instance name `{name}` must not end with .yaml or .yml")


class Instance:
    """An instance directory and the names of the files Lima keeps in it (a plain class: `dataclasses`
    costs more to import than the rest of the hot path of `shell` and `list` together)."""

    __slots__ = ("dir", "name")

    def __init__(self, name: str, dir: Path) -> None:
        self.name, self.dir = name, dir

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instance) and (self.name, self.dir) == (other.name, other.dir)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Instance(name={self.name!r}, dir={self.dir!r})"

    def _p(self, filename: str) -> Path:
        return self.dir / filename

    @property
    def lima_yaml(self) -> Path:
        return self._p(LIMA_YAML)

    @property
    def lima_version(self) -> Path:
        return self._p("lima-version")

    @property
    def cidata_iso(self) -> Path:
        return self._p("cidata.iso")

    @property
    def disk(self) -> Path:
        return self._p("disk")

    @property
    def iso(self) -> Path:
        return self._p("iso")

    @property
    def virtio_win(self) -> Path:
        return self._p("virtio-win")

    @property
    def kernel(self) -> Path:
        return self._p("kernel")

    @property
    def initrd(self) -> Path:
        return self._p("initrd")

    @property
    def kernel_cmdline(self) -> Path:
        return self._p("kernel.cmdline")

    @property
    def qemu_pid(self) -> Path:
        return self._p("qemu.pid")

    @property
    def qmp_sock(self) -> Path:
        return self._p("qmp.sock")

    @property
    def qemu_efi_code(self) -> Path:
        """aarch64: the firmware code padded to the 64 MiB pflash `virt` needs (when the distro's is smaller)."""
        return self._p("qemu-efi-code.fd")

    @property
    def qemu_efi_vars(self) -> Path:
        return self._p("qemu-efi-vars.fd")  # the instance's own UEFI vars (limapy extension; Lima has none)

    @property
    def qemu_stderr_log(self) -> Path:
        return self._p("qemu.stderr.log")

    @property
    def ha_qmp_sock(self) -> Path:
        return self._p("ha.qmp.sock")  # the host agent's own QMP monitor (events); qmp.sock stays free

    @property
    def base_record(self) -> Path:
        return self._p("base-image.json")  # which bytes the disk overlay was made on (start re-checks them)

    @property
    def driver_file(self) -> Path:
        return self._p("driver")  # the engine that runs the instance, when not the one its vmType implies

    @property
    def rdp_file(self) -> Path:
        return self._p(f"{self.name}.rdp")

    @property
    def serial_log(self) -> Path:
        return self._p("serial.log")

    @property
    def serial_sock(self) -> Path:
        return self._p("serial.sock")

    @property
    def ha_pid(self) -> Path:
        return self._p("ha.pid")

    @property
    def ha_stdout_log(self) -> Path:
        return self._p("ha.stdout.log")

    @property
    def ha_stderr_log(self) -> Path:
        return self._p("ha.stderr.log")

    @property
    def ssh_config(self) -> Path:
        return self._p("ssh.config")

    @property
    def ssh_sock(self) -> Path:
        return self._p("ssh.sock")

    @property
    def ansible_inventory(self) -> Path:
        return self._p("ansible-inventory.yaml")  # what `mode: ansible` steps run ansible-playbook with

    @property
    def win_done_installation(self) -> Path:
        return self._p("win-done-installation")

    @property
    def swtpm_dir(self) -> Path:
        return self._p("swtpm")

    @property
    def swtpm_sock(self) -> Path:
        return self._p("swtpm.sock")

    @property
    def swtpm_pid(self) -> Path:
        return self._p("swtpm.pid")

    @property
    def swtpm_log(self) -> Path:
        return self._p("swtpm.log")

    @property
    def swtpm_stderr_log(self) -> Path:
        return self._p("swtpm.stderr.log")

    def virtiofsd_sock(self, index: int) -> Path:
        """The vhost-user socket of mount `index`'s virtiofsd (Lima's name)."""
        return self._p(f"virtiofsd-{index}.sock")

    def virtiofsd_pid(self, index: int) -> Path:
        return self._p(f"virtiofsd-{index}.pid")

    def virtiofsd_log(self, index: int) -> Path:
        return self._p(f"virtiofsd-{index}.stderr.log")

    @property
    def forwards_file(self) -> Path:
        """The port and socket forwards the host agent holds open now (limapy extension; JSON)."""
        return self._p("forwards.json")

    @property
    def password_file(self) -> Path:  # the Windows guest's initial password (limapy extension); always 0600
        return self._p("windows-password")

    @property
    def admin_password_file(self) -> Path:  # Windows Server's built-in Administrator's (limapy extension); 0600
        return self._p("windows-admin-password")

    @property
    def product_key_file(self) -> Path:  # osOpts.Windows.productKey, out of lima.yaml at create (limapy ext.); 0600
        return self._p("windows-product-key")

    @property
    def openssh_msi(self) -> Path:  # the Win32-OpenSSH MSI for the arch (limapy ext.): a link into the cache
        return self._p("openssh-msi")

    @property
    def rdp_port_file(self) -> Path:  # the host port of a Windows guest's Remote Desktop forward, chosen at boot
        return self._p("rdp.port")

    def snapshot_files(self, tag: str) -> Path:
        """The UEFI vars and TPM state kept with disk snapshot `tag` (limapy extension: `snapshots/<tag>/`)."""
        return self._p("snapshots") / tag

    @property
    def summary_file(self) -> Path:  # the filled configuration, cached for `shell`, `list` (limapy ext.; JSON)
        return self._p("limapy-summary.json")

    @property
    def smb_dir(self) -> Path:  # limapy's smbd of `mountType: smb` (limapy.guest.smb): its smb.conf, state; 0700
        return self._p("smb")

    @property
    def suspend_state(self) -> Path:  # the guest's saved machine state (`limapy suspend`; QEMU's migration), 0600
        return self._p("suspend.state")

    @property
    def identity_pending(self) -> Path:  # a clone that resumes gets its own identity once (limapy.ops.clone)
        return self._p("identity.pending")

    @property
    def suspend_record(self) -> Path:  # what the saved state belongs to (disk, config, digest); written last
        return self._p("suspend.json")

    @property
    def protected(self) -> Path:
        return self._p("protected")

    @property
    def lock_file(self) -> Path:
        return self._p(LOCK_FILE)


def own_names(directory: Path) -> set[str]:
    """The names of the files and dirs limapy keeps in an instance dir (what a host socket may not replace)."""
    inst = Instance(directory.name, directory)
    names = {p.name for attr, v in vars(Instance).items() if isinstance(v, property)
             for p in [getattr(inst, attr)] if isinstance(p, Path) and p.parent == directory}  # fmt: skip
    names |= {inst.snapshot_files("x").parent.name, LOCK_FILE}
    names |= {f(i).name for i in range(64) for f in (inst.virtiofsd_sock, inst.virtiofsd_pid, inst.virtiofsd_log)}
    return names


def instance_dir(name: str) -> Path:
    return dirs.limapy_home() / name


def _is_instance_dir(path: Path) -> bool:
    return not path.name.startswith(("_", ".")) and (path / LIMA_YAML).is_file()


def list_instances() -> list[str]:
    """Names of every instance under $LIMAPY_HOME, sorted."""
    home = dirs.limapy_home()
    try:
        entries = list(home.iterdir())
    except FileNotFoundError:
        return []
    # A name limapy would refuse (made by hand, or by an old limapy) is not listed: "evil\n" would split list's table.
    return sorted(p.name for p in entries if NAME_RE.fullmatch(p.name) and p.is_dir() and _is_instance_dir(p))


def list_dirs() -> list[str]:
    """Every directory under $LIMAPY_HOME that is an instance or what is left of one (no lima.yaml: `list`
    shows it Broken), sorted; reserved (`_x`, `.x`) and unlistable names excluded."""
    try:
        entries = list(os.scandir(dirs.limapy_home()))
    except FileNotFoundError:
        return []
    return sorted(e.name for e in entries if NAME_RE.fullmatch(e.name) and e.is_dir())


def resolve(prefix_or_name: str, *, exact: bool = False) -> Instance:
    """The instance named exactly so, else the only one whose name starts with it (unless exact)."""
    key = prefix_or_name
    if not key or "/" in key or key.startswith(("_", ".")):
        raise UsageError(f"invalid instance name `{shown(key)}`")
    path = instance_dir(key)
    if _is_instance_dir(path):
        return Instance(key, path)
    if not exact:
        matches = [n for n in list_instances() if n.startswith(key)]
        if len(matches) == 1:
            return Instance(matches[0], instance_dir(matches[0]))
        if len(matches) > 1:
            raise LimapyError(
                f"instance name `{key}` is ambiguous: it matches {', '.join(matches)}",
                hint="give more of the name",
            )
    raise NotFoundError(
        f"instance `{shown(key)}` does not exist",
        hint=f"run `limapy create --name {shown(key)} TEMPLATE` to create it, or `limapy list` to see instances",
    )


def ha_pid(inst: Instance) -> int | None:
    """The host agent of `inst`, when `ha.pid` names it (its command line says `hostagent NAME --dir DIR`)."""
    from limapy.instance import pids

    return pids.live(inst.ha_pid, pids.hostagent_marks(inst.name, inst.dir))


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)


@contextlib.contextmanager
def lock(inst: Instance, *, timeout: float = DEFAULT_LOCK_TIMEOUT, what: str = "") -> Iterator[None]:
    """Exclusive flock on `<dir>/lock`: commands on one instance run one at a time. Waits up to `timeout` seconds
    (0 = fail at once). The holder's pid is written into the file so a waiter can name it. After acquiring,
    callers must re-check the instance: a `delete` may have run meanwhile."""
    _mkdir_private(inst.dir)
    check_links(inst)
    try:
        fd = os.open(inst.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:  # raced with check_links: still a link, still refused
            raise InstanceError(_link_message(inst, LOCK_FILE), hint=fsutil.LINK_HINT) from None
        raise
    try:
        fsutil.check_in_place(fd, inst.lock_file)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                by = f" (pid {holder})" if holder.isdigit() else ""
                raise InstanceError(
                    f"instance `{inst.name}` is busy: another limapy command{by} holds {inst.lock_file}"
                    + (f" while {what}" if what else ""),
                    hint="wait for that command to finish, then retry",
                )
            time.sleep(0.05)
        try:  # only for a waiter's message: a full file system must not stop `delete` from freeing space
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


#: Instance files limapy itself makes symbolic links: read-only media that live elsewhere (install ISO, virtio-win,
#: OpenSSH MSI). Any other link is refused: limapy writes, truncates, resizes the files there, never one elsewhere.
LINKS_ALLOWED = frozenset({"iso", "virtio-win", "openssh-msi"})
#: Hard links limapy makes: boot files from the download cache, a suspended state clones share (both only read).
HARDLINKS_ALLOWED = frozenset({"kernel", "initrd", "suspend.state"})


def _link_message(inst: Instance, name: str) -> str:
    return f"instance `{inst.name}`: {inst.dir / name} is a symbolic link"


def check_links(inst: Instance) -> None:
    """Refuse an instance dir holding a symbolic link limapy did not make, or a file with other names (a hard
    link: writing or truncating it in place would change a file elsewhere); one line naming it."""
    chain.drop_half_frozen(inst.dir, inst.disk)  # what a killed freeze left (limapy.instance.layers)
    fsutil.check_entries(inst.dir, LINKS_ALLOWED, HARDLINKS_ALLOWED, prefix=f"instance `{inst.name}`: ")


def _check_socket_room(final: Path) -> None:
    if len(str(final) + _SOCK_PROBE) >= UNIX_PATH_MAX:
        raise UsageError(
            f"instance directory {final} is too long for its unix sockets (limit {UNIX_PATH_MAX} bytes)",
            hint=f"use a shorter instance name or a shorter ${dirs.ENV_HOME}",
        )


def _refuse_existing(final: Path) -> None:
    if _is_instance_dir(final):
        raise InstanceError(
            f"instance `{final.name}` already exists ({final})",
            hint=f"use another --name, or `limapy delete {final.name}` first",
        )


def _install(tmp: Path, final: Path) -> None:
    _refuse_existing(final)
    try:
        os.rename(tmp, final)  # replaces a missing or empty directory atomically
        return
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    leftovers = {p.name for p in final.iterdir()}
    if not leftovers <= {LOCK_FILE}:
        raise InstanceError(
            f"{final} exists but is not a limapy instance (no {LIMA_YAML})",
            hint="move or remove that directory",
        )
    # Only a lock file is there (someone locked the name first): move entries in, the marker last.
    entries = sorted(tmp.iterdir(), key=lambda p: p.name == LIMA_YAML)
    for entry in entries:
        os.rename(entry, final / entry.name)
    tmp.rmdir()


@contextlib.contextmanager
def creating(name: str) -> Iterator[Path]:
    """Yield a private temp dir `.<name>.tmp-XXXX`; success makes it the instance dir, an error removes it."""
    validate_name(name)
    final = instance_dir(name)
    _check_socket_room(final)
    _refuse_existing(final)  # before any work is done
    home = dirs.limapy_home()
    _mkdir_private(home)
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=home))
    # Held while the instance is made: a later command knows a temp dir nobody holds was left by a killed
    # create or clone (`leftovers`), and that one it cannot lock is still being written.
    held = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield tmp
        _install(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(held)
    fsync_dir(home)


def rename(inst: Instance, new_name: str) -> Instance:
    """Move a (stopped, locked) instance's directory to `new_name`, refusing a taken or unusable name."""
    validate_name(new_name)
    final = instance_dir(new_name)
    _check_socket_room(final)
    _refuse_existing(final)
    if final.exists():
        raise InstanceError(f"{final} exists but is not a limapy instance", hint="move or remove that directory")
    os.rename(inst.dir, final)
    fsync_dir(final.parent)
    return Instance(new_name, final)


def create_instance_dir(name: str, files: Mapping[str, bytes] | None = None) -> Instance:
    """Create instance `name` holding `files` (e.g. {"lima.yaml": ...}) all at once, or nothing at all."""
    with creating(name) as tmp:
        for filename, data in (files or {}).items():
            atomic_write(tmp / filename, data, 0o444 if filename == "lima-version" else 0o644)
    return Instance(name, instance_dir(name))
