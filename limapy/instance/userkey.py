"""limapy's own SSH key, `$LIMAPY_HOME/_config/user` (ed25519, 0600), made once under a lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from limapy.base import dirs, proc
from limapy.base.fsutil import atomic_write

USER_KEY = "user"


def ensure_user_key() -> tuple[Path, str]:
    """`$LIMAPY_HOME/_config/user` (ed25519, 0600) created once under a lock; returns (key path, pubkey)."""
    cfg = dirs.config_dir()
    cfg.mkdir(mode=0o700, parents=True, exist_ok=True)
    if cfg.stat().st_mode & 0o777 != 0o700:
        cfg.chmod(0o700)
    key = cfg / USER_KEY
    pub = cfg / f"{USER_KEY}.pub"
    with _flock(cfg / ".user.lock"):
        if not key.is_file():
            import shutil
            import tempfile

            tmpdir = Path(tempfile.mkdtemp(prefix=".user.tmp-", dir=cfg))
            try:
                tmp_key = tmpdir / USER_KEY
                proc.run(["ssh-keygen", "-t", "ed25519", "-q", "-N", "", "-C", "limapy", "-f", tmp_key])
                tmp_key.chmod(0o600)
                os.replace(tmp_key.with_name(f"{USER_KEY}.pub"), pub)
                os.replace(tmp_key, key)
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)
        elif not pub.is_file():
            out = proc.run(["ssh-keygen", "-y", "-f", key]).stdout.decode()
            atomic_write(pub, out.encode(), 0o644)
        if key.stat().st_mode & 0o077:
            key.chmod(0o600)
        return key, pub.read_text().strip()


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
