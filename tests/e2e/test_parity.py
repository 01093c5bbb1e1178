"""The issue-13 commands on real guests, in as few boots as the checks allow (two, in file order):

boot 1 (`p`): `edit --cpus 1` then start shows 1 CPU; the additional disk is attached and held by `p`;
  issue 27's checks (tests/e2e/lima2x.py): the `mode: yq` steps of Lima's docker templates applied in the
  guest, `watch --json` over the start and the stop, `shell --sync`, `copy --backend rsync`, the `lima` wrapper;
  a protected running instance survives `delete -f`; an online snapshot: create -> change -> apply ->
  the change is gone, the state before it is there.
boot 2 (`q`, a clone of the stopped `p`, then `factory-reset`): its own hostname and MAC, and a first boot
  again (what `p`'s guest wrote is gone; lima.yaml kept); while `q` runs, `start p` is refused because `q`
  holds the shared disk. (That a clone carries the disk's contents is checked without a boot, in
  tests/integration/test_cli_parity.py.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from limapy.base.netutil import mac_address
from tests.e2e import lima2x
from tests.e2e.conftest import RunLimapy
from tests.e2e.guest import START_TIMEOUT as BASE_TIMEOUT
from tests.e2e.guest import list_json, status_of, template_with

State = dict[str, Any]
#: Boots on 2 cores shared with other test runs, one of them with a single vCPU: generous, not tight.
START_TIMEOUT = 4 * BASE_TIMEOUT
WAIT = f"{START_TIMEOUT - 60}s"  # limapy start --timeout


@pytest.fixture(scope="module")
def state() -> State:
    return {}


@pytest.fixture(autouse=True)
def _show_logs_on_failure(module_home: Path) -> None:
    """Every test of this module shows the instances' serial and host-agent logs when it fails."""


def need(state: State, key: str) -> None:
    if not state.get(key):
        pytest.skip(f"an earlier step failed ({key})")


def guest(home: Path, name: str, script: str, timeout: float = 120) -> str:
    """Run `script` in the guest over a fresh SSH connection (no ControlMaster: after `loadvm` the guest has
    forgotten the master's connection)."""
    cp = subprocess.run(
        ["ssh", "-F", str(home / name / "ssh.config"), "-o", "ControlMaster=no", "-o", "ControlPath=none",
         "-o", "ConnectTimeout=30", f"lima-{name}", "--", script],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, f"{script!r}: exit {cp.returncode}: {cp.stderr}"
    return cp.stdout


@pytest.mark.timeout(180)
def test_create_edit(test_image_template: Path, module_home: Path, module_run: RunLimapy, state: State) -> None:
    extra = "additionalDisks: [shared]\n" + lima2x.template_extra()
    tmpl = template_with(test_image_template, module_home / "p.yaml", extra)
    assert module_run("disk", "create", "shared", "--size", "64MiB").returncode == 0
    cp = module_run("create", "--name", "p", tmpl)
    assert cp.returncode == 0, cp.stderr
    assert module_run("protect", "p").returncode == 0
    cp = module_run("edit", "p", "--cpus", "1")
    assert cp.returncode == 0, cp.stderr
    assert list_json(module_run, "p")["p"]["cpus"] == 1
    state["created"] = True


@pytest.mark.timeout(START_TIMEOUT + 1500)
def test_boot_edited_protected_snapshot(module_home: Path, module_run: RunLimapy, state: State) -> None:
    need(state, "created")
    state["watch"] = lima2x.start_watch(module_home, "p")
    cp = module_run("start", "--timeout", WAIT, "p", timeout=START_TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    state["p_ran"] = True
    assert guest(module_home, "p", "nproc") == "1\n"  # edit, then start: the new CPU count
    assert "64M" in guest(module_home, "p", "lsblk -dn -o SIZE /dev/vdb")

    def sh(script: str) -> str:
        return guest(module_home, "p", script)

    user, home = sh("id -un").strip(), sh("echo $HOME").strip()
    lima2x.check_yq(sh, user, home, "p")
    lima2x.check_sync_copy_wrapper(module_run, module_home, "p", module_home, sh)
    held = [line for line in module_run("disk", "list", "--json").stdout.splitlines() if '"shared"' in line]
    assert held and '"instance":"p"' in held[0]

    cp = module_run("delete", "-f", "p")
    assert cp.returncode == 1 and "protected to prohibit accidental removal" in cp.stderr
    assert status_of(module_run, "p") == "Running"

    guest(module_home, "p", "echo kept | sudo tee /var/tmp/before-snap >/dev/null; sync")
    cp = module_run("snapshot", "create", "p", "--tag", "s1", timeout=900)
    assert cp.returncode == 0, cp.stderr
    guest(module_home, "p", "echo gone | sudo tee /var/tmp/after-snap >/dev/null; sync")
    cp = module_run("snapshot", "apply", "p", "--tag", "s1", timeout=900)
    assert cp.returncode == 0, cp.stderr
    assert guest(module_home, "p", "cat /var/tmp/before-snap; test ! -e /var/tmp/after-snap && echo no-after",
                 timeout=180) == "kept\nno-after\n"  # fmt: skip
    listed = module_run("snapshot", "list", "p").stdout.splitlines()
    assert listed[1].split()[1] == "s1" and listed[1].split()[2] != "0B"  # a machine snapshot: with RAM
    assert module_run("snapshot", "delete", "p", "--tag", "s1", timeout=300).returncode == 0
    cp = module_run("stop", "p", timeout=300)
    assert cp.returncode == 0, cp.stderr
    state["p_done"] = True
    lima2x.check_watch(lima2x.stop_watch(state.pop("watch")), "p")


@pytest.mark.timeout(START_TIMEOUT + 300)
def test_reset_clone_boots_first_time_with_its_own_identity_and_the_disk_lock_holds(
    module_home: Path, module_run: RunLimapy, state: State
) -> None:
    need(state, "p_done")
    cp = module_run("clone", "p", "q")
    assert cp.returncode == 0, cp.stderr
    yaml_before = (module_home / "q" / "lima.yaml").read_bytes()
    cp = module_run("factory-reset", "q", timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert (module_home / "q" / "lima.yaml").read_bytes() == yaml_before
    cp = module_run("start", "--timeout", WAIT, "q", timeout=START_TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    assert guest(module_home, "q", "hostname; test ! -e /var/tmp/before-snap && echo first-boot") == (
        "lima-q\nfirst-boot\n")  # fmt: skip
    mac = guest(module_home, "q", "cat /sys/class/net/$(ip -o route show default | awk '{print $5}')/address")
    assert mac.strip() == mac_address(module_home / "q") != mac_address(module_home / "p")
    assert guest(module_home, "q", "nproc") == "1\n"  # the edited lima.yaml came along
    cp = module_run("start", "p", timeout=300)
    assert cp.returncode != 0, cp.stderr
    assert "additional disk `shared` is in use by the running instance `q`" in cp.stderr, cp.stderr
    assert status_of(module_run, "p") == "Stopped"


@pytest.mark.timeout(300)
def test_cleanup(module_run: RunLimapy, state: State) -> None:
    if state.get("watch"):
        state.pop("watch").kill()
    module_run("stop", "-f", "q", timeout=120)
    assert module_run("unprotect", "p").returncode == 0
    for name in ("p", "q"):
        cp = module_run("delete", "-f", name, timeout=120)
        assert cp.returncode == 0, cp.stderr
