"""A user's install, end to end: build the sdist and the wheel, `pipx install` the wheel in a clean directory (no
checkout on the path, a fresh HOME), and run what a new user runs first.

- the wheel carries the templates, the schema, the first-boot file templates, LICENSE and the man pages (pipx
  puts them on its MANPATH); the sdist carries LICENSE; the PyPI description is README's user part;
- `limapy doctor` on a host without QEMU (a PATH that hides it) lists what is missing with the install line and
  exits 1; with the tools installed it exits 0;
- `limapy start template:default` without QEMU fails before any download, naming what to install.
Installing the dependencies needs the package index (as any pipx install does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCH = {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """(the directory, the environment) of a pipx install of the wheel built from this checkout."""
    root = tmp_path_factory.mktemp("user")
    dist = root / "dist"
    cp = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(REPO)],
                        capture_output=True, text=True, timeout=600)  # fmt: skip
    if cp.returncode != 0 and "No module named build" in cp.stderr:
        pytest.skip("the `build` package is not installed (pip install -e '.[test]')")
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    clean = root / "clean"  # where the user runs things: no checkout, nothing of the repo on any path
    (clean / "home").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMAPY_", "PYTHON", "PIPX_", "VIRTUAL_ENV"))}
    env.update(HOME=str(clean / "home"), PIPX_HOME=str(clean / "pipx"), PIPX_BIN_DIR=str(clean / "bin"),
               PIPX_MAN_DIR=str(clean / "man"), LIMAPY_CACHE_DIR=str(clean / "cache"),
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")))  # fmt: skip
    wheel = next(dist.glob("limapy-*.whl"))
    if subprocess.run([sys.executable, "-m", "pipx", "--version"], capture_output=True).returncode == 0:
        cp = subprocess.run([sys.executable, "-m", "pipx", "install", str(wheel)], cwd=clean, env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    else:  # no pipx: a venv and pip, as pipx would make
        venv = clean / "pipx" / "venvs" / "limapy"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        cp = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], cwd=clean, env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
        (clean / "bin").mkdir()
        (clean / "bin" / "limapy").symlink_to(venv / "bin" / "limapy")
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    yield clean, env


def run(clean: Path, env: dict[str, str], *args: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(clean / "bin" / "limapy"), *args], cwd=clean, env={**env, "PATH": path},
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def no_qemu(clean: Path) -> str:
    """A PATH of links to what a host without QEMU still has (ssh)."""
    d = clean / "no-qemu"
    if not d.exists():
        d.mkdir()
        for tool in ("ssh",):
            if shutil.which(tool):
                (d / tool).symlink_to(str(shutil.which(tool)))
    return str(d)


def test_the_packages_carry_what_users_need(installed: tuple[Path, dict[str, str]]) -> None:
    clean, _ = installed
    dist = clean.parent / "dist"
    names = zipfile.ZipFile(next(dist.glob("limapy-*.whl"))).namelist()
    assert "limapy/_data/templates/default.yaml" in names and "limapy/_data/templates/_images/debian-12.yaml" in names
    assert "limapy/_data/schemas/lima.schema.json" in names
    assert "limapy/guest/linux/templates/user-data" in names
    assert "limapy/guest/windows/templates/autounattend.xml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    man = {n.rsplit("/", 1)[-1] for n in names if "/share/man/man1/" in n}
    assert {"limapy.1", "limapy-start.1", "limapy-doctor.1", "limapy-snapshot-create.1"} <= man
    with tarfile.open(next(dist.glob("limapy-*.tar.gz"))) as sdist:
        assert any(m.name.endswith("/LICENSE") for m in sdist.getmembers())
    with zipfile.ZipFile(next(dist.glob("limapy-*.whl"))) as whl:
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta and "Project-URL: Source," in meta and "Classifier: " in meta
    description = meta.split("\n\n", 1)[1]
    assert "pipx install" in description and "## Developing" not in description and "hack/test.sh" not in description
    if (clean / "pipx" / "shared").exists():  # installed by pipx, which links the man pages to PIPX_MAN_DIR
        assert (clean / "man" / "man1" / "limapy-start.1").exists()


def test_doctor_without_and_with_qemu(installed: tuple[Path, dict[str, str]]) -> None:
    clean, env = installed
    cp = run(clean, env, "doctor", path=no_qemu(clean))
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert f"qemu-system-{ARCH}" in cp.stdout and "MISSING" in cp.stdout
    assert "Debian/Ubuntu:" in cp.stdout and "sudo apt install qemu-utils" in cp.stdout
    assert "Traceback" not in cp.stderr
    if shutil.which(f"qemu-system-{ARCH}") is None or shutil.which("qemu-img") is None:
        pytest.skip("QEMU is not installed here: only the failing half was checked")
    cp = run(clean, env, "doctor", path=os.environ["PATH"])
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_start_without_qemu_downloads_nothing(installed: tuple[Path, dict[str, str]]) -> None:
    clean, env = installed
    cp = run(clean, env, "start", "template:default", path=no_qemu(clean))
    assert cp.returncode == 1, cp.stdout + cp.stderr
    first = cp.stderr.splitlines()[0]
    assert first.startswith("limapy: missing on this host: qemu-img") and f"qemu-system-{ARCH}" in first, cp.stderr
    assert "download" not in cp.stderr
    assert not [p for p in (clean / "cache").rglob("*") if p.is_file() and "download" in str(p)]
    assert not (clean / "home" / ".limapy" / "default").exists()


def test_the_installed_command_works_from_anywhere(installed: tuple[Path, dict[str, str]]) -> None:
    clean, env = installed
    cp = run(clean, env, "validate", "template:debian", path=os.environ["PATH"])
    assert cp.returncode == 0 and cp.stdout == "template:debian: OK\n", cp.stderr
    cp = run(clean, env, "help", "doctor", path=os.environ["PATH"])
    assert cp.returncode == 0 and "Examples:" in cp.stdout
