"""Hardening, downloads: refused redirects, bodies that cannot pass for complete, bounded templates, and
interruptions that leave only a resumable partial. A real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from limapy import download
from limapy.base.errors import LimapyError
from tests.security.conftest import REPO, Server, instances, limapy, one_error, qcow2, template


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from limapy.download import transfer
    except ImportError:  # a limapy without retries
        return
    monkeypatch.setattr(transfer, "BACKOFF", (0.0,))


def test_redirect_to_another_scheme_is_refused(home: Path, server: Server) -> None:
    url = server.add("/img", redirect="ftp://127.0.0.1/img")
    with pytest.raises(LimapyError, match=r"redirect to ftp://127\.0\.0\.1/img refused"):
        download.fetch(url)
    url = server.add("/file", redirect="file:///etc/passwd")
    with pytest.raises(LimapyError, match=r"refused|not allowed"):
        download.fetch(url)


def test_truncated_body_without_length_is_not_complete(home: Path, server: Server) -> None:
    data = b"0123456789" * 10_000
    url = server.add("/img", data, no_length=True, truncate=True)
    with pytest.raises(LimapyError, match="cannot download"):
        download.fetch(url)  # the HEAD afterwards says 100000 bytes; only a third came
    entry = download.url_entry(url)
    assert not (entry / "content").exists() and not list((download.cache_root()).glob("by-content-sha256/*/data"))
    assert (entry / "partial").exists()  # kept, under a name no complete download has
    server.add("/img", data, no_length=True)
    assert download.fetch(url).read_bytes() == data


def test_huge_remote_template_is_refused_before_download(home: Path, server: Server) -> None:
    url = server.add("/t.yaml", b"images: []\n", fake_length=2 << 30, content_type="text/plain")
    err = one_error(limapy("validate", url))
    assert "2147483648 bytes, more than the 4194304 allowed" in err
    assert server.bytes_sent < 1 << 20


def test_trickling_template_server_is_given_up(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.ops import fetch

    monkeypatch.setattr(fetch, "TEMPLATE_DEADLINE", 2.0)
    url = server.add("/t.yaml", b"images: [{location: /x.img}]\n" * 5, trickle=0.5, content_type="text/plain")
    t0 = time.monotonic()
    with pytest.raises(LimapyError, match="not done after 2 s"):
        fetch.template_fetcher(url)
    assert time.monotonic() - t0 < 15


def test_low_speed_limit(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.download import transfer

    monkeypatch.setattr(transfer, "LOW_SPEED_WINDOW", 1.0)
    monkeypatch.setattr(transfer, "RETRIES", 1)
    url = server.add("/img", b"x" * 200, trickle=0.2)
    with pytest.raises(LimapyError, match="fewer than 1024 bytes"):
        download.fetch(url)


@pytest.mark.timeout(60)
def test_sigterm_during_create_leaves_only_a_resumable_partial(home: Path, tmp_path: Path, server: Server) -> None:
    img = qcow2(tmp_path / "img.qcow2", fill=0x41).read_bytes()
    url = server.add("/img.qcow2", img, trickle=0.002)
    t = template(tmp_path, url)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-m", "limapy", "create", "--name", "s", str(t)], env=env,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while server.bytes_sent < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 143 and err.strip().splitlines()[-1] == "limapy: terminated", err
    assert instances(home) == [] and not [x for x in home.iterdir() if x.name.startswith(".s.tmp-")]
    entry = download.url_entry(url)
    partial = entry / "partial"
    assert partial.exists() and 0 < partial.stat().st_size < len(img)
    assert not (entry / "content").exists()
    # The next create resumes: the server is asked for the rest only (the file is unchanged: same Last-Modified).
    server.files["/img.qcow2"].trickle = 0.0
    before = server.bytes_sent
    cp = limapy("create", "--name", "s", str(t))
    assert cp.returncode == 0, cp.stderr
    assert server.bytes_sent - before < len(img)
    assert hashlib.sha256((download.cache_root() / "by-content-sha256" / hashlib.sha256(img).hexdigest() / "data")
                          .read_bytes()).hexdigest() == hashlib.sha256(img).hexdigest()
