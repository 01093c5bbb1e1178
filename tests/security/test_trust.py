"""Hardening, secrets and trust: a template from the network reads no host files; the download cache is
private whatever the umask, and a cached file is trusted only while its bytes are the verified ones."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from limapy import download
from tests.security.conftest import REPO, Server, instances, limapy, one_error, qcow2

SECRET = "#!/bin/sh\n# -----BEGIN OPENSSH PRIVATE KEY----- not really\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    key = tmp_path / "id_rsa"
    key.write_text(SECRET)
    return key


def remote(server: Server, tmp_path: Path, body: str) -> str:
    img = qcow2(tmp_path / "img.qcow2")
    server.add("/img.qcow2", img.read_bytes())
    return server.add("/t.yaml", f"images: [{{location: '{server.base}/img.qcow2', arch: x86_64}}]\n"
                                 f"arch: x86_64\n{body}".encode(), content_type="text/plain")


# --- 4. a remote template may not read (or write) host files -------------------------------------------------


@pytest.mark.parametrize("ref", ["{secret}", "file://{secret}", "~/../..{secret}"])
@pytest.mark.parametrize("section", ["provision", "probes"])
def test_remote_template_cannot_inline_host_files(
    home: Path, tmp_path: Path, server: Server, secret: Path, ref: str, section: str
) -> None:
    path = ref.format(secret=secret)
    mode = "system" if section == "provision" else "readiness"
    url = remote(server, tmp_path, f"{section}: [{{mode: {mode}, file: '{path}'}}]\n")
    for command in (("validate", url), ("create", "--name", "r", url)):
        cp = limapy(*command)
        err = one_error(cp)
        assert f"{url}:3:" in err and "refusing to read the host file" in err and "came from the network" in err
        assert "--allow-local-files" in cp.stderr
        assert "PRIVATE KEY" not in cp.stdout + cp.stderr
    assert instances(home) == []
    cp = limapy("validate", "--fill", "--allow-local-files", url)  # the user's explicit choice
    assert cp.returncode == 0, cp.stderr
    assert "not really" in cp.stdout


def test_remote_base_and_relative_includes_stay_remote(home: Path, tmp_path: Path, server: Server,
                                                       secret: Path) -> None:
    url = remote(server, tmp_path, f"base: '{secret}'\n")
    assert "refusing to read the host file" in one_error(limapy("validate", url))
    # A relative reference is resolved against the template's URL, not the current directory.
    server.add("/lib/extra.sh", b"#!/bin/sh\necho from the server\n", content_type="text/plain")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "extra.sh").write_text("#!/bin/sh\necho from the host\n")
    url = remote(server, tmp_path, "provision: [{mode: system, file: lib/extra.sh}]\n")
    env = {"PWD": str(tmp_path)}
    cp = subprocess.run([sys.executable, "-m", "limapy", "validate", "--fill", url], cwd=tmp_path,
                        env=dict(os.environ, PYTHONPATH=str(REPO), **env), capture_output=True, text=True, check=False)
    assert cp.returncode == 0, cp.stderr
    assert "from the server" in cp.stdout and "from the host" not in cp.stdout


@pytest.mark.parametrize("body", ["copyToHost: [{guest: /etc/passwd, host: /tmp/x}]\n",
                                  "caCerts: {files: ['{secret}']}\n"])
def test_remote_template_cannot_name_host_files_for_later(home: Path, tmp_path: Path, server: Server,
                                                          secret: Path, body: str) -> None:
    url = remote(server, tmp_path, body.replace("{secret}", str(secret)))
    err = one_error(limapy("create", "--name", "r", url))
    assert "refusing to" in err and "came from the network" in err
    assert instances(home) == []


def test_local_templates_and_mounts_are_the_users_choice(home: Path, tmp_path: Path, server: Server,
                                                         secret: Path) -> None:
    local = tmp_path / "local.yaml"
    local.write_text(f"images: [{{location: /x.img, arch: x86_64}}]\nprovision: [{{mode: system, file: '{secret}'}}]\n")
    assert limapy("validate", str(local)).returncode == 0
    url = remote(server, tmp_path, f"mounts: [{{location: '{tmp_path}'}}]\n")
    assert limapy("validate", url).returncode == 0


# --- 5. the cache is private, and a swapped file is noticed ------------------------------------------------


def test_cache_is_private_under_umask_000(home: Path, tmp_path: Path, server: Server) -> None:
    cache = Path(os.environ["LIMAPY_CACHE_DIR"])
    url = server.add("/img", b"bytes" * 1000, mtime=1_700_000_000)
    code = (f"import os; os.umask(0); from limapy import download; "
            f"download.fetch({url!r}, digest='sha256:{hashlib.sha256(b'bytes' * 1000).hexdigest()}')")
    subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    seen = 0
    for p in [cache, *cache.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        if p.is_dir():
            assert mode == 0o700, (p, oct(mode))
        else:
            assert mode == 0o600, (p, oct(mode))
        seen += 1
    assert seen > 5


def test_swapped_cache_file_is_not_trusted(home: Path, server: Server) -> None:
    good = b"the real image " * 1000
    want = "sha256:" + hashlib.sha256(good).hexdigest()
    url = server.add("/img", good)
    path = download.fetch(url, digest=want)
    evil = b"X" * len(good)  # same size, so only the bytes differ
    with open(path, "r+b") as f:
        f.write(evil)
    again = download.fetch(url, digest=want)  # re-verified (its stat changed), moved aside, fetched again
    assert again.read_bytes() == good
    assert server.gets("/img") == 2
    assert [p.read_bytes() for p in again.parent.glob("data.changed-*")] == [evil]
