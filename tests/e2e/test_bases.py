"""A digest-less image URL whose content changes between two creates: both instances boot, each on its own
base (hardening, data loss). Also copyToHost: a guest file copied to the host once ready, gone after stop.

The two versions of the image are the test image with a marker file (/etc/limapy-base: A or B) written into
its ext4 root with debugfs, served by an HTTP server on 127.0.0.1 that changes Last-Modified with the file.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.e2e.conftest import RunLimapy


def variant(src: Path, out: Path, marker: str) -> Path:
    raw = out.with_suffix(".raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(src), str(raw)], check=True)
    m = out.with_suffix(".marker")
    m.write_text(marker + "\n")
    subprocess.run(["debugfs", "-w", "-R", f"write {m} /etc/limapy-base", str(raw)], check=True, capture_output=True)
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(out)], check=True)
    raw.unlink()
    return out


class ImageServer:
    def __init__(self) -> None:
        self.path: Path | None = None
        self.mtime = time.time()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _head(self) -> int:
                assert outer.path is not None
                size = outer.path.stat().st_size
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("Last-Modified", formatdate(outer.mtime, usegmt=True))
                self.end_headers()
                return size

            def do_HEAD(self) -> None:
                self._head()

            def do_GET(self) -> None:
                self._head()
                assert outer.path is not None
                with open(outer.path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/latest.qcow2"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def publish(self, path: Path) -> None:
        self.path, self.mtime = path, self.mtime + 86400


@pytest.mark.timeout(1500)
def test_a_changed_latest_url_leaves_each_instance_its_base(
    test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    yaml = YAML(typ="safe", pure=True)
    spec = yaml.load(test_image_template.read_text())
    disk = Path(spec["images"][0]["location"])
    a, b = variant(disk, tmp_path / "a.qcow2", "A"), variant(disk, tmp_path / "b.qcow2", "B")
    server = ImageServer()
    try:
        image = spec["images"][0]
        image["location"] = server.url
        del image["digest"]  # a moving "latest" URL: nothing pins it
        spec["copyToHost"] = [{"guest": "/etc/limapy-base", "host": "{{.Dir}}/base.txt", "deleteOnStop": True}]
        t = tmp_path / "latest.yaml"
        with t.open("w") as f:
            yaml.dump(spec, f)
        server.publish(a)
        cp = run_limapy("create", "--name", "a", t)
        assert cp.returncode == 0, cp.stderr
        server.publish(b)  # upstream's "latest" moves on
        cp = run_limapy("create", "--name", "b", t)
        assert cp.returncode == 0, cp.stderr
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    for name, marker, img in (("a", "A", a), ("b", "B", b)):
        inst = limapy_home / name
        base = subprocess.run(["qemu-img", "info", "--output=json", str(inst / "disk")], capture_output=True,
                              text=True, check=True).stdout
        import json

        backing = Path(json.loads(base)["backing-filename"])
        assert hashlib.sha256(backing.read_bytes()).hexdigest() == hashlib.sha256(img.read_bytes()).hexdigest()
        cp = run_limapy("start", name, timeout=900)
        assert cp.returncode == 0, cp.stderr
        cp = run_limapy("shell", name, "cat", "/etc/limapy-base")
        assert cp.returncode == 0 and cp.stdout.strip() == marker, cp.stderr
        copied = inst / "base.txt"
        assert copied.read_text().strip() == marker  # copyToHost, once ready
        assert copied.stat().st_mode & 0o777 == 0o600
        cp = run_limapy("stop", name, timeout=300)
        assert cp.returncode == 0, cp.stderr
        assert not copied.exists()  # deleteOnStop
