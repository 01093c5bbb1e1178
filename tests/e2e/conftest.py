"""The real-guest e2e rig: every test here is marked `e2e` and gets a timeout; the test image is built (or
reused) once per session; each test gets its own short LIMAPY_HOME, and anything QEMU left behind is
killed afterwards; a failing test shows the guest's serial console and host-agent log tails.

Environment:
    LIMAPY_TEST_IMAGE_TEMPLATE  a template from hack/build-test-image.sh to use instead of building
    LIMAPY_TEST_IMAGE_TEMPLATE_UEFI, _BIOS, _AARCH64  the same for --boot uefi, --boot bios, --arch aarch64
    LIMAPY_E2E_TIMEOUT          default per-test timeout in seconds (900)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parents[1]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-test-image.sh"
DEFAULT_TIMEOUT = int(os.environ.get("LIMAPY_E2E_TIMEOUT", "900"))
BUILD_TIMEOUT = 3600  # an aarch64 root runs its package scripts through qemu-user
TAIL_LINES = 60

# Directories whose serial.log / ha.*.log / qemu.log are shown when the test fails.
LOG_DIRS = pytest.StashKey[list[Path]]()

RunLimapy = Callable[..., "subprocess.CompletedProcess[str]"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR not in item.path.parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


# --- the test image --------------------------------------------------------------------------------------


def _missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def build_test_image(*options: str, needs: tuple[str, ...] = ("qemu-system-x86_64",), env: str = "") -> Path:
    """The template hack/build-test-image.sh OPTIONS builds (or finds cached); skips when it cannot build.
    `env` names a variable that may give the template instead."""
    given = os.environ.get(env) if env else None
    if given:
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            pytest.fail(f"{env}={given}: no such file")
        return path
    missing = _missing(*needs, "qemu-img", "ssh", "ssh-keygen")
    if missing:
        pytest.skip(f"e2e needs {', '.join(missing)} (hack/setup.sh installs them)")
    # A cached image needs neither root nor mmdebstrap, so try the script first and only then explain why
    # it could not build.
    cp = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *options], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if cp.returncode != 0:
        tail = "\n".join(cp.stderr.strip().splitlines()[-20:])
        cannot_build = []
        if os.geteuid() != 0:
            cannot_build.append("not root")
        cannot_build += [f"{t} missing" for t in _missing("mmdebstrap", "mkfs.ext4")]
        if cannot_build:
            pytest.skip(
                f"no cached test image and cannot build one ({', '.join(cannot_build)}): run "
                f"`sudo {BUILD_SCRIPT.relative_to(REPO_ROOT)} {' '.join(options)}` or set LIMAPY_TEST_IMAGE_TEMPLATE"
            )
        pytest.fail(f"{BUILD_SCRIPT.name} {' '.join(options)} failed (exit {cp.returncode}):\n{tail}")
    lines = cp.stdout.strip().splitlines()
    if not lines or not Path(lines[-1]).is_file():
        pytest.fail(f"{BUILD_SCRIPT.name} printed no template path: {cp.stdout!r}")
    return Path(lines[-1])


@pytest.fixture(scope="session")
def test_image_template() -> Path:
    """Absolute path of the limapy template that boots the offline test image."""
    given = os.environ.get("LIMAPY_TEST_IMAGE_TEMPLATE")
    if given:
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            pytest.fail(f"LIMAPY_TEST_IMAGE_TEMPLATE={given}: no such file")
        return path
    return build_test_image()


STANDIN_BUILDER = REPO_ROOT / "hack" / "build-windows-standin.sh"
LIBVIRT_SYSTEM = "qemu:///system"


@pytest.fixture(scope="session")
def standin_disk() -> Path:
    """The Windows stand-in guest's disk (hack/build-windows-standin.sh, cached), or
    $LIMAPY_WINDOWS_STANDIN_DISK."""
    for tool in ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    given = os.environ.get("LIMAPY_WINDOWS_STANDIN_DISK")
    if given:
        return Path(given)
    cp = subprocess.run(["bash", str(STANDIN_BUILDER)], capture_output=True, text=True, timeout=1800, check=False)
    if cp.returncode != 0:
        if os.geteuid() != 0 or shutil.which("mmdebstrap") is None:
            pytest.skip(
                f"no cached stand-in disk and cannot build one (root + mmdebstrap): run `sudo {STANDIN_BUILDER}`"
            )
        pytest.fail(f"{STANDIN_BUILDER.name} failed:\n" + "\n".join(cp.stderr.splitlines()[-20:]))
    return Path(cp.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def libvirtd() -> None:
    """A libvirtd answering on qemu:///system and the binding, or a skip saying what is missing."""
    try:
        import libvirt  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        pytest.skip("the libvirt Python binding is not installed (hack/setup.sh installs it)")
    if shutil.which("virsh") is None:
        pytest.skip("virsh is not installed (libvirt-clients)")
    cp = subprocess.run(
        ["virsh", "-c", LIBVIRT_SYSTEM, "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if cp.returncode != 0:
        msg = cp.stderr.strip()
        pytest.skip(f"libvirtd does not answer on {LIBVIRT_SYSTEM} (hack/libvirtd.sh starts it): {msg}")


# --- per-test homes and cleanup --------------------------------------------------------------------------


def _register_log_dir(request: pytest.FixtureRequest, path: Path) -> None:
    request.node.stash.setdefault(LOG_DIRS, []).append(path)


def pids_belonging_to(home: Path) -> list[int]:
    """Processes whose command line names `home` or whose environment has LIMAPY_HOME=home."""
    named = re.compile(re.escape(str(home).encode()) + rb"(?![\w.-])")
    env_needle = b"LIMAPY_HOME=" + str(home).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if named.search(cmdline) or env_needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_leftovers(home: Path) -> list[int]:
    """SIGKILL every process tied to `home` (QEMU, host agents); returns their pids."""
    pids = pids_belonging_to(home)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


@pytest.fixture
def short_tmp(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh 0700 directory /tmp/lp-XXXX (unix socket paths must stay under 108 bytes); processes
    left running from it are killed and it is removed afterwards. Its files are shown on failure."""
    path = Path(tempfile.mkdtemp(prefix="lp-", dir="/tmp"))
    path.chmod(0o700)
    _register_log_dir(request, path)
    yield path
    kill_leftovers(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def limapy_home(short_tmp: Path) -> Path:
    """A fresh LIMAPY_HOME for this test (cleanup by short_tmp)."""
    return short_tmp


@pytest.fixture(scope="module")
def module_tmp() -> Iterator[Path]:
    """Like short_tmp, shared by the tests of one module (one guest booted once, checked by many tests).
    Tests should request `module_home` so their failures show its logs."""
    path = Path(tempfile.mkdtemp(prefix="lpm-", dir="/tmp"))
    path.chmod(0o700)
    yield path
    kill_leftovers(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def module_home(module_tmp: Path, request: pytest.FixtureRequest) -> Path:
    """The module's shared LIMAPY_HOME; its logs are shown when this test fails."""
    _register_log_dir(request, module_tmp)
    return module_tmp


@pytest.fixture(scope="module")
def module_run(module_tmp: Path) -> RunLimapy:
    """run_limapy for the module's shared LIMAPY_HOME."""
    return make_runner(module_tmp)


@pytest.fixture
def run_limapy(limapy_home: Path) -> RunLimapy:
    """run_limapy(*args, timeout=600, input=None) -> CompletedProcess[str] of `python -m limapy ARGS`."""
    return make_runner(limapy_home)


def limapy_env(home: Path) -> dict[str, str]:
    """The environment `python -m limapy` runs in for LIMAPY_HOME=home."""
    env = dict(os.environ)
    env["LIMAPY_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def make_runner(home: Path) -> RunLimapy:
    env = limapy_env(home)

    def run(*args: str | Path, timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "limapy", *(str(a) for a in args)],
            env=env, input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    return run


# --- logs on failure -------------------------------------------------------------------------------------


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        data = path.read_bytes()[-64 * 1024 :]
    except OSError as e:
        return f"<{e}>"
    text = data.decode(errors="replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])


def guest_logs(dirs: list[Path]) -> list[tuple[str, str]]:
    """(title, tail) for serial*.log, ha.*.log and qemu.log in each dir and its instance subdirs."""
    found: list[tuple[str, str]] = []
    for base in dirs:
        candidates = [base, *sorted(p for p in base.glob("*/") if p.is_dir())]
        for d in candidates:
            for pattern in ("serial*.log", "ha.*.log", "qemu.log"):
                for log in sorted(d.glob(pattern)):
                    if log.is_file():
                        found.append((f"{log} (last {TAIL_LINES} lines)", _tail(log)))
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for title, text in guest_logs(item.stash.get(LOG_DIRS, [])):
            report.sections.append((title, text))
    return report
