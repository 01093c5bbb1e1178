"""Bad input to the lifecycle verbs, as a user meets it (`python -m limapy` as a process, no guest boots):
one clear line (plus an optional hint), a non-zero exit, no traceback, and no half-created instance left
in LIMAPY_HOME (hidden `.NAME.tmp-*` dirs included)."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine(), "")
WRONG = "sha256:" + "0" * 64

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home() -> Iterator[Path]:
    # Short and under /tmp: the instance dir must leave room for unix sockets (108 bytes).
    d = Path(tempfile.mkdtemp(prefix="lpi-", dir="/tmp")) / "h"
    yield d
    shutil.rmtree(d.parent, ignore_errors=True)


def limapy(home: Path, tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIMAPY_HOME=str(home), LIMAPY_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for var in ("LIMAPY_DEBUG", "LIMAPY_TEMPLATES_PATH"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "limapy", *(str(a) for a in args)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def leftovers(home: Path) -> list[str]:
    if not home.exists():
        return []
    return sorted(p.name for p in home.iterdir() if p.name not in ("_config", "_disks"))


def assert_one_clear_error(cp: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Non-zero exit, no traceback, one error line (a `limapy: hint:` line may follow); returns that line."""
    out = cp.stdout + cp.stderr
    assert cp.returncode != 0, out
    assert "Traceback" not in out and "internal error" not in out, out
    errors = [ln for ln in cp.stderr.splitlines() if ln.strip() and not ln.startswith(("limapy: hint: ", "warning: "))]
    # Progress lines ("downloading ...", "[phase] ...") may precede the error; the error is the last line.
    err = errors[-1] if errors else ""
    assert err, out
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def template(tmp_path: Path, location: str | Path, digest: str | None = None, extra: str = "") -> Path:
    lines = ["images:", f"- location: {str(location)!r}", f"  arch: {ARCH}"]
    if digest:
        lines.append(f"  digest: {digest!r}")
    path = tmp_path / "t.yaml"
    path.write_text("\n".join(lines) + "\nmounts: []\n" + extra)
    return path


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    if ARCH == "":
        pytest.skip(f"no limapy arch for host {platform.machine()}")
    if shutil.which("qemu-img") is None:
        pytest.skip("needs qemu-img (apt-get install qemu-utils)")
    img = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    return img


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


# --- create / start from a template ------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["create", "start"])
def test_missing_image(verb: str, home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, tmp_path / "no-such-image.qcow2")
    cp = limapy(home, tmp_path, verb, "--name", "a", t)
    assert_one_clear_error(cp, "no-such-image.qcow2")
    assert leftovers(home) == []


def test_missing_template(home: Path, tmp_path: Path) -> None:
    cp = limapy(home, tmp_path, "start", "--name", "a", tmp_path / "nope.yaml")
    assert_one_clear_error(cp, "nope.yaml")
    assert leftovers(home) == []


@pytest.mark.parametrize("verb", ["create", "start"])
def test_wrong_digest(verb: str, small_image: Path, home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, small_image, digest=WRONG)
    cp = limapy(home, tmp_path, verb, "--name", "a", t)
    assert_one_clear_error(cp, "digest")
    assert leftovers(home) == []


def test_wrong_kernel_digest(small_image: Path, home: Path, tmp_path: Path) -> None:
    """A later file failing (the kernel, after the disk was made) still leaves nothing behind."""
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"not a kernel")
    t = template(tmp_path, small_image)
    t.write_text(t.read_text().replace("mounts:", f"  kernel:\n    location: {str(kernel)!r}\n"
                                       f"    digest: {WRONG!r}\nmounts:"))  # fmt: skip
    cp = limapy(home, tmp_path, "create", "--name", "a", t)
    assert_one_clear_error(cp, "digest")
    assert leftovers(home) == []


@pytest.mark.parametrize("verb", ["create", "start"])
def test_unreachable_url(verb: str, home: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/x.img"
    cp = limapy(home, tmp_path, verb, "--name", "a", template(tmp_path, url))
    assert_one_clear_error(cp, url)
    assert leftovers(home) == []
    cache = tmp_path / "cache" / "download"
    partial = [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"] if cache.exists() else []
    assert partial == [], "a failed download left files in the download cache"


# --- names ---------------------------------------------------------------------------------------------------


@pytest.fixture
def two_instances(small_image: Path, home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, small_image)
    for name in ("tea", "tee"):
        cp = limapy(home, tmp_path, "create", "--name", name, t)
        assert cp.returncode == 0, cp.stderr
    assert leftovers(home) == ["tea", "tee"]


VERBS_BY_NAME = [
    ("shell", "{}", "uname"),
    ("start", "{}"),
    ("stop", "{}"),
    ("copy", "{}:/etc/hostname", "."),
]


@pytest.mark.parametrize("argv", VERBS_BY_NAME, ids=[a[0] for a in VERBS_BY_NAME])
@pytest.mark.usefixtures("two_instances")
def test_unknown_name(argv: tuple[str, ...], home: Path, tmp_path: Path) -> None:
    cp = limapy(home, tmp_path, *(a.format("zz") for a in argv))
    assert_one_clear_error(cp, "`zz`", "does not exist")
    assert leftovers(home) == ["tea", "tee"]


@pytest.mark.parametrize("argv", VERBS_BY_NAME, ids=[a[0] for a in VERBS_BY_NAME])
@pytest.mark.usefixtures("two_instances")
def test_ambiguous_prefix(argv: tuple[str, ...], home: Path, tmp_path: Path) -> None:
    cp = limapy(home, tmp_path, *(a.format("te") for a in argv))
    err = assert_one_clear_error(cp, "ambiguous")
    assert "tea" in err and "tee" in err, err
    assert leftovers(home) == ["tea", "tee"]


@pytest.mark.usefixtures("two_instances")
def test_unique_prefix_reaches_the_instance(home: Path, tmp_path: Path) -> None:
    cp = limapy(home, tmp_path, "shell", "tea", "true")  # exact name, stopped
    assert_one_clear_error(cp, "`tea`", "stopped")
    cp = limapy(home, tmp_path, "list", "--json", "tea")
    assert cp.returncode == 0 and '"status":"Stopped"' in cp.stdout, cp.stdout + cp.stderr


@pytest.mark.usefixtures("two_instances")
def test_delete_wants_the_full_name(home: Path, tmp_path: Path) -> None:
    cp = limapy(home, tmp_path, "delete", "te")
    assert "Traceback" not in cp.stderr
    assert leftovers(home) == ["tea", "tee"]  # Lima: a prefix never deletes (it warns: no such instance)


# --- a taken SSH port: refused before QEMU runs ---------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port: int = s.getsockname()[1]
        yield port


def _no_qemu_ran(inst_dir: Path) -> None:
    for name in ("qemu.pid", "serial.log", "qmp.sock", "qemu.stderr.log"):
        assert not (inst_dir / name).exists(), f"{name} exists: QEMU was started"


@pytest.fixture
def qemu_present() -> None:
    binary = {"x86_64": "qemu-system-x86_64", "aarch64": "qemu-system-aarch64"}.get(ARCH, "")
    if not binary or shutil.which(binary) is None:
        pytest.skip(f"needs {binary or 'qemu-system-*'} (start detects the host before choosing a port)")


@pytest.mark.usefixtures("qemu_present")
def test_taken_ssh_port_from_template(taken_port: int, small_image: Path, home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, small_image, extra=f"ssh:\n  localPort: {taken_port}\n")
    cp = limapy(home, tmp_path, "start", "--name", "a", t)
    assert_one_clear_error(cp, str(taken_port), "in use")
    assert leftovers(home) == []  # refused before the instance was created


@pytest.mark.usefixtures("qemu_present")
def test_taken_ssh_port_existing_instance(taken_port: int, small_image: Path, home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, small_image, extra=f"ssh:\n  localPort: {taken_port}\n")
    cp = limapy(home, tmp_path, "create", "--name", "a", t)
    assert cp.returncode == 0, cp.stderr  # create does not reserve ports (as in Lima)
    cp = limapy(home, tmp_path, "start", "a")
    assert_one_clear_error(cp, str(taken_port), "in use")
    _no_qemu_ran(home / "a")
    cp = limapy(home, tmp_path, "list", "--json", "a")
    assert '"status":"Stopped"' in cp.stdout, cp.stdout + cp.stderr
    assert leftovers(home) == ["a"]
