"""Hardening, second round, item 16 and the download half of item 17: every network wait has a deadline from
connect to last byte, `base:` chains a depth limit with its own message, and a download that does not fit on
the cache's file system is one line naming it, leaving nothing behind that keeps the disk full. A real HTTP
server on 127.0.0.1; a real full file system (a small tmpfs in a private mount namespace)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from limapy import download
from limapy.base.errors import LimapyError
from tests.security.conftest import REPO, Server, final_error, instances, limapy, one_error, qcow2, template


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.download import transfer

    monkeypatch.setattr(transfer, "BACKOFF", (0.0,))


# --- 16. deadlines ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_template_server_trickling_its_headers_is_given_up_at_the_deadline(
    home: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from limapy.ops import fetch

    monkeypatch.setattr(fetch, "TEMPLATE_DEADLINE", 2.0)
    url = server.add("/t.yaml", b"images: [{location: /x.img}]\n", trickle_head=0.2, content_type="text/plain")
    t0 = time.monotonic()
    with pytest.raises(LimapyError, match="not done after 2 s"):
        fetch.template_fetcher(url)
    assert time.monotonic() - t0 < 6  # the headers alone would take about 60 s


@pytest.mark.timeout(60)
def test_an_image_download_has_a_total_deadline(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Faster than the low-speed limit, but never done: the total deadline ends it, and the partial stays."""
    monkeypatch.setenv("LIMAPY_DOWNLOAD_TIMEOUT", "2s")
    url = server.add("/img", b"x" * 4000, trickle=0.005)  # 200 bytes/s: 20 s in all
    t0 = time.monotonic()
    with pytest.raises(LimapyError, match=r"not done after 2 s \(the time allowed; LIMAPY_DOWNLOAD_TIMEOUT sets it\)"):
        download.fetch(url)
    assert time.monotonic() - t0 < 8
    assert (download.url_entry(url) / "partial").exists()  # resumable
    monkeypatch.setenv("LIMAPY_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(LimapyError, match="LIMAPY_DOWNLOAD_TIMEOUT='soon': not a duration"):
        download.fetch(url)


def _self_signed(d: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (cryptography comes with paramiko, which fabric needs)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    (d / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))  # fmt: skip
    return d / "c.pem", d / "k.pem"


@pytest.mark.timeout(60)
def test_the_deadline_holds_after_a_tls_handshake(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS takes the socket over: the watchdog still reaches the connection (headers trickled after the
    handshake)."""
    import socket
    import ssl
    import threading

    from limapy.download import transfer

    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError), ctx.wrap_socket(listener.accept()[0], server_side=True) as tls:
            tls.recv(4096)
            for b in b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nX-Padding: " + b"x" * 300 + b"\r\n\r\nhello":
                if stop.is_set():
                    return
                tls.send(bytes([b]))
                time.sleep(0.1)

    threading.Thread(target=serve, daemon=True).start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/t.yaml"
    t0 = time.monotonic()
    try:
        with pytest.raises(LimapyError, match="not done after 2 s"):
            transfer.download(url, tmp_path / "partial", tmp_path / "state", deadline=2.0)
        assert time.monotonic() - t0 < 6  # the headers alone take about 33 s
    finally:
        stop.set()
        listener.close()


def test_a_head_check_is_bounded(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.download import connect

    url = server.add("/img", b"abc", trickle_head=0.3)
    t0 = time.monotonic()
    assert connect.head(url, timeout=1.0) is None
    assert time.monotonic() - t0 < 4


def test_base_chains_have_a_depth_limit(home: Path, server: Server) -> None:
    for i in range(60):
        server.add(f"/t{i}.yaml", f"base: t{i + 1}.yaml\n".encode(), content_type="text/plain")
    server.add("/t60.yaml", b"images: [{location: /x.img, arch: x86_64}]\n", content_type="text/plain")
    err = one_error(limapy("validate", f"{server.base}/t0.yaml"))
    assert "base templates nested more than 32 deep" in err and "t0.yaml -> ... -> " in err, err
    assert server.gets("/t40.yaml") == 0


def test_bases_in_all_are_limited(home: Path, tmp_path: Path) -> None:
    """Wide instead of deep: each of 20 templates names 20 bases."""
    for i in range(20):
        bases = ", ".join(f"l{i}-{j}.yaml" for j in range(20))
        (tmp_path / f"w{i}.yaml").write_text(f"base: [{bases}]\n")
        for j in range(20):
            (tmp_path / f"l{i}-{j}.yaml").write_text("cpus: 1\n")
    top = tmp_path / "top.yaml"
    top.write_text("base: [" + ", ".join(f"w{i}.yaml" for i in range(20)) + "]\nimages: [{location: /x.img}]\n")
    err = one_error(limapy("validate", str(top)))
    assert "more than 256 base templates in all" in err, err


# --- 17. a download that does not fit ------------------------------------------------------------------------


def test_a_download_larger_than_the_free_space_is_refused_up_front(
    home: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from limapy.download import space

    url = server.add("/big.img", b"z" * (4 << 20))
    monkeypatch.setattr(space, "free", lambda _path: 1 << 20)
    with pytest.raises(LimapyError, match=r"cannot download .*big\.img: the file system at .* has 1MiB free, and it "
                                          r"needs 4MiB"):  # fmt: skip
        download.fetch(url)
    assert server.bytes_sent < 1 << 20
    assert not (download.url_entry(url) / "partial").exists()


def test_enospc_mid_download_removes_the_partial(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.download import transfer

    url = server.add("/img", b"z" * (3 << 20), no_length=True)  # no size known up front
    real_open = transfer._open_partial

    class Full:
        def __init__(self, f: object) -> None:
            self.f, self.n = f, 0

        def __getattr__(self, name: str) -> object:
            return getattr(self.f, name)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()  # type: ignore[attr-defined]

        def write(self, b: bytes) -> int:
            self.n += len(b)
            if self.n > 1 << 20:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(transfer, "_open_partial", lambda p: Full(real_open(p)))
    with pytest.raises(LimapyError, match=r"the file system at .* is full \(no space left on device\); what was "
                                          r"downloaded of it is removed"):  # fmt: skip
        download.fetch(url)
    assert not (download.url_entry(url) / "partial").exists()


def _unshare() -> list[str] | None:
    """A private mount namespace to mount a small tmpfs in (as root; else in a user namespace)."""
    if not shutil.which("unshare"):
        return None
    cmd = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        cmd = ["unshare", "--user", "--map-root-user", "--mount"]
    ok = subprocess.run([*cmd, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True, check=False)
    return cmd if ok.returncode == 0 else None


@pytest.mark.parametrize("length", ["known", "unknown"])
def test_create_on_a_full_file_system_is_one_line_and_leaves_no_partial(home: Path, tmp_path: Path, server: Server,
                                                                        length: str) -> None:  # fmt: skip
    cmd = _unshare()
    assert cmd is not None, "a private mount namespace with a tmpfs is needed (unshare --mount)"
    img = qcow2(tmp_path / "img.qcow2", size="64M", fill=0x41)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 1M 6M", str(img)], check=True, capture_output=True)
    url = server.add("/img.qcow2", img.read_bytes(), no_length=length == "unknown")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    script = (f"mount -t tmpfs -o size=4m,mode=0700 tmpfs {cache} && {sys.executable} -m limapy create --name a "
              f"{template(tmp_path, url)}; rc=$?; echo left: $(find {cache} -name partial -size +0 | wc -l) >&2; "
              f"echo used: $(du -sk {cache} | cut -f1) >&2; exit $rc")  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO), LIMAPY_CACHE_DIR=str(cache))
    cp = subprocess.run([*cmd, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    lines = cp.stderr.splitlines()
    used = int(next(ln for ln in lines if ln.startswith("used:")).split()[1])
    assert "left: 0" in lines, cp.stderr
    assert used < 1024, cp.stderr  # nothing of the image is left filling the 4 MiB
    cp.stderr = "\n".join(ln for ln in lines if not ln.startswith(("left:", "used:")))
    err = final_error(cp)
    assert f"the file system at {cache}" in err, err
    assert ("has" in err and "free, and it needs" in err) if length == "known" else "is full" in err, err
    assert instances(home) == []
