"""`suspend` waits, bounded, for a guest's boot to end before it saves the state (limapy.ops.suspend.settle,
GuestOS.settle): quietly when it has ended, with a line when it takes longer, and on at the bound with a line
saying so. The SSH command is replaced by a shell that sleeps and exits as told (the e2e test in
tests/e2e/test_suspend.py checks a real guest has no boot left to finish once resumed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from limapy.base import proc
from limapy.guest import linux, windows
from limapy.guest.linux import settle as linux_settle
from limapy.instance import store
from limapy.ops import suspend


class Said(list[str]):
    def __call__(self, msg: str) -> None:
        self.append(msg)


@pytest.fixture
def guest_answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The guest's "ssh NAME SETTLE" becomes `sleep S; exit C`; the argv asked for is kept."""
    seen: dict[str, Any] = {"sleep": 0.0, "code": 0}
    spawn = proc.spawn

    def fake_spawn(argv: list[str], **kw: Any) -> Any:
        seen["argv"] = argv
        seen["child"] = spawn(["sh", "-c", f"sleep {seen['sleep']}; exit {seen['code']}"], **kw)
        return seen["child"]

    class View:
        os = "Linux"

    class Summary:
        view = View()

    monkeypatch.setattr(proc, "spawn", fake_spawn)
    monkeypatch.setattr("limapy.instance.summary.load", lambda inst: Summary())
    return seen


def test_a_settled_guest_is_not_waited_for_nor_mentioned(tmp_path: Path, guest_answers: dict[str, Any]) -> None:
    said = Said()
    assert suspend.settle(store.Instance("vm", tmp_path), said) is True
    assert said == []
    argv = guest_answers["argv"]
    assert argv[-1] == linux_settle.SCRIPT and argv[-2] == "lima-vm" and str(tmp_path / "ssh.config") in argv
    assert "ControlMaster=no" in argv  # the host agent's master is used, none is made to outlive the suspend


def test_a_boot_still_running_is_waited_for_and_said(tmp_path: Path, guest_answers: dict[str, Any]) -> None:
    guest_answers["sleep"] = suspend.SETTLE_QUIET + 0.5
    said = Said()
    assert suspend.settle(store.Instance("vm", tmp_path), said) is True
    assert len(said) == 2 and "still booting" in said[0] and said[1].startswith("its boot ended after"), said


def test_the_wait_is_bounded_and_the_child_does_not_outlive_it(tmp_path: Path, guest_answers: dict[str, Any]) -> None:
    guest_answers["sleep"] = 60
    said = Said()
    started = time.monotonic()
    assert suspend.settle(store.Instance("vm", tmp_path), said, timeout=2.0) is False
    assert time.monotonic() - started < 10
    assert "saving its state anyway" in said[-1], said
    assert guest_answers["child"].poll() is not None  # killed, not left behind


def test_an_unreachable_guest_is_saved_anyway(tmp_path: Path, guest_answers: dict[str, Any]) -> None:
    guest_answers["code"] = 255  # ssh's own failure
    assert suspend.settle(store.Instance("vm", tmp_path), Said()) is False


def test_what_each_guest_os_waits_for() -> None:
    script = linux.GUEST.settle()
    assert script is not None and "systemctl is-system-running --wait" in script
    assert "/run/cloud-init/result.json" in script  # without systemd: cloud-init's end of its final stage
    assert windows.GUEST.settle() is None


def test_the_linux_script_is_posix_sh(tmp_path: Path) -> None:
    """dash parses it (`sh -n`): the guest's login shell may be any POSIX shell."""
    proc.run(["sh", "-n", "-c", linux_settle.SCRIPT])
