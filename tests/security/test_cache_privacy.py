"""Hardening, second round, item 4: the per-user cache under umask 000 and against a second user.

Every directory and file limapy keeps in the cache (downloads, the validate memo, schema verdicts, help and
completion tables, the `ssh -V` answer) is 0700/0600 whatever the umask; a cache (or a directory in it) that
is not the user's is refused or, for memos, ignored; a download's `partial` is never written through a link.
The second user is real where the tests run as root (CI does: files chowned to `nobody`), and otherwise the
same check is reached by giving limapy another effective uid in-process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from limapy import download
from limapy.base.errors import LimapyError
from tests.security.conftest import REPO, Server, final_error, instances, limapy, qcow2, template

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root (CI runs as root)")


def run_umask0(*args: str, env: dict[str, str] | None = None, code: str | None = None) -> None:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "limapy", *args]
    subprocess.run(argv, env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})), umask=0, check=False,
                   capture_output=True, timeout=120)  # fmt: skip


def test_every_cache_file_is_private_under_umask_000(home: Path, tmp_path: Path, server: Server) -> None:
    cache = Path(os.environ["LIMAPY_CACHE_DIR"])
    t = template(tmp_path, "/x.img")
    run_umask0("validate", str(t))  # the memo and the schema verdict
    run_umask0("--help")  # the help cache
    run_umask0(env={"_LIMAPY_COMPLETE": "complete_bash", "COMP_WORDS": "limapy ", "COMP_CWORD": "1"})
    run_umask0(code="from limapy import ssh; ssh.openssh_version()")
    data = b"bytes" * 1000
    url = server.add("/img", data)
    run_umask0(code=f"from limapy import download; download.fetch({url!r})")
    seen = {p.relative_to(cache).parts[0] for p in cache.rglob("*")}
    assert {"validated", "schema-ok", "help", "complete", "openssh-version.json", "download"} <= seen, seen
    loose = [f"{p} {oct(stat.S_IMODE(p.lstat().st_mode))}" for p in [cache, *cache.rglob("*")]
             if stat.S_IMODE(p.lstat().st_mode) != (0o700 if p.is_dir() else 0o600)]  # fmt: skip
    assert not loose, loose


def test_a_planted_validate_memo_is_ignored(home: Path, tmp_path: Path) -> None:
    """A memo someone else could write (group/world-writable, or another user's) never makes validate say OK."""
    from limapy.base import dirs, stamps
    from limapy.ops import validate

    t = tmp_path / "bad.yaml"
    t.write_text("cpus: many\n")
    assert limapy("validate", str(t)).returncode != 0
    memo = validate._memo(str(t))
    assert memo is not None
    files = [t, dirs.schema_path(), dirs.config_dir() / "default.yaml", dirs.config_dir() / "override.yaml"]
    fake = {"v": validate.MEMO_VERSION, "key": memo.key, "host": stamps.host(), "files": stamps.record(files),
            "out": "", "err": ""}  # fmt: skip
    memo.path.parent.mkdir(parents=True, exist_ok=True)
    memo.path.write_text(json.dumps(fake))
    os.chmod(memo.path, 0o666)
    cp = limapy("validate", str(t))
    assert cp.returncode != 0 and "cpus" in cp.stderr, cp.stderr
    if os.geteuid() == 0:
        os.chmod(memo.path, 0o644)
        os.chown(memo.path, NOBODY, NOBODY)
        cp = limapy("validate", str(t))
        assert cp.returncode != 0 and "cpus" in cp.stderr, cp.stderr


def test_an_existing_partial_is_never_written_through_a_link(home: Path, tmp_path: Path, server: Server) -> None:
    data = b"the image " * 10_000
    url = server.add("/img", data)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious " * 2000)
    os.chmod(victim, 0o600)
    entry = download.url_entry(url)
    entry.mkdir(parents=True)
    (entry / "partial").symlink_to(victim)  # a resumable partial, as far as the validators go
    last = server.files["/img"].mtime
    from email.utils import formatdate

    (entry / "partial.json").write_text(json.dumps({"url": url, "etag": None, "length": len(data),
                                                    "last_modified": formatdate(last, usegmt=True)}))
    path = download.fetch(url, digest="sha256:" + hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data
    assert victim.read_bytes() == b"precious " * 2000


def test_a_cache_of_another_uid_is_refused_in_process(home: Path, tmp_path: Path, server: Server,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check without root: limapy runs as another uid than the cache's owner."""
    url = server.add("/img", b"x" * 100)
    download.fetch(url)  # the cache exists and is ours
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    with pytest.raises(LimapyError, match=r"refusing to use the cache directory .*: it belongs to uid \d+, not to"):
        download.fetch(server.add("/other", b"y" * 100))


@as_root
def test_root_refuses_a_download_tree_another_user_planted(home: Path, tmp_path: Path, server: Server) -> None:
    """The issue's case: a second user swapped in their own `download/` tree whose `partial` links to a root-owned
    0600 file; root's next create must neither follow it nor use that tree."""
    img = qcow2(tmp_path / "img.qcow2", fill=0x41).read_bytes()
    url = server.add("/img.qcow2", img)
    victim = tmp_path / "root-only"
    victim.write_bytes(b"root's secret\n" * 100)
    os.chmod(victim, 0o600)
    cache = Path(os.environ["LIMAPY_CACHE_DIR"])
    cache.mkdir(mode=0o700)
    entry = download.url_entry(url)
    entry.mkdir(parents=True)
    (entry / "partial").symlink_to(victim)
    (entry / "partial.json").write_text(json.dumps({"url": url, "length": len(img)}))
    for p in [cache / "download", *(cache / "download").rglob("*")]:
        os.lchown(p, NOBODY, NOBODY)
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o777)
    err = final_error(limapy("create", "--name", "a", str(template(tmp_path, url))))
    assert "refusing to use the cache directory" in err and f"belongs to uid {NOBODY}" in err, err
    assert victim.read_bytes() == b"root's secret\n" * 100
    assert instances(home) == []
    for p in cache.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    os.chown(cache, NOBODY, NOBODY)  # the root itself
    cp = limapy("--help")  # memos in a foreign cache are ignored: help still works, and nothing is written
    assert cp.returncode == 0
    assert list(cache.iterdir()) == []
