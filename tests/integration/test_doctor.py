"""`limapy doctor` and the same checks in `create`/`start`, on this host with a PATH that hides QEMU (a directory of
links to the tools kept): what is missing is listed with the install line for each system, the exit code is 1;
with every tool there it is 0; `start` of a template whose image is on a web server fails before one byte of it
is asked for."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from limapy.driver import hosttools

REPO = Path(__file__).resolve().parents[2]
ARCH = hosttools.host_arch()


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lpdoc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def without_qemu(d: Path, *keep: str) -> str:
    """A PATH holding only links to `keep` (the tools a host without QEMU still has)."""
    bin_dir = d / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in keep:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def limapy(home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QEMU_SYSTEM_")}
    env.update(LIMAPY_HOME=str(home / "home"), LIMAPY_CACHE_DIR=str(home / "cache"), PYTHONPATH=str(REPO))
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "limapy", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)  # fmt: skip


def test_doctor_lists_what_is_missing_and_fails(home: Path) -> None:
    cp = limapy(home, "doctor", "--windows", path=without_qemu(home, "ssh"))
    assert cp.returncode == 1, cp.stdout + cp.stderr
    rows = {line.split("  ")[0]: line for line in cp.stdout.splitlines()}
    assert "MISSING" in rows[f"qemu-system-{ARCH}"] and "MISSING" in rows["qemu-img"]
    assert "MISSING" in rows["swtpm"] and "/ssh" in rows["ssh (OpenSSH client)"]
    assert "missing (optional)" in rows["xfreerdp (FreeRDP)"]
    qemu_pkg = {"x86_64": "qemu-system-x86", "aarch64": "qemu-system-arm"}[ARCH]
    lines = [ln.strip() for ln in cp.stdout.splitlines()]
    assert any(ln.startswith("Debian/Ubuntu:") and f"sudo apt install qemu-utils {qemu_pkg} swtpm swtpm-tools" in ln
               for ln in lines), cp.stdout  # fmt: skip
    for system in ("Fedora:", "Arch Linux:", "macOS (Homebrew):"):
        assert any(ln.startswith(system) for ln in lines), (system, cp.stdout)
    assert any(ln.startswith("macOS (Homebrew):") and "brew install qemu swtpm" in ln for ln in lines)


@pytest.mark.skipif(shutil.which(f"qemu-system-{ARCH}") is None or shutil.which("qemu-img") is None,
                    reason="QEMU not installed")  # fmt: skip
def test_doctor_with_the_tools_installed_passes(home: Path) -> None:
    cp = limapy(home, "doctor")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stdout.splitlines()[-1] == "limapy has what it needs for this."


def test_start_without_qemu_fails_before_any_download(home: Path) -> None:
    requests: list[str] = []

    class Counting(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    (home / "www").mkdir()
    (home / "www" / "img.qcow2").write_bytes(b"\0" * 4096)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Counting, directory=str(home / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/img.qcow2"
        t = home / "t.yaml"
        t.write_text(f"images:\n- location: {json.dumps(url)}\n  arch: {ARCH}\narch: {ARCH}\nmounts: []\ncpus: 1\n")
        cp = limapy(home, "start", "--name", "vm", str(t), path=without_qemu(home, "ssh"))
    finally:
        server.shutdown()
    assert cp.returncode == 1, cp.stderr
    err = cp.stderr.splitlines()
    assert err[0].startswith("limapy: missing on this host: qemu-img (every instance"), cp.stderr
    assert f"qemu-system-{ARCH} ({ARCH} guests)" in err[0]
    assert err[1].startswith("limapy: hint: install: ") and "`limapy doctor`" in err[1]
    assert requests == [] and "download" not in cp.stderr
    assert not (home / "home" / "vm").exists()


def test_what_a_request_needs() -> None:
    def tools(req: hosttools.Request) -> list[str]:
        return [n.tool.name for n in hosttools.needs(req)]

    linux = tools(hosttools.Request(["x86_64"]))
    assert linux == ["qemu-img", "ssh (OpenSSH client)", "qemu-system-x86_64", "UEFI firmware (OVMF) for x86_64"]
    assert tools(hosttools.Request(["aarch64"], uefi=[])) == ["qemu-img", "ssh (OpenSSH client)", "qemu-system-aarch64"]
    win = tools(hosttools.Request(["x86_64"], tpm=True, windows=True))
    assert "swtpm" in win and "xfreerdp (FreeRDP)" in win and "smbd (samba)" in win
    # samba: optional for a Windows guest (its folders), required once a boot has `mountType: smb` mounts
    optional = {n.tool.name: n.required for n in hosttools.needs(hosttools.Request(["x86_64"], windows=True))}
    assert optional["smbd (samba)"] is False
    required = {n.tool.name: n.required for n in hosttools.needs(hosttools.Request(["x86_64"], smb=True))}
    assert required["smbd (samba)"] is True
    remote = tools(hosttools.Request(["x86_64"], driver="libvirt", connect="qemu+ssh://root@kvm1/system"))
    assert remote == ["qemu-img", "ssh (OpenSSH client)", "libvirt-python (the libvirt binding)"]  # QEMU is there
    local = tools(hosttools.Request(["x86_64"], driver="libvirt", connect="qemu:///system"))
    assert "qemu-system-x86_64" in local and "libvirtd" in local
    assert "virtiofsd" in tools(hosttools.Request(["x86_64"], virtiofs=True))
    assert tools(hosttools.Request(["x86_64"], driver="toy")) == ["qemu-img", "ssh (OpenSSH client)"]


def test_install_lines_name_each_systems_packages() -> None:
    lines = dict(hosttools.install_lines([hosttools.qemu_tool("aarch64"), hosttools.firmware_tool("aarch64")]))
    assert lines == {
        "Debian/Ubuntu": "sudo apt install qemu-system-arm qemu-efi-aarch64",
        "Fedora": "sudo dnf install qemu-system-aarch64-core edk2-aarch64",
        "Arch Linux": "sudo pacman -S qemu-system-aarch64 edk2-aarch64",
        "macOS (Homebrew)": "brew install qemu",
    }
    assert dict(hosttools.install_lines([hosttools.VIRTIOFSD])).get("macOS (Homebrew)") is None  # none there
