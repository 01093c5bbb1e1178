"""limactl's behaviours, through the real CLI in a temporary LIMAPY_HOME (no guest boots):

- `start --dry-run TEMPLATE` prints the plan and creates nothing (its help says "change nothing"); the plan is
  the one the created instance gets (same paths, same MAC; only the free SSH port differs);
- `--network lima:user-v2` (or any network, which limapy does not attach) is a warning, not silence;
- an ISO without `sources/install.wim` is refused before anything is created, not made an instance with warnings;
- `list` of an empty home gives a hint that works.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.winiso import build_standin_iso

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lpb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def limapy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIMAPY_HOME=str(home / "home"), LIMAPY_CACHE_DIR=str(home / "cache"), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "limapy", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)  # fmt: skip


def instances(home: Path) -> list[str]:
    d = home / "home"
    return sorted(p.name for p in d.iterdir() if not p.name.startswith("_")) if d.exists() else []


@pytest.fixture
def linux_template(home: Path) -> Path:
    if shutil.which("qemu-img") is None or shutil.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU not installed")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(home / "img.qcow2"), "64M"], check=True)
    t = home / "t.yaml"
    t.write_text(f"images:\n- location: {json.dumps(str(home / 'img.qcow2'))}\n  arch: x86_64\narch: x86_64\n"
                 "mounts: []\n")  # fmt: skip
    return t


def test_dry_run_of_a_template_creates_nothing(home: Path, linux_template: Path) -> None:
    cp = limapy(home, "start", "--dry-run", "--name", "vm", "--cpus", "1", str(linux_template))
    assert cp.returncode == 0, cp.stderr
    assert instances(home) == [] and not [p for p in (home / "home").iterdir() if ".tmp-" in p.name]
    assert "created" not in cp.stderr and "creating" not in cp.stderr
    dry = shlex.split(cp.stdout.strip().splitlines()[-1])
    assert f"file={home / 'home' / 'vm'}/disk,if=none,id=boot-disk,discard=on" in " ".join(dry)

    assert limapy(home, "create", "--name", "vm", "--cpus", "1", str(linux_template)).returncode == 0
    cp = limapy(home, "start", "--dry-run", "vm")
    assert cp.returncode == 0, cp.stderr
    real = shlex.split(cp.stdout.strip().splitlines()[-1])

    def same(argv: list[str]) -> list[str]:
        return [a.split(",hostfwd=")[0] for a in argv]  # the SSH port is picked free at each start

    assert same(dry) == same(real)


def test_networks_limapy_does_not_attach_are_a_warning(home: Path, linux_template: Path) -> None:
    cp = limapy(home, "create", "--name", "n", "--network", "lima:user-v2", str(linux_template))
    assert cp.returncode == 0, cp.stderr
    assert "--network lima:user-v2: warning: networks[0] (lima: user-v2) is not attached" in cp.stderr, cp.stderr
    cp = limapy(home, "validate", str(home / "home" / "n" / "lima.yaml"))
    assert "warning: networks[0] (lima: user-v2) is not attached" in cp.stderr, cp.stderr


def test_an_iso_without_install_wim_is_refused(home: Path) -> None:
    iso = build_standin_iso(home / "NotWindows.iso", wim_name="other.bin")
    template = REPO / "templates" / "experimental" / "windows.yaml"
    sets = ['.arch = "x86_64"', f'.images[0].location = "{iso}"', ".tpm = false", ".cpus = 1"]
    cp = limapy(home, "create", "--name", "w", *[a for s in sets for a in ("--set", s)], str(template))
    assert cp.returncode == 1, cp.stderr
    assert cp.stderr.splitlines()[0] == (f"limapy: {iso} is not Windows install media: it has no sources/install.wim "
                                         "(nor install.esd or install.swm)")  # fmt: skip
    assert "warning" not in cp.stderr and len(cp.stderr.splitlines()) == 2  # the error and its hint
    assert instances(home) == []


def test_empty_list_gives_a_hint_that_works(home: Path) -> None:
    cp = limapy(home, "list")
    assert cp.returncode == 0 and cp.stdout == ""
    assert cp.stderr == "warning: No instance found. Run `limapy create` to create an instance.\n"
    cp = limapy(home, "create", "--help")  # `limapy create` alone is valid: template:default, named `default`
    assert cp.returncode == 0 and "default: template:default" in cp.stdout, cp.stdout
