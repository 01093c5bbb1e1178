"""Hardening, second round, item 8: `prune` knows every instance of every home sharing the per-user cache, and
never removes a base between a `create`'s download and its overlay. Real qemu-img, HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from limapy.instance import disk
from tests.security.conftest import REPO, Server, limapy, qcow2, template


def in_home(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return limapy(*args, env={"LIMAPY_HOME": str(home)})


def test_prune_in_one_home_keeps_the_bases_of_another(home: Path, tmp_path: Path, server: Server) -> None:
    img = qcow2(tmp_path / "img.qcow2", fill=0x41).read_bytes()
    url = server.add("/latest.qcow2", img, mtime=1_700_000_000)  # a "latest" URL: no digest to fetch it back by
    t = template(tmp_path, url)
    assert limapy("create", "--name", "a", str(t)).returncode == 0
    assert limapy("rename", "a", "renamed").returncode == 0  # the instance dir moved since it was made
    base = disk.backing_file(home / "renamed" / "disk")
    assert base is not None and base.is_file()
    other = tmp_path / "home2"
    other.mkdir(mode=0o700)
    cp = in_home(other, "prune")
    assert cp.returncode == 0, cp.stderr
    assert base.is_file()
    assert limapy("start", "--dry-run", "renamed").returncode == 0
    # The URL's entry stays with its blob: the next create needs no download (the server says: unchanged).
    assert limapy("create", "--name", "b", str(t)).returncode == 0
    assert server.gets("/latest.qcow2") == 1
    # Once no instance anywhere stands on it, it goes.
    assert limapy("delete", "renamed").returncode == 0 and limapy("delete", "b").returncode == 0
    assert in_home(other, "prune").returncode == 0
    assert not base.exists()


def test_prune_forgets_homes_that_are_gone(home: Path, tmp_path: Path, server: Server) -> None:
    url = server.add("/img.qcow2", qcow2(tmp_path / "img.qcow2").read_bytes())
    other = tmp_path / "home2"
    other.mkdir(mode=0o700)
    assert in_home(other, "create", "--name", "x", str(template(tmp_path, url))).returncode == 0
    base = disk.backing_file(other / "x" / "disk")
    assert base is not None
    assert limapy("prune").returncode == 0
    assert base.is_file()  # home2's instance stands on it
    import shutil

    shutil.rmtree(other)
    assert limapy("prune").returncode == 0
    assert not base.exists()


@pytest.mark.timeout(120)
def test_prune_waits_for_a_create_between_download_and_overlay(
    home: Path, tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the issue saw: prune ran after create fetched its base and before the overlay was made."""
    from limapy.driver import layout
    from limapy.ops.create import create

    url = server.add("/img.qcow2", qcow2(tmp_path / "img.qcow2", fill=0x41).read_bytes())
    real = layout.disk.create_overlay
    seen: dict[str, object] = {}

    def racing_overlay(*args: Any, **kwargs: Any) -> None:
        p = subprocess.Popen([sys.executable, "-m", "limapy", "prune"], env=dict(os.environ, PYTHONPATH=str(REPO)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 8
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        seen["prune finished early"] = p.poll() is not None
        seen["prune"] = p
        real(*args, **kwargs)

    monkeypatch.setattr(layout.disk, "create_overlay", racing_overlay)
    create(str(template(tmp_path, url)), name="r")
    p = seen["prune"]
    assert isinstance(p, subprocess.Popen)
    _, err = p.communicate(timeout=60)
    assert seen["prune finished early"] is False, err
    assert p.returncode == 0 and "waiting for other limapy commands" in err, err
    base = disk.backing_file(home / "r" / "disk")
    assert base is not None and base.is_file()  # prune ran once the instance existed, and kept its base
    assert limapy("start", "--dry-run", "r").returncode == 0
