"""limapy's SMB server for `mountType: smb`: a private smbd that only the guest reaches, one share per mount.

QEMU's own `-netdev user,smb=DIR` does the same with one share, a smb.conf of its own and guest access. limapy
writes its own instead, in the instance dir (`smb/`, 0700; smb.conf 0600): one share per mount (`m0`, `m1`, ...
in `mounts` order), `read only = yes` for `writable: false` (the server refuses a write, whatever the guest maps),
a generated account (the host user's name, a random password kept 0600 in `smb/password`, in a passdb in
`smb/private`), signing required (Windows 11 24H2's client requires it and refuses guest access).

How the guest reaches it: a slirp `guestfwd=tcp:192.168.5.4:445-cmd:<smb/smbd.sh>` on the user network. For each
TCP connection the guest opens to 192.168.5.4:445, libslirp (4.x, misc.c fork_exec) splits the command with
g_shell_parse_argv (no shell), starts it in a session of its own with the connection as stdin, stdout and stderr,
and smbd, finding a socket on stdin, serves that one connection (its inetd mode; samba 4.17 checked here) and
exits when it closes. So nothing listens on the host (libslirp's socket pair is connected over 127.0.0.1 and its
listener closed before the child starts), and no smbd outlives QEMU: when QEMU stops or is killed, the connection
closes and its smbd exits. 192.168.5.4 is the address QEMU's `smb=` takes in Lima's 192.168.5.0/24 (the
network's fourth; slirp refuses a guestfwd outside the guest's network). The script `smbd.sh` holds no user
text: it finds smb.conf beside itself, so the instance dir's path never meets a shell or QEMU's option parser
unquoted (it is quoted for g_shell_parse_argv, and its commas doubled for QEMU).

Share paths are links in `smb/shares/` (the mount's location is never written into smb.conf, where `%` would be
expanded and a newline would start a directive); `wide links = no` keeps a link inside a share from leading out.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import Mount

#: The guest's address of the server: QEMU's `smb=` default in Lima's user network (192.168.5.0/24, net + 4).
SERVER = "192.168.5.4"
PORT = 445
#: Where smbd may be when it is not on PATH (Debian's /usr/sbin is not on a user's PATH).
SBIN = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/samba/sbin")
#: smbd's own directories inside the instance's smb/ (none of them may be the system's /var/lib/samba).
STATE_DIRS = ("private", "lock", "state", "cache", "run", "ncalrpc", "shares")
PASSDB = "private/passdb.tdb"
CONF, SCRIPT, PASSWORD, LOG, STDERR = "smb.conf", "smbd.sh", "password", "smbd.log", "smbd.stderr.log"
#: What smb.conf cannot carry in a path: a line break ends the value, `%` starts a substitution.
_UNSAFE = ("\n", "\r", "\0", "%")


@dataclass(frozen=True)
class Share:
    name: str  # the share's name: \\192.168.5.4\<name>
    location: str  # the host folder
    writable: bool


def share_name(index: int) -> str:
    return f"m{index}"


def unc(index: int) -> str:
    """The guest's path of mount `index`'s share (\\\\192.168.5.4\\m0)."""
    return f"\\\\{SERVER}\\{share_name(index)}"


def shares(mounts: Sequence[Mount]) -> list[Share]:
    """The shares of `mounts` (a spec's `mounts_of("smb")`), in order."""
    return [Share(share_name(i), m.location, m.writable) for i, m in enumerate(mounts)]


def account() -> str:
    """The SMB account: the host user's name (smbd, not root, can only be that user: `force user`)."""
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def find_smbd() -> str | None:
    found = shutil.which("smbd")
    if found:
        return found
    return next((str(p) for d in SBIN for p in [Path(d) / "smbd"] if os.access(p, os.X_OK)), None)


def find_pdbedit(smbd: str) -> str:
    beside = [Path(smbd).parent.parent / "bin" / "pdbedit", Path(smbd).parent / "pdbedit"]
    return shutil.which("pdbedit") or next((str(p) for p in beside if os.access(p, os.X_OK)), "pdbedit")


def guestfwd(script: Path) -> str:
    """The user netdev's rule: each guest connection to SERVER:445 runs `script` (QEMU's option syntax)."""
    return f"guestfwd=tcp:{SERVER}:{PORT}-cmd:" + shlex.quote(str(script)).replace(",", ",,")


def script_text(smbd: str) -> str:
    """smbd.sh: smbd for one connection on stdin/stdout, with the smb.conf beside the script; its stderr to a log
    (stderr is the connection too)."""
    return (
        "#!/bin/sh\n"
        "# limapy: QEMU runs this for each connection the guest opens to \\\\" + SERVER + " (guestfwd cmd:).\n"
        "# The connection is stdin and stdout; smbd serves it and exits when it closes. Written by limapy.\n"
        'here=$(dirname -- "$0")\n'
        f'exec {shlex.quote(smbd)} --configfile="$here/{CONF}" 2>>"$here/{STDERR}"\n'
    )


def conf_text(smb_dir: Path, user: str, shared: list[Share]) -> str:
    """smb.conf: smbd's state in `smb_dir`, the generated account only, one share per mount."""
    check_path(smb_dir)
    d = str(smb_dir)
    lines = [
        "# Written by limapy for this instance's `mountType: smb` mounts; rewritten at every start.",
        "[global]",
        "server role = standalone server",
        "security = user",
        f"passdb backend = tdbsam:{d}/{PASSDB}",
        *(f"{key} = {d}/{sub}" for key, sub in (
            ("private dir", "private"), ("lock directory", "lock"), ("state directory", "state"),
            ("cache directory", "cache"), ("pid directory", "run"), ("ncalrpc dir", "ncalrpc"),
            ("binddns dir", "private"))),
        f"log file = {d}/{LOG}",
        "logging = file",
        "log level = 1",
        "max log size = 1000",
        # nobody but the generated account; no guest, no anonymous listing
        "map to guest = Never",
        "restrict anonymous = 2",
        f"valid users = {user}",
        # SMB 2.1 and later, signed (Windows 11 24H2 requires signing), NTLMv2 only (samba's default)
        "server min protocol = SMB2_10",
        "server signing = mandatory",
        "ntlm auth = ntlmv2-only",
        # nothing but file shares: no NetBIOS, no printers, no RPC helpers (share listing is not served)
        "disable netbios = yes",
        "smb ports = 445",
        "interfaces = lo",
        "bind interfaces only = yes",
        "load printers = no",
        "printing = bsd",
        "printcap name = /dev/null",
        "disable spoolss = yes",
        "rpc start on demand helpers = no",
        "usershare max shares = 0",
        # host files as the host user made them: no archive bit as an execute bit, no DOS attributes in xattrs
        "map archive = no",
        "store dos attributes = no",
        "create mask = 0644",
        "directory mask = 0755",
        "wide links = no",
        "unix extensions = no",
        # one smbd per connection, each with its own notify daemon: a second connection finds the first's gone
        # and fails its tree connect (NT_STATUS_NO_MEMORY, samba 4.17); the guest re-reads a folder instead
        "change notify = no",
    ]
    for s in shared:
        lines += [
            "",
            f"[{s.name}]",
            f"path = {d}/shares/{s.name}",
            f"read only = {'no' if s.writable else 'yes'}",
            f"force user = {user}",
            "guest ok = no",
            "browseable = yes",
        ]
    return "\n".join(lines) + "\n"


def check_path(smb_dir: Path) -> None:
    bad = [c for c in _UNSAFE if c in str(smb_dir)]
    if bad:
        raise LimapyError(
            f"`mountType: smb` cannot run an smbd in {str(smb_dir)!r}: smb.conf cannot hold a path with {bad[0]!r}",
            hint="use a LIMAPY_HOME without line breaks or `%`",
        )


def password(path: Path) -> str:
    """The account's password: made once (0600), the same at every start (a Windows guest keeps it)."""
    from limapy.base import fsutil

    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if not text:
        text = secrets.token_urlsafe(24)
        fsutil.atomic_write(path, (text + "\n").encode(), 0o600)
    return text


def write(smb_dir: Path, shared: list[Share], smbd: str) -> None:
    """Lay out `smb_dir` for this boot: smbd's directories (0700), a link per share, smb.conf (0600), smbd.sh
    (0700), the password (0600, kept) and a passdb holding only the account (made anew: pdbedit reads the
    password on stdin, never from its command line)."""
    from limapy.base import fsutil, proc

    check_path(smb_dir)
    for d in (smb_dir, *(smb_dir / sub for sub in STATE_DIRS)):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
    links = smb_dir / "shares"
    for old in links.iterdir():
        old.unlink()
    for s in shared:
        Path(s.location).mkdir(parents=True, exist_ok=True)
        (links / s.name).symlink_to(s.location)
    user = account()
    conf = smb_dir / CONF
    fsutil.atomic_write(conf, conf_text(smb_dir, user, shared).encode(), 0o600)
    fsutil.atomic_write(smb_dir / SCRIPT, script_text(smbd).encode(), 0o700)
    secret = password(smb_dir / PASSWORD)
    (smb_dir / PASSDB).unlink(missing_ok=True)
    proc.run([find_pdbedit(smbd), f"--configfile={conf}", "-a", "-u", user, "-t"],
             input=f"{secret}\n{secret}\n".encode(), timeout=60)  # fmt: skip
