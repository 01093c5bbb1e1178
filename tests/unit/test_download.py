from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from limapy import download
from limapy.base import proc
from limapy.base.errors import LimapyError, NotFoundError
from limapy.download import cache as dlcache
from limapy.download import transfer

PAYLOAD = b"disk image bytes " * 5000


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Server:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.truncate: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _head(self) -> bytes | None:
                outer.requests.append((self.command, self.path))
                if self.path not in outer.files:
                    self.send_error(404, "Not Found")
                    return None
                data, headers = outer.files[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return data

            def do_HEAD(self) -> None:
                self._head()

            def do_GET(self) -> None:
                data = self._head()
                if data is None:
                    return
                if self.path in outer.truncate:
                    self.wfile.write(data[: len(data) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes, **headers: str) -> str:
        self.files[path] = (data, headers)
        return self.base + path

    def gets(self, path: str) -> int:
        return sum(1 for m, p in self.requests if m == "GET" and p == path)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture(autouse=True, name="cache")
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(c))
    monkeypatch.setattr(transfer, "BACKOFF", (0.0,))  # retries at once: the tests' servers do not recover
    return c


def test_parse_digest_messages() -> None:
    assert download.parse_digest(sha(b"x")) == hashlib.sha256(b"x").hexdigest()
    with pytest.raises(download.DigestError, match="invalid checksum digest format"):
        download.parse_digest("deadbeef")
    with pytest.raises(download.DigestError, match="unsupported digest algorithm"):
        download.parse_digest("md5:" + "0" * 32)
    with pytest.raises(download.DigestError, match="invalid checksum digest length"):
        download.parse_digest("sha256:abc")
    with pytest.raises(download.DigestError, match="invalid checksum digest length"):
        download.parse_digest("sha512:" + "0" * 64)  # a sha256's length under sha512's name
    assert download.parse_digest("sha512:" + "a" * 128) == "a" * 128


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def test_http_sha512_digest_verified_and_remembered(server: Server) -> None:
    # Debian and Alpine publish only SHA512SUMS: a template pins their images by sha512.
    url = server.add("/debian.qcow2", PAYLOAD)
    out = download.fetch(url, digest=sha512(PAYLOAD))
    assert out.read_bytes() == PAYLOAD and out.parent.name == hashlib.sha256(PAYLOAD).hexdigest()
    assert download.fetch(url, digest=sha512(PAYLOAD)) == out
    assert server.gets("/debian.qcow2") == 1  # the blob remembers it passed this sha512
    with pytest.raises(download.DigestError, match="sha512 digest mismatch: expected sha512:"):
        download.fetch(server.add("/other.qcow2", b"other"), digest=sha512(PAYLOAD))
    assert not (download.url_entry(server.base + "/other.qcow2") / "partial").exists()


def test_local_sha512_digest(tmp_path: Path) -> None:
    img = tmp_path / "img.qcow2"
    img.write_bytes(PAYLOAD)
    assert download.fetch(str(img), digest=sha512(PAYLOAD)) == img
    with pytest.raises(download.DigestError, match="sha512 digest mismatch"):
        download.fetch(str(img), digest=sha512(b"else"))


def test_local_path_used_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = tmp_path / "img.qcow2"
    img.write_bytes(PAYLOAD)
    assert download.fetch(str(img), digest=None) == img
    assert download.fetch(f"file://{img}", digest=sha(PAYLOAD)) == img
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.fetch("~/img.qcow2", digest=None) == img


def test_local_missing_and_wrong_digest(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file") as ei:
        download.fetch(str(tmp_path / "nope.iso"), digest=None)
    assert "\n" not in ei.value.message
    img = tmp_path / "img"
    img.write_bytes(PAYLOAD)
    wrong = sha(b"other")
    with pytest.raises(download.DigestError) as de:
        download.fetch(str(img), digest=wrong)
    assert f"expected {wrong}" in de.value.message and f"got {sha(PAYLOAD)}" in de.value.message


def test_local_digest_is_hashed_once_per_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = tmp_path / "win.iso"
    img.write_bytes(PAYLOAD)
    calls: list[Path] = []
    real = dlcache.file_digest

    def counting(path: Path, algo: str, progress: Any = None) -> str:
        calls.append(path)
        return real(path, algo, progress)

    monkeypatch.setattr(dlcache, "file_digest", counting)
    download.fetch(str(img), digest=sha(PAYLOAD))
    download.fetch(str(img), digest=sha(PAYLOAD))
    assert len(calls) == 1
    with pytest.raises(download.DigestError):  # the remembered digest is still checked
        download.fetch(str(img), digest=sha(b"x"))
    assert len(calls) == 1
    img.write_bytes(PAYLOAD + b"changed")
    os.utime(img, ns=(1, 1))
    with pytest.raises(download.DigestError):
        download.fetch(str(img), digest=sha(PAYLOAD))
    assert len(calls) == 2


def test_local_compressed_is_decompressed(tmp_path: Path) -> None:
    img = tmp_path / "img.raw.xz"
    img.write_bytes(lzma.compress(PAYLOAD))
    out = download.fetch(str(img), digest=sha(img.read_bytes()))
    assert out != img and out.read_bytes() == PAYLOAD
    assert download.fetch(str(img), digest=None, decompress=False) == img


def test_http_download_cached_by_content(server: Server, cache: Path) -> None:
    """The blob is named by its sha256; the URL's entry says which blob is its latest and what the server said."""
    url = server.add("/img.qcow2", PAYLOAD, **{"Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})
    seen: list[tuple[int, int | None]] = []
    path = download.fetch(url, digest=sha(PAYLOAD), progress=lambda d, t: seen.append((d, t)))
    hexd = hashlib.sha256(PAYLOAD).hexdigest()
    assert path == cache / "download" / "by-content-sha256" / hexd / "data"
    assert path.read_bytes() == PAYLOAD
    entry = cache / "download" / "by-url-sha256" / hashlib.sha256(url.encode()).hexdigest()
    assert (entry / "url").read_text() == url
    assert (entry / "content").read_text() == hexd
    assert (entry / "time").read_text() == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert download.fetch(url, digest=sha(PAYLOAD)) == path
    assert server.gets("/img.qcow2") == 1
    assert not [p for p in entry.iterdir() if p.name.endswith(".tmp") or p.name.startswith("partial")]


def test_http_wrong_digest_caches_nothing(server: Server) -> None:
    url = server.add("/img", PAYLOAD)
    with pytest.raises(download.DigestError) as ei:
        download.fetch(url, digest=sha(b"expected"))
    assert sha(b"expected") in ei.value.message and sha(PAYLOAD) in ei.value.message
    entry = download.url_entry(url)
    assert not (entry / "data").exists() and not (entry / "content").exists()
    assert [p.name for p in entry.iterdir()] == [".lock"]
    assert download.fetch(url, digest=sha(PAYLOAD)).read_bytes() == PAYLOAD


def test_http_cached_data_with_other_digest_is_refetched(server: Server) -> None:
    url = server.add("/img", b"old")
    download.fetch(url, digest=sha(b"old"))
    server.add("/img", PAYLOAD)
    assert download.fetch(url, digest=sha(PAYLOAD)).read_bytes() == PAYLOAD
    assert server.gets("/img") == 2


def test_http_interrupted_download_does_not_poison(server: Server) -> None:
    url = server.add("/big", PAYLOAD)
    server.truncate.add("/big")
    with pytest.raises(LimapyError, match="cannot download") as ei:
        download.fetch(url, digest=None)
    assert "\n" not in ei.value.message
    entry = download.url_entry(url)
    # Only a partial (never a name a complete download has), no pointer to a blob.
    assert sorted(p.name for p in entry.iterdir()) == [".lock", "partial", "partial.json"]
    assert not (download.cache_root() / "by-content-sha256").exists()
    server.truncate.clear()
    assert download.fetch(url, digest=None).read_bytes() == PAYLOAD
    assert not (entry / "partial").exists()


def test_http_404_and_unreachable(server: Server) -> None:
    with pytest.raises(LimapyError, match="HTTP 404"):
        download.fetch(server.base + "/missing.img", digest=None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LimapyError, match="cannot download") as ei:
        download.fetch(f"http://127.0.0.1:{port}/x.img", digest=None)
    assert "Connection refused" in ei.value.message


def test_unsupported_scheme() -> None:
    with pytest.raises(LimapyError, match="unsupported URL scheme"):
        download.fetch("ftp://example.org/x", digest=None)


@pytest.mark.parametrize(
    ("ext", "compress"),
    [(".gz", gzip.compress), (".xz", lzma.compress), (".bz2", bz2.compress)],
)
def test_http_decompression(server: Server, ext: str, compress: Any) -> None:
    blob = compress(PAYLOAD)
    url = server.add(f"/img.raw{ext}", blob)
    out = download.fetch(url, digest=sha(blob))
    assert out.name == "decompressed"
    assert out.read_bytes() == PAYLOAD
    assert (out.parent / "data").read_bytes() == blob and out.parent.name == hashlib.sha256(blob).hexdigest()
    assert download.fetch(url, digest=None, decompress=False).read_bytes() == blob


def test_corrupt_compressed_data_is_one_line(server: Server) -> None:
    url = server.add("/img.gz", b"not gzip at all")
    with pytest.raises(LimapyError, match="cannot decompress"):
        download.fetch(url, digest=None)
    assert not list(download.cache_root().glob("by-content-sha256/*/decompressed"))


def test_zst_uses_zstd_command(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.add("/img.zst", b"zstd-frame")
    argvs: list[list[str]] = []

    def fake(argv: Sequence[str | Path], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        args = [str(a) for a in argv]
        argvs.append(args)
        Path(args[args.index("-o") + 1]).write_bytes(PAYLOAD)
        return subprocess.CompletedProcess(args, 0, b"", b"")

    monkeypatch.setattr(proc, "run", fake)
    out = download.fetch(url, digest=None)
    assert out.read_bytes() == PAYLOAD
    assert argvs[0][:5] == ["zstd", "-d", "-q", "-f", "-o"]
    assert argvs[0][-1].endswith("/data")


def test_digestless_cache_revalidated_by_last_modified(server: Server) -> None:
    url = server.add("/cur.img", b"v1", **{"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"})
    download.fetch(url, digest=None)
    assert download.fetch(url, digest=None).read_bytes() == b"v1"
    assert server.gets("/cur.img") == 1
    server.add("/cur.img", b"v2", **{"Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"})
    assert download.fetch(url, digest=None).read_bytes() == b"v2"
    assert server.gets("/cur.img") == 2


def test_plain_progress_lines() -> None:
    buf = io.StringIO()
    with download.ProgressReporter("img", stream=buf) as p:
        for i in range(0, 101):
            p(i << 20, 100 << 20)
    lines = buf.getvalue().splitlines()
    assert 5 <= len(lines) <= 12
    assert lines[-1] == "img: 100.00 MiB / 100.00 MiB (100%)"  # Lima's progress bar units
