"""Suspended clones on one real guest (issue 29, item 1): a cold boot, a suspend, three clones started together
with `limapy start w1 w2 w3` (each resumes from the source's saved state, no boot), each its own hostname,
machine-id and SSH host keys, and its own writes; `delete` of the source refused while they stand on its disk; the
source resumes afterwards with its memory; then everything is deleted. The host side in detail is
tests/integration/test_suspend_clone.py; the speed is hack/bench.py's `clone.resume` rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import RunLimapy
from tests.e2e.guest import START_TIMEOUT, list_json, qemu_pids

SRC = "cbase"
CLONES = ("w1", "w2", "w3")
BOOT = 2 * START_TIMEOUT
#: hostname, machine-id, SSH host key (ed25519), whether /dev/shm/mark (memory only) and ~/only-w1 exist
IDENTITY = (
    "echo $(hostname) $(cat /etc/machine-id) $(cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub)"
    " $(test -e /dev/shm/mark && echo resumed || echo booted) $(test -e ~/only-w1 && echo has-w1 || echo no-w1)"
)


@pytest.fixture(autouse=True)
def _show_logs_on_failure(module_home: Path) -> None:
    """This module's instances show their serial and host-agent logs when a test fails."""


def facts(run: RunLimapy, name: str) -> list[str]:
    cp = run("shell", name, "--", "sh", "-c", IDENTITY, timeout=120)
    assert cp.returncode == 0, f"{name}: {cp.stderr}"
    words = cp.stdout.split()
    assert len(words) == 5, cp.stdout
    return words


@pytest.mark.timeout(BOOT + 900)
def test_suspended_clones_resume_as_machines_of_their_own(
    test_image_template: Path, module_home: Path, module_run: RunLimapy
) -> None:
    run = module_run
    cp = run("start", "--name", SRC, "--timeout", f"{BOOT}s", test_image_template, timeout=BOOT + 60)
    assert cp.returncode == 0, cp.stderr
    cp = run("shell", SRC, "--", "sh", "-c", "echo in-memory >/dev/shm/mark", timeout=120)
    assert cp.returncode == 0, cp.stderr
    source = facts(run, SRC)
    assert run("suspend", SRC, timeout=300).returncode == 0

    for name in CLONES:
        cp = run("clone", SRC, name, timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert "own hostname lima-" in cp.stderr, cp.stderr
    assert {r["status"] for r in list_json(run).values()} == {"Suspended"}
    assert len(list((module_home / SRC).glob("layer-*.qcow2"))) == 1  # one read-only layer for all three

    cp = run("start", *CLONES, "--timeout", f"{BOOT}s", timeout=BOOT + 120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    for name in CLONES:
        assert f"{name}: [resuming]" in cp.stderr and f"{name}: READY" in cp.stderr, cp.stderr
        assert f"{name}: [ssh] the clone has its own identity: hostname lima-{name}" in cp.stderr, cp.stderr
    seen = {name: facts(run, name) for name in CLONES}
    for name, (host, _, _, memory, _) in seen.items():
        assert host == f"lima-{name}" and memory == "resumed", seen  # resumed (its memory), not booted
    for i in (0, 1, 2):  # hostname, machine-id and host key: different from the source's and from one another
        values = [source[i]] + [seen[n][i] for n in CLONES]
        assert len(set(values)) == len(values), (i, values)

    cp = run("shell", "w1", "--", "sh", "-c", "echo w1 >~/only-w1 && sync", timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert [facts(run, n)[4] for n in ("w1", "w2", "w3")] == ["has-w1", "no-w1", "no-w1"]

    cp = run("delete", "-f", SRC, timeout=120)
    assert cp.returncode != 0 and "`w1`, `w2`, `w3` stand on its disk" in cp.stderr, cp.stderr
    assert list_json(run)[SRC]["status"] == "Suspended"

    cp = run("start", SRC, "--timeout", f"{BOOT}s", timeout=BOOT + 60)
    assert cp.returncode == 0, cp.stderr
    assert "[resuming]" in cp.stderr and "own identity" not in cp.stderr, cp.stderr
    again = facts(run, SRC)
    assert again[:3] == source[:3] and again[3:] == ["resumed", "no-w1"], again  # itself, memory and all

    cp = run("delete", "-f", *CLONES, SRC, timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert list_json(run) == {}
    for name in (SRC, *CLONES):
        assert qemu_pids(module_home / name) == []
