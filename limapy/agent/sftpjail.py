"""The host side of a reverse-sshfs mount: an SFTP server confined to the mounted folder.

The guest's `sshfs -o slave` speaks SFTP over its own stdin/stdout, which the host agent connects to this
server (paramiko's SFTP server, run on the exec channel instead of a subsystem). OpenSSH's sftp-server would
serve the whole host file system with the user's rights: a guest could read `~/.ssh`. Here the guest sees
the mount's folder as `/`, every path is resolved on the host and refused when it leaves that folder (`..`,
absolute symbolic links, links planted in a writable mount), and a read-only mount refuses every write on
the host side whatever the guest's mount options say. Files the guest creates are the host user's.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import paramiko

#: SFTP v3 status codes (draft-ietf-secsh-filexfer-02, "SSH_FX_*"), as paramiko's server sends them.
SFTP_OK, SFTP_PERMISSION_DENIED, SFTP_OP_UNSUPPORTED = 0, 3, 8
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class Jail:
    """Guest paths (`/`-rooted, as sshfs sends them) to host paths inside `root`, or PermissionError."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def host(self, guest_path: str, *, follow_last: bool = True) -> str:
        rel = os.path.normpath("/" + guest_path.lstrip("/")).lstrip("/")
        candidate = os.path.join(self.root, rel) if rel not in ("", ".") else str(self.root)
        if follow_last:
            resolved = os.path.realpath(candidate)
        else:  # the entry itself (lstat, unlink, readlink, rename): only its parent is resolved
            parent, name = os.path.split(candidate)
            resolved = os.path.join(os.path.realpath(parent), name) if name else os.path.realpath(parent)
        if resolved != str(self.root) and not resolved.startswith(str(self.root) + os.sep):
            raise PermissionError(errno.EACCES, "outside the mount", guest_path)
        return resolved

    def guest(self, host_path: str) -> str:
        rel = os.path.relpath(host_path, self.root)
        return "/" if rel == "." else "/" + rel


def _attrs(st: os.stat_result, filename: str = "") -> paramiko.SFTPAttributes:
    attr = paramiko.SFTPAttributes.from_stat(st)
    attr.filename = filename
    return attr


class _Handle(paramiko.SFTPHandle):  # type: ignore[misc]  # paramiko has no type hints
    def __init__(self, fd: int, flags: int, path: str) -> None:
        super().__init__(flags)
        # Unbuffered: SFTP reads and writes come at explicit offsets (O_APPEND writes still append).
        f = os.fdopen(fd, "r+b" if flags & (os.O_WRONLY | os.O_RDWR) else "rb", buffering=0)
        self.readfile = f
        self.writefile = f if flags & (os.O_WRONLY | os.O_RDWR) else None
        self.path = path

    def stat(self) -> Any:
        try:
            return _attrs(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return _code(e)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        return _apply(self.path, attr, fd=self.readfile.fileno())


def _apply(path: str, attr: paramiko.SFTPAttributes, fd: int | None = None) -> int:
    """setstat: mode, size and times (ownership stays the host user's)."""
    try:
        if attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode is not None:
            os.chmod(fd if fd is not None else path, stat.S_IMODE(attr.st_mode))
        if attr._flags & attr.FLAG_SIZE and attr.st_size is not None:
            os.truncate(fd if fd is not None else path, attr.st_size)
        if attr._flags & attr.FLAG_AMTIME and attr.st_atime is not None and attr.st_mtime is not None:
            os.utime(fd if fd is not None else path, (attr.st_atime, attr.st_mtime))
    except OSError as e:
        return _code(e)
    return SFTP_OK


def _code(e: OSError) -> int:
    return int(paramiko.SFTPServer.convert_errno(e.errno))


def _status(fn: Any, *args: Any) -> int:
    """Run a host file operation for the guest: SFTP_OK, or the SFTP status of its errno."""
    try:
        result = fn(*args)
    except OSError as e:
        return _code(e)
    return int(result) if isinstance(result, int) else SFTP_OK


class JailedSFTP(paramiko.SFTPServerInterface):  # type: ignore[misc]
    """paramiko's SFTP server interface over one folder; `read_only` refuses every change."""

    def __init__(self, server: Any, *, root: Path, read_only: bool) -> None:
        super().__init__(server)
        self.jail = Jail(root)
        self.read_only = read_only

    def _run(self, fn: Any, *args: Any) -> Any:
        """A read: its result, or the SFTP status of its errno."""
        try:
            return fn(*args)
        except OSError as e:
            return _code(e)

    def _write(self, fn: Any, *args: Any) -> int:
        """A change: refused on a read-only mount before anything is touched."""
        return SFTP_PERMISSION_DENIED if self.read_only else _status(fn, *args)

    # -- reading -------------------------------------------------------------------------------------------
    def canonicalize(self, path: str) -> str:
        try:
            return self.jail.guest(self.jail.host(path))
        except OSError:
            return "/"

    def list_folder(self, path: str) -> Any:
        def run() -> list[paramiko.SFTPAttributes]:
            folder = self.jail.host(path)
            out = []
            for name in os.listdir(folder):
                try:
                    out.append(_attrs(os.lstat(os.path.join(folder, name)), name))
                except OSError:
                    continue
            return out

        return self._run(run)

    def stat(self, path: str) -> Any:
        return self._run(lambda: _attrs(os.stat(self.jail.host(path))))

    def lstat(self, path: str) -> Any:
        return self._run(lambda: _attrs(os.lstat(self.jail.host(path, follow_last=False))))

    def readlink(self, path: str) -> Any:
        return self._run(lambda: os.readlink(self.jail.host(path, follow_last=False)))

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> Any:
        if flags & WRITE_FLAGS and self.read_only:
            return SFTP_PERMISSION_DENIED

        def run() -> _Handle:
            host = self.jail.host(path)
            mode = stat.S_IMODE(attr.st_mode) if attr.st_mode is not None else 0o666
            fd = os.open(host, flags | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, mode)
            return _Handle(fd, flags, host)

        return self._run(run)

    # -- writing -------------------------------------------------------------------------------------------
    def remove(self, path: str) -> int:
        return self._write(lambda: os.unlink(self.jail.host(path, follow_last=False)))

    def rename(self, oldpath: str, newpath: str) -> int:
        def run() -> int:
            src, dst = self.jail.host(oldpath, follow_last=False), self.jail.host(newpath, follow_last=False)
            if os.path.lexists(dst):
                return _code(FileExistsError(errno.EEXIST, "exists"))  # SFTP v3 rename never replaces
            os.rename(src, dst)
            return SFTP_OK

        return self._write(run)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._write(
            lambda: os.replace(self.jail.host(oldpath, follow_last=False), self.jail.host(newpath, follow_last=False))
        )

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        mode = stat.S_IMODE(attr.st_mode) if attr.st_mode is not None else 0o777
        return self._write(lambda: os.mkdir(self.jail.host(path, follow_last=False), mode))

    def rmdir(self, path: str) -> int:
        return self._write(lambda: os.rmdir(self.jail.host(path, follow_last=False)))

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return self._write(lambda: _apply(self.jail.host(path), attr))

    def symlink(self, target_path: str, path: str) -> int:
        # A link may name anything: following it is what the jail checks, on every later access.
        return self._write(lambda: os.symlink(target_path, self.jail.host(path, follow_last=False)))

    def check(self, handle: Any, algorithm: Any, offset: Any, length: Any, block_size: Any) -> int:
        return SFTP_OP_UNSUPPORTED


def serve(channel: Any, root: Path, *, read_only: bool) -> None:
    """Serve SFTP for `root` on `channel` (an exec channel running `sshfs -o slave`) until it closes."""
    server = paramiko.SFTPServer(channel, "sftp", None, JailedSFTP, root=root, read_only=read_only)
    server.start_subsystem("sftp", channel.get_transport(), channel)
    server.finish_subsystem()
