"""The lifecycle a user lives in, on one real guest booted twice (issue 5/6 acceptance):
create -> start (ready) -> shell, exit codes, provisioning of every mode, copy both ways, list --json,
security of files and listeners -> graceful stop -> start again (data kept) -> delete.

The tests run in file order on one module-scoped instance: each step relies on the one before.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest

from limapy.base.netutil import free_port
from tests.e2e.conftest import RunLimapy
from tests.e2e.guest import (
    START_TIMEOUT,
    leftovers,
    list_json,
    listening_addresses,
    qemu_pids,
    serial_text,
    status_of,
    template_with,
    wait_until,
)

NAME = "t"
USER = "lima"  # the template's default user when the host user is root (or `lima`)

PROVISION = """\
provision:
- mode: dependency
  script: |
    #!/bin/sh
    echo dependency >>/var/tmp/prov-dependency
- mode: boot
  script: |
    #!/bin/sh
    echo boot >>/var/tmp/prov-boot
- mode: data
  path: /etc/limapy-e2e/data.txt
  content: |
    hello from a data file
  owner: "root:root"
  permissions: "640"
- mode: system
  script: |
    #!/bin/sh
    { id -un; test -f /var/tmp/prov-dependency && echo after-dependency;
      test -f /etc/limapy-e2e/data.txt && echo after-data; } >/var/tmp/prov-system
- mode: user
  script: |
    #!/bin/sh
    { id -un; echo "$HOME"; } >/var/tmp/prov-user
"""

State = dict[str, Any]


@pytest.fixture(scope="module")
def state() -> State:
    return {}


@pytest.fixture(autouse=True)
def _show_logs_on_failure(module_home: Path) -> None:
    """Every test of this module shows the shared instance's serial and host-agent logs when it fails."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Host-side files (template, copies): outside LIMAPY_HOME, which must end up empty."""
    return tmp_path_factory.mktemp("lifecycle")


@pytest.fixture(scope="module")
def template(test_image_template: Path, files: Path) -> Path:
    forward = free_port()
    extra = PROVISION + f"portForwards:\n- guestPort: 8080\n  hostPort: {forward}\n  static: true\n"
    return template_with(test_image_template, files / "tmpl.yaml", extra)


def sh(run: RunLimapy, script: str) -> str:
    cp = run("shell", NAME, "--", "sh", "-c", script, timeout=120)
    assert cp.returncode == 0, f"{script!r}: exit {cp.returncode}: {cp.stderr}"
    return cp.stdout


@pytest.mark.timeout(120)
def test_create_is_stopped(template: Path, module_home: Path, module_run: RunLimapy) -> None:
    cp = module_run("create", "--name", NAME, template)
    assert cp.returncode == 0, cp.stderr
    rec = list_json(module_run)[NAME]
    assert rec["status"] == "Stopped"
    assert "hostAgentPID" not in rec and "driverPID" not in rec and "sshLocalPort" not in rec  # omitempty
    assert rec["dir"] == str(module_home / NAME)
    assert rec["vmType"] == "qemu" and rec["cpus"] == 2 and rec["memory"] == 1024**3 and rec["disk"] == 4 * 1024**3


@pytest.mark.timeout(START_TIMEOUT + 60)
def test_start_ready(module_home: Path, module_run: RunLimapy, state: State) -> None:
    cp = module_run("start", NAME, timeout=START_TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    assert "READY" in cp.stderr
    for phase in ("[booting]", "[ssh]", "[provisioning]", "[ready]"):
        assert phase in cp.stderr, f"no {phase} phase shown: {cp.stderr}"
    rec = list_json(module_run)[NAME]
    assert rec["status"] == "Running"
    assert rec["hostAgentPID"] > 0 and rec["driverPID"] > 0 and rec["sshLocalPort"] > 0
    assert qemu_pids(module_home / NAME) == [rec["driverPID"]]
    state["ready"] = True
    state["first_pid"] = rec["driverPID"]


@pytest.fixture
def running(state: State) -> None:
    if not state.get("ready"):
        pytest.skip("the instance did not start")


@pytest.mark.usefixtures("running")
@pytest.mark.timeout(120)
def test_shell(module_home: Path, module_run: RunLimapy) -> None:
    cp = module_run("shell", NAME, "uname", "-s", timeout=60)
    assert (cp.returncode, cp.stdout) == (0, "Linux\n"), cp.stderr
    cp = module_run("shell", NAME, "--", "sh", "-c", "exit 7", timeout=60)
    assert cp.returncode == 7, cp.stderr
    # A unique prefix reaches the instance; arguments keep their words.
    cp = module_run("shell", NAME[:1], "printf", "%s|", "a b", "c", timeout=60)
    assert (cp.returncode, cp.stdout) == (0, "a b|c|"), cp.stderr
    assert sh(module_run, "id -un").strip() == USER


@pytest.mark.usefixtures("running")
@pytest.mark.timeout(120)
def test_provision_every_mode(module_run: RunLimapy) -> None:
    assert sh(module_run, "cat /var/tmp/prov-dependency") == "dependency\n"
    assert sh(module_run, "cat /var/tmp/prov-boot") == "boot\n"
    assert sh(module_run, "cat /var/tmp/prov-system") == "root\nafter-dependency\nafter-data\n"
    assert sh(module_run, "cat /var/tmp/prov-user") == f"{USER}\n/home/{USER}.guest\n"
    data = sh(module_run, "sudo stat -c '%a %U:%G' /etc/limapy-e2e/data.txt && sudo cat /etc/limapy-e2e/data.txt")
    assert data == "640 root:root\nhello from a data file\n"
    # Nothing failed, and the readiness marker is there.
    assert sh(module_run, "test ! -e /run/lima-provision-failed && test -s /run/lima-boot-done && echo ok") == "ok\n"


@pytest.mark.usefixtures("running")
@pytest.mark.timeout(120)
def test_copy_both_ways(files: Path, module_run: RunLimapy) -> None:
    src = files / "to-guest.txt"
    payload = "copied in\n" + "x" * 100_000 + "\n"
    src.write_text(payload)
    cp = module_run("copy", src, f"{NAME}:/tmp/in.txt", timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert sh(module_run, "sha256sum </tmp/in.txt").split()[0] == hashlib.sha256(payload.encode()).hexdigest()
    sh(module_run, "echo 'made in the guest' >/tmp/out.txt")
    dst = files / "from-guest.txt"
    cp = module_run("copy", f"{NAME}:/tmp/out.txt", dst, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert dst.read_text() == "made in the guest\n"


@pytest.mark.usefixtures("running")
@pytest.mark.timeout(60)
def test_security(module_home: Path, module_run: RunLimapy, template: Path) -> None:
    inst = module_home / NAME
    assert stat.S_IMODE(inst.stat().st_mode) == 0o700
    assert stat.S_IMODE((module_home / "_config").stat().st_mode) == 0o700
    assert stat.S_IMODE((module_home / "_config" / "user").stat().st_mode) == 0o600
    rec = list_json(module_run)[NAME]
    forward = int(template.read_text().split("hostPort: ")[1].split()[0])
    qemu_listens = listening_addresses(rec["driverPID"])
    assert f"127.0.0.1:{rec['sshLocalPort']}" in qemu_listens
    assert f"127.0.0.1:{forward}" in qemu_listens
    assert all(a.startswith("127.0.0.1:") for a in qemu_listens), qemu_listens
    # The host agent listens on nothing but unix sockets.
    assert listening_addresses(rec["hostAgentPID"]) == []


@pytest.mark.usefixtures("running")
@pytest.mark.timeout(300)
def test_stop_is_graceful(module_home: Path, module_run: RunLimapy, state: State) -> None:
    sh(module_run, "echo kept >~/kept.txt && sync")
    cp = module_run("stop", NAME, timeout=240)
    assert cp.returncode == 0, cp.stderr
    inst = module_home / NAME
    assert "reboot: Power down" in serial_text(inst), "the guest did not log a power-down"
    rec = list_json(module_run)[NAME]
    assert (rec["status"], rec.get("hostAgentPID"), rec.get("driverPID")) == ("Stopped", None, None)
    assert qemu_pids(inst) == []
    assert not (inst / "ha.pid").exists() and not (inst / "qemu.pid").exists()
    cp = module_run("shell", NAME, "true", timeout=60)
    assert cp.returncode != 0 and "stopped" in cp.stderr
    state["stopped"] = True


@pytest.mark.timeout(START_TIMEOUT + 60)
def test_second_start_keeps_data(module_home: Path, module_run: RunLimapy, state: State) -> None:
    if not state.get("stopped"):
        pytest.skip("the first boot did not stop cleanly")
    cp = module_run("start", NAME, timeout=START_TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    assert status_of(module_run, NAME) == "Running"
    assert sh(module_run, "cat ~/kept.txt") == "kept\n"
    assert sh(module_run, "cat /var/tmp/prov-boot") == "boot\nboot\n"  # mode: boot runs on every boot
    assert sh(module_run, "sudo cat /etc/limapy-e2e/data.txt") == "hello from a data file\n"
    # Starting what runs already is a no-op.
    cp = module_run("start", NAME, timeout=60)
    assert cp.returncode == 0 and "already running" in cp.stderr, cp.stderr
    assert len(qemu_pids(module_home / NAME)) == 1


@pytest.mark.timeout(300)
def test_delete_removes_everything(module_home: Path, module_run: RunLimapy) -> None:
    inst = module_home / NAME
    if status_of(module_run, NAME) == "Running":
        cp = module_run("delete", NAME, timeout=60)
        assert cp.returncode != 0 and "stop it first" in cp.stderr, cp.stderr
        assert inst.is_dir()
        cp = module_run("stop", NAME, timeout=240)
        assert cp.returncode == 0, cp.stderr
    cp = module_run("delete", NAME, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert not inst.exists()
    assert leftovers(module_home) == []
    assert list_json(module_run) == {}
    wait_until(lambda: qemu_pids(inst) == [], 10, "no QEMU of the deleted instance")
