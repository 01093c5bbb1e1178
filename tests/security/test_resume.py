"""Downloads that survive a bad network (issue 15 acceptance), against a real HTTP server on 127.0.0.1 that
counts the bytes it serves: a cut at 50 % costs only the rest; a server without Range support and a file
changed between tries start again cleanly; the digest is checked over the whole file after a resume; 5xx
answers are retried a bounded number of times; proxies come from HTTP_PROXY / NO_PROXY; an HTML page is not
an image; Ctrl-C during `create` leaves no instance and a partial the next `create` resumes; progress
says how much a resume already had."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from limapy import download
from limapy.base.errors import LimapyError
from limapy.download import transfer
from tests.security.conftest import REPO, Server, instances, limapy, qcow2

DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "BACKOFF", (0.0,))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ranges_asked(server: Server, path: str) -> list[str | None]:
    return [h.get("Range") for m, p, h in server.requests if m == "GET" and p == path]


def blobs() -> list[Path]:
    return sorted(download.cache_root().glob("by-content-sha256/*/data"))


def test_cut_at_half_transfers_only_the_rest(home: Path, server: Server) -> None:
    url = server.add("/img", DATA, cut=0.5, cuts=1)
    said: list[str] = []
    assert download.fetch(url, digest=sha(DATA), say=said.append).read_bytes() == DATA
    assert ranges_asked(server, "/img") == [None, f"bytes={len(DATA) // 2}-"]
    assert server.bytes_sent <= 1.1 * len(DATA)
    assert any("resuming: 512KiB of 1MiB already downloaded" in s for s in said), said


def test_cut_then_resumed_by_the_next_command(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "RETRIES", 0)
    url = server.add("/img", DATA, cut=0.5, cuts=1, etag='"v1"')
    with pytest.raises(LimapyError, match="run the command again to resume"):
        download.fetch(url, digest=sha(DATA))
    partial = download.url_entry(url) / "partial"
    assert partial.stat().st_size == len(DATA) // 2 and blobs() == []
    assert download.fetch(url, digest=sha(DATA)).read_bytes() == DATA
    assert server.bytes_sent <= 1.1 * len(DATA)
    last = [h for m, p, h in server.requests if m == "GET"][-1]
    assert last.get("If-Range") == '"v1"'  # the strong ETag is the validator when there is one


def test_server_without_range_support_starts_again(home: Path, server: Server) -> None:
    url = server.add("/img", DATA, cut=0.5, cuts=1, ranges=False)
    said: list[str] = []
    assert download.fetch(url, digest=sha(DATA), say=said.append).read_bytes() == DATA
    assert ranges_asked(server, "/img") == [None, f"bytes={len(DATA) // 2}-"]  # asked, got the whole file
    assert any("starting again" in s for s in said), said
    assert [b.read_bytes() == DATA for b in blobs()] == [True]


def test_file_changed_between_tries_is_fetched_again(home: Path, server: Server,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(transfer, "RETRIES", 0)
    old = DATA
    new = bytes(reversed(DATA))
    url = server.add("/img", old, cut=0.5, cuts=1, mtime=time.time() - 3600)
    with pytest.raises(LimapyError, match="cannot download"):
        download.fetch(url)
    server.add("/img", new)  # a new build under the same name: another Last-Modified
    got = download.fetch(url)
    assert got.read_bytes() == new  # never half old, half new
    last = [h for m, p, h in server.requests if m == "GET"][-1]
    assert last.get("Range") == f"bytes={len(old) // 2}-" and "If-Range" in last
    assert server.bytes_sent == len(old) // 2 + len(new)


def test_wrong_digest_after_a_resume_is_an_error_and_caches_nothing(
    home: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "RETRIES", 0)
    url = server.add("/img", DATA, cut=0.5, cuts=1)
    with pytest.raises(LimapyError, match="cannot download"):
        download.fetch(url, digest=sha(DATA))
    entry = download.url_entry(url)
    partial = entry / "partial"
    with open(partial, "r+b") as f:  # the first half went bad on disk (or came wrong from a broken mirror)
        f.write(b"\xff" * 16)
    with pytest.raises(download.DigestError, match="sha256 digest mismatch"):
        download.fetch(url, digest=sha(DATA))
    assert ranges_asked(server, "/img")[-1] == f"bytes={len(DATA) // 2}-"  # it was a resume
    # Nothing that looks complete, and nothing to resume from: the next try starts from zero.
    assert blobs() == [] and not (entry / "content").exists()
    assert not partial.exists() and not (entry / "partial.json").exists()
    assert download.fetch(url, digest=sha(DATA)).read_bytes() == DATA
    assert ranges_asked(server, "/img")[-1] is None


def test_server_errors_are_retried_a_bounded_number_of_times(home: Path, server: Server) -> None:
    url = server.add("/img", DATA, fail=2)
    said: list[str] = []
    assert download.fetch(url, say=said.append).read_bytes() == DATA
    assert sum("HTTP 503" in s and "retrying" in s for s in said) == 2
    url = server.add("/down", DATA, fail=100)
    with pytest.raises(LimapyError, match=rf"HTTP 503 .*gave up after {transfer.RETRIES + 1} tries"):
        download.fetch(url)
    assert server.gets("/down") == transfer.RETRIES + 1


def test_proxy_from_the_environment(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    # The server is the proxy: it gets the absolute URL of a host that does not exist.
    server.add("http://images.invalid/img", DATA)
    monkeypatch.setenv("HTTP_PROXY", server.base)
    assert download.fetch("http://images.invalid/img").read_bytes() == DATA
    # NO_PROXY: straight to the server, past a proxy that would refuse.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url = server.add("/direct", b"direct")
    assert download.fetch(url).read_bytes() == b"direct"


def test_html_instead_of_an_image_is_a_clear_error(home: Path, server: Server) -> None:
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>\n"
    url = server.add("/img.qcow2", page, content_type="text/html; charset=utf-8")
    with pytest.raises(LimapyError, match="the server sent an HTML page, not the file") as ei:
        download.fetch(url)
    assert ei.value.hint and "browser" in ei.value.hint
    assert blobs() == [] and not (download.url_entry(url) / "partial").exists()


def test_progress_starts_at_the_resumed_bytes(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "RETRIES", 0)
    url = server.add("/img", DATA, cut=0.5, cuts=1)
    with pytest.raises(LimapyError):
        download.fetch(url)
    buf = io.StringIO()
    with download.ProgressReporter("img", stream=buf) as p:
        download.fetch(url, progress=p, say=p.say)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "downloading img"  # once bytes move (a cache hit prints nothing)
    assert lines[1] == f"img: resuming: 512KiB of 1MiB already downloaded ({len(DATA) // 2} bytes), fetching the rest"
    assert lines[2] == "img: 512.00 KiB / 1.00 MiB (50%)"  # the first report is the resumed half


@pytest.mark.timeout(90)
def test_ctrl_c_during_create_leaves_no_instance_and_a_resumable_partial(home: Path, tmp_path: Path,
                                                                         server: Server) -> None:  # fmt: skip
    img = qcow2(tmp_path / "img.qcow2", fill=0x42).read_bytes()
    url = server.add("/img.qcow2", img, trickle=0.002)
    t = tmp_path / "t.yaml"
    t.write_text(f"images:\n- location: {url!r}\n  arch: x86_64\n  digest: {sha(img)!r}\narch: x86_64\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-m", "limapy", "create", "--name", "c", str(t)], env=env,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while server.bytes_sent < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err.strip().splitlines()[-1] == "limapy: interrupted", err
    assert "Traceback" not in err
    assert instances(home) == [] and not [x for x in home.iterdir() if x.name.startswith(".c.tmp-")]
    entry = download.url_entry(url)
    cut = (entry / "partial").stat().st_size
    assert 0 < cut < len(img) and blobs() == [] and not (entry / "content").exists()
    server.files["/img.qcow2"].trickle = 0.0
    time.sleep(1)  # the interrupted request's handler notices the closed connection and stops counting
    before = server.bytes_sent
    cp = limapy("create", "--name", "c", str(t))
    assert cp.returncode == 0, cp.stderr
    assert ranges_asked(server, "/img.qcow2")[-1] == f"bytes={cut}-"
    assert len(img) - cut <= server.bytes_sent - before <= len(img) - cut + 4096
    assert instances(home) == ["c"]
