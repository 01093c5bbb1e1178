"""Fixtures for the hardening tests: a private LIMAPY_HOME and cache, limapy as a process, a local HTTP server.

The server listens on 127.0.0.1 only and misbehaves on request: bodies cut short (with or without a
Content-Length), a 2 GiB Content-Length, a trickle of one byte per interval (of the body, or of the status
line and headers), redirects to other schemes.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    data: bytes
    mtime: float = field(default_factory=time.time)
    truncate: bool = False  # send a third of the body, then close
    no_length: bool = False  # no Content-Length on GET: the body ends when the connection closes
    fake_length: int | None = None  # promise this many bytes
    trickle: float = 0.0  # seconds between single bytes
    redirect: str | None = None
    content_type: str = "application/octet-stream"
    ranges: bool = True  # answer `Range: bytes=N-` (with If-Range) with 206
    etag: str | None = None  # send this ETag (and compare If-Range with it)
    cut: float | None = None  # with `cuts`: send this fraction of the body, then close
    cuts: int = 0  # how many GETs are cut (then the server recovers)
    fail: int = 0  # how many GETs answer 503 first
    trickle_head: float = 0.0  # seconds between single bytes of the status line and headers


class Server:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bytes_sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, body: bool) -> None:
                outer.requests.append((self.command, self.path, dict(self.headers.items())))
                f = outer.files.get(self.path)
                if f is None:
                    self.send_error(404, "Not Found")
                    return
                if f.redirect:
                    self.send_response(302)
                    self.send_header("Location", f.redirect)
                    self.end_headers()
                    return
                if body and f.fail > 0:
                    f.fail -= 1
                    self.send_error(503, "Service Unavailable")
                    return
                if f.trickle_head:
                    head = (f"HTTP/1.0 200 OK\r\nContent-Type: {f.content_type}\r\nX-Padding: {'x' * 200}\r\n"
                            f"Content-Length: {len(f.data)}\r\n\r\n").encode()
                    try:
                        for i in range(len(head)):
                            self.wfile.write(head[i : i + 1])
                            self.wfile.flush()
                            time.sleep(f.trickle_head)
                        self.wfile.write(f.data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                modified = formatdate(f.mtime, usegmt=True)
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if m and f.ranges and self.headers.get("If-Range", modified) in (modified, f.etag):
                    start = min(int(m.group(1)), len(f.data))
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", f.content_type)
                self.send_header("Last-Modified", modified)
                if f.etag:
                    self.send_header("ETag", f.etag)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
                if not (f.no_length and body):  # a HEAD still says how long the file is
                    self.send_header("Content-Length", str(f.fake_length or len(f.data) - start))
                self.end_headers()
                if not body:
                    return
                data = f.data[start:]
                data = data[: len(data) // 3] if f.truncate else data
                cut = f.cut is not None and f.cuts > 0
                if cut:
                    f.cuts -= 1
                    data = data[: int(len(f.data) * (f.cut or 0)) - start]
                if f.trickle:
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        outer.bytes_sent += 1
                        time.sleep(f.trickle)
                    return
                try:
                    self.wfile.write(data)
                    outer.bytes_sent += len(data)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if f.truncate or cut:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

            def do_HEAD(self) -> None:
                self._serve(False)

            def do_GET(self) -> None:
                self._serve(True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes = b"", **opts: Any) -> str:
        self.files[path] = Served(data, **opts)
        return self.base + path

    def gets(self, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == "GET" and p == path)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """LIMAPY_HOME and the cache, for this process and the limapy processes it runs."""
    h = Path(os.environ.get("TMPDIR", "/tmp")) / f"lps-{os.getpid()}-{tmp_path.name[-12:]}"
    h.mkdir(mode=0o700)
    monkeypatch.setenv("LIMAPY_HOME", str(h))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    yield h
    import shutil

    shutil.rmtree(h, ignore_errors=True)


def limapy(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "limapy", *args], env=full, capture_output=True, text=True, timeout=timeout,
        check=False, input=input,
    )  # fmt: skip


def one_error(cp: subprocess.CompletedProcess[str]) -> str:
    """The single `limapy:` error line; every line of stderr carries the prefix, and besides the error there
    is at most one `limapy: hint:` line; no traceback."""
    assert cp.returncode != 0, cp.stdout + cp.stderr
    assert "Traceback" not in cp.stderr, cp.stderr
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
    assert all(ln.startswith("limapy: ") for ln in lines), cp.stderr
    hints = [ln for ln in lines if ln.startswith("limapy: hint: ")]
    errors = [ln for ln in lines if ln not in hints]
    assert len(errors) == 1 and len(hints) <= 1, cp.stderr
    return errors[0]


def final_error(cp: subprocess.CompletedProcess[str]) -> str:
    """As one_error, after progress lines (a download's) that precede it on stderr."""
    assert cp.returncode != 0, cp.stdout + cp.stderr
    assert "Traceback" not in cp.stderr, cp.stderr
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
    tail = lines[next(i for i, ln in enumerate(lines) if ln.startswith("limapy: ")):]
    return one_error(subprocess.CompletedProcess(cp.args, cp.returncode, cp.stdout, "\n".join(tail)))


def instances(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir() if not p.name.startswith("_")) if home.exists() else []


def qcow2(path: Path, size: str = "64M", fill: int = 0) -> Path:
    """A small real qcow2 image; `fill` writes its first 64 KiB with that byte, so versions differ."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    if fill:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {fill} 0 64k", str(path)], check=True,
                       capture_output=True)
    return path


def template(tmp_path: Path, image: str, extra: str = "") -> Path:
    t = tmp_path / "t.yaml"
    t.write_text(f"images:\n- location: {image!r}\n  arch: x86_64\narch: x86_64\n{extra}")
    return t
