"""The driver seam carries every lifecycle command: with a toy second driver (tests/toydriver.py, which records
its calls and boots nothing) `create`, `start` (through the host agent), `start --dry-run`, `list`, `stop`,
`stop -f`, `screenshot` and `suspend` (which the toy refuses) reach it, and no QEMU is ever started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lpd-", dir="/tmp"))
    yield path
    subprocess.run([sys.executable, "-m", "limapy", "stop", "-f", "t"], env=env(path), capture_output=True)
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def env(home: Path, **extra: str) -> dict[str, str]:
    e = dict(os.environ, LIMAPY_HOME=str(home), LIMAPY_CACHE_DIR=str(home / "_cache"), PYTHONPATH=str(REPO),
             LIMAPY_DRIVER_MODULES="toy=tests.toydriver", LIMAPY_DRIVER="toy")
    e.update(extra)
    return e


def limapy(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "limapy", *args], env=env(home, **extra), capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def calls(home: Path) -> list[dict[str, object]]:
    path = home / "t" / "toy.calls"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def listed(home: Path) -> dict[str, object]:
    cp = limapy(home, "list", "--json")
    assert cp.returncode == 0, cp.stderr
    return dict(json.loads(cp.stdout.splitlines()[0]))


def template(tmp: Path) -> Path:
    img = tmp / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    t = tmp / "t.yaml"
    t.write_text(f"images:\n- location: {json.dumps(str(img))}\n  arch: x86_64\narch: x86_64\nmounts: []\n")
    return t


def test_lifecycle_goes_through_the_driver(home: Path, tmp_path: Path) -> None:
    cp = limapy(home, "create", "--name", "t", str(template(tmp_path)))
    assert cp.returncode == 0, cp.stderr
    assert (home / "t" / "driver").read_text().strip() == "toy"  # later commands find the same engine
    assert [c["call"] for c in calls(home)] == ["create"]
    assert not (home / "t" / "disk").exists()  # the toy made no disk: the QEMU driver did not run

    cp = limapy(home, "start", "--dry-run", "t")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip().splitlines()[-1] == "toy-machine t"
    assert [c["call"] for c in calls(home)] == ["create", "plan"]  # a dry run plans, and does nothing else

    cp = limapy(home, "start", "t")
    assert cp.returncode == 0, cp.stderr
    assert "READY" in cp.stderr
    booted = calls(home)[2:]
    assert [c["call"] for c in booted] == ["plan", "materialize", "launch"]
    agent = booted[0]["pid"]
    assert {c["pid"] for c in booted} == {agent}  # all in the host agent
    row = listed(home)
    assert row["status"] == "Running" and row["driverPID"] == agent == row["hostAgentPID"]
    assert not (home / "t" / "qemu.pid").exists()

    shot = tmp_path / "shot.png"
    assert limapy(home, "screenshot", "t", "-o", str(shot)).returncode == 0
    assert shot.read_bytes() == b"toy screen\n"

    cp = limapy(home, "suspend", "t")  # a capability of the seam that an engine may refuse
    assert cp.returncode != 0 and cp.stderr.splitlines()[-1] == "limapy: the toy driver cannot suspend", cp.stderr
    assert listed(home)["status"] == "Running"  # and the machine runs on

    cp = limapy(home, "stop", "t")
    assert cp.returncode == 0, cp.stderr
    assert [c["call"] for c in calls(home)][-1] == "shutdown"
    assert listed(home)["status"] == "Stopped"

    assert limapy(home, "start", "t").returncode == 0
    cp = limapy(home, "stop", "-f", "t")
    assert cp.returncode == 0, cp.stderr
    assert "force_stop" in [c["call"] for c in calls(home)]
    assert listed(home)["status"] == "Stopped"


def test_unknown_driver_is_one_line(home: Path, tmp_path: Path) -> None:
    cp = limapy(home, "create", "--name", "t", str(template(tmp_path)), LIMAPY_DRIVER="nope")
    assert cp.returncode != 0
    assert cp.stderr.splitlines()[0] == "limapy: driver `nope` does not exist"
    assert "Traceback" not in cp.stderr
    assert not (home / "t").exists()


def test_start_shows_the_rendered_message(home: Path, tmp_path: Path) -> None:
    t = template(tmp_path)
    t.write_text(t.read_text() + 'message: "export DOCKER_HOST=unix://{{.Dir}}/sock/docker.sock ({{.Name}})"\n')
    assert limapy(home, "create", "--name", "t", str(t)).returncode == 0
    cp = limapy(home, "start", "t")
    assert cp.returncode == 0, cp.stderr
    assert f"Message from the instance `t`:\nexport DOCKER_HOST=unix://{home}/t/sock/docker.sock (t)\n" in cp.stderr
    assert listed(home)["message"] == f"export DOCKER_HOST=unix://{home}/t/sock/docker.sock (t)"


def test_snapshots_go_through_the_driver(home: Path, tmp_path: Path) -> None:
    assert limapy(home, "create", "--name", "t", str(template(tmp_path))).returncode == 0
    for args in (("create", "t", "--tag", "one"), ("save", "t", "--tag", "two"), ("delete", "t", "--tag", "one")):
        cp = limapy(home, "snapshot", *args)
        assert cp.returncode == 0, cp.stderr
    assert [c["call"] for c in calls(home) if str(c["call"]).startswith("snapshot")] == [
        "snapshot create one", "snapshot create two", "snapshot delete one"]
    cp = limapy(home, "snapshot", "list", "-q", "t")
    assert cp.stdout == "two\n"


def test_start_foreground_is_the_host_agent_until_ctrl_c(home: Path, tmp_path: Path) -> None:
    import signal
    import time

    assert limapy(home, "create", "--name", "t", str(template(tmp_path))).returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "limapy", "start", "--foreground", "t"], env=env(home), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while listed(home)["status"] != "Running":
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.stderr else ""
            time.sleep(0.3)
        assert listed(home)["hostAgentPID"] == p.pid  # this process became the host agent
        assert b'"phase"' in (home / "t" / "ha.stdout.log").read_bytes()  # events still go to the log
        cp = limapy(home, "start", "--foreground", "t")
        assert cp.returncode == 1 and "already running" in cp.stderr
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) is not None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert listed(home)["status"] == "Stopped"


def test_start_applies_flags_to_an_existing_instance(home: Path, tmp_path: Path) -> None:
    assert limapy(home, "create", "--name", "t", str(template(tmp_path))).returncode == 0
    cp = limapy(home, "start", "--cpus", "3", "--arch", "aarch64", "t")
    assert cp.returncode == 0, cp.stderr
    assert "--arch applies only when an instance is created" in cp.stderr
    text = (home / "t" / "lima.yaml").read_text()
    assert "cpus: 3\n" in text and "arch: x86_64" in text
    cp = limapy(home, "start", "--cpus", "2", "t")  # running: lima.yaml is not edited under it
    assert cp.returncode == 1 and "cannot edit a running instance" in cp.stderr
    assert limapy(home, "stop", "t").returncode == 0
