"""Without the libvirt binding, `--driver libvirt` fails with one line naming what to install (issue 16), and
nothing is created; the QEMU driver never needs the binding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = """\
images:
- location: /nonexistent/disk.qcow2
  arch: x86_64
"""


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    hide = tmp / "hide"
    hide.mkdir(exist_ok=True)
    # a `libvirt` module that is not there: what a machine without libvirt-python has
    (hide / "libvirt.py").write_text("raise ModuleNotFoundError(\"No module named 'libvirt'\")\n")
    env = dict(os.environ, LIMAPY_HOME=str(tmp / "home"), PYTHONPATH=os.pathsep.join([str(hide), str(REPO)]))
    env.pop("LIMAPY_DRIVER", None)
    return subprocess.run([sys.executable, "-m", "limapy", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_driver_libvirt_without_the_binding(tmp_path: Path) -> None:
    t = tmp_path / "t.yaml"
    t.write_text(TEMPLATE)
    cp = _run(tmp_path, "create", "--driver", "libvirt", "--name", "x", str(t))
    assert cp.returncode != 0
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
    assert lines and "libvirt Python binding" in lines[0], cp.stderr
    assert "libvirt-python" in cp.stderr and "libvirt-daemon-system" in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr
    assert not (tmp_path / "home" / "x").exists()


def test_connect_needs_the_libvirt_driver(tmp_path: Path) -> None:
    t = tmp_path / "t.yaml"
    t.write_text(TEMPLATE)
    cp = _run(tmp_path, "create", "--connect", "qemu:///system", "--name", "x", str(t))
    assert cp.returncode != 0 and "--driver libvirt" in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
    assert not (tmp_path / "home" / "x").exists()


def test_unknown_driver_is_one_line(tmp_path: Path) -> None:
    t = tmp_path / "t.yaml"
    t.write_text(TEMPLATE)
    cp = _run(tmp_path, "create", "--driver", "xen", "--name", "x", str(t))
    assert cp.returncode != 0 and "driver `xen` does not exist" in cp.stderr, cp.stderr
    assert "libvirt" in cp.stderr  # the hint names the drivers there are
