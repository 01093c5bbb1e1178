"""When a saved (suspended) state may be resumed from, and when it must be discarded (limapy.driver.suspended),
and what `list`, `stop` and `delete` make of a suspended instance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from limapy import driver
from limapy.driver import suspended
from limapy.instance import store


@pytest.fixture
def inst(tmp_path: Path) -> store.Instance:
    d = tmp_path / "vm"
    d.mkdir(mode=0o700)
    i = store.Instance("vm", d)
    i.lima_yaml.write_text("cpus: 2\n")
    i.disk.write_bytes(b"disk" * 1000)
    return i


ARGV = ("qemu-system-x86_64", "-name", "limapy-vm", "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:4022-:22")


def saved(inst: store.Instance, data: bytes = b"QEVM" + os.urandom(100_000)) -> suspended.Record:
    inst.suspend_state.write_bytes(data)
    return suspended.complete(inst, driver="qemu", argv=ARGV, ssh_port=4022)


def test_nothing_saved(inst: store.Instance) -> None:
    assert suspended.usable(inst, "qemu") == (None, "")
    assert not suspended.present(inst)


def test_a_complete_state_is_resumed_from(inst: store.Instance) -> None:
    rec = saved(inst)
    assert suspended.present(inst)
    assert suspended.usable(inst, "qemu") == (rec, "")
    assert oct(inst.suspend_record.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (lambda i: os.truncate(i.suspend_state, 5000), "5000 bytes"),
        (lambda i: i.suspend_state.write_bytes(b"x" * i.suspend_state.stat().st_size), "corrupted"),
        (lambda i: i.disk.write_bytes(b"other disk"), "the disk changed"),
        (lambda i: os.utime(i.disk, ns=(1, 1)), "the disk changed"),
        (lambda i: i.lima_yaml.write_text("cpus: 4\n"), "lima.yaml changed"),
        (lambda i: i.suspend_state.unlink(), "missing"),
        (lambda i: i.suspend_record.unlink(), "did not finish"),
        (lambda i: i.suspend_record.write_text("{"), "unreadable"),
        (lambda i: i.suspend_record.write_text(json.dumps({**json.loads(i.suspend_record.read_text()), "argv": []})),
         "names no machine"),
        (lambda i: i.suspend_record.write_text(json.dumps({**json.loads(i.suspend_record.read_text()), "format": 9})),
         "format 9"),
    ],
)  # fmt: skip
def test_a_state_that_does_not_match_is_refused(inst: store.Instance, spoil: object, why: str) -> None:
    saved(inst)
    spoil(inst)  # type: ignore[operator]
    rec, reason = suspended.usable(inst, "qemu")
    assert rec is None and why in reason, reason


def test_another_drivers_state_is_refused(inst: store.Instance) -> None:
    saved(inst)
    assert "from the qemu driver" in suspended.usable(inst, "toy")[1]


def test_status_and_discard(inst: store.Instance) -> None:
    assert driver.status(inst) == store.STOPPED
    saved(inst)
    assert driver.status(inst) == store.SUSPENDED
    suspended.discard(inst)
    assert driver.status(inst) == store.STOPPED
    assert not inst.suspend_state.exists()
    # a state without its record (a suspend cut short) is not Suspended, and is discarded at the next start
    inst.suspend_state.write_bytes(b"partial")
    assert driver.status(inst) == store.STOPPED
    assert "did not finish" in suspended.usable(inst, "qemu")[1]


def test_the_saved_machine_is_the_one_resumed(inst: store.Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resume runs the saved machine's own command line (its ports, its media) plus `-incoming defer`."""
    from limapy.driver.qemu import suspend

    monkeypatch.setattr(suspend.pids, "cmdline", lambda _pid: [*ARGV, "-incoming", "defer"])
    assert suspend.machine_argv(1) == ARGV
    assert suspend.ssh_port(ARGV) == 4022
    assert suspend.ssh_port(("-netdev", "user,hostfwd=tcp:127.0.0.1:5000-:3389")) == 0


def test_a_resume_qemu_refuses_falls_back_to_a_cold_boot(inst: store.Instance) -> None:
    """The host agent discards the state, plans again (now cold) and launches that, with one warning."""
    import io

    from limapy.agent.hostagent import Events, HostAgent
    from limapy.driver.plan import READY_NONE, BootPlan

    saved(inst)
    launched: list[bool] = []

    class Drv:
        def plan(self, _inst: store.Instance, _spec: object) -> BootPlan:
            return BootPlan(driver="x", argv=("x",), ssh_port=1, user="u", readiness=READY_NONE, iid="i",
                            resume=suspended.present(inst))

        def materialize(self, *_a: object) -> None:
            pass

        def launch(self, _inst: store.Instance, plan: BootPlan) -> object:
            launched.append(plan.resume)
            if plan.resume:
                raise suspended.ResumeFailed("load of migration failed: Invalid argument")
            return object()

    out = io.StringIO()
    agent = HostAgent(inst, Events(out))
    drv = Drv()
    plan = agent._launch(drv, None, drv.plan(inst, None))  # type: ignore[arg-type]
    assert launched == [True, False] and not plan.resume
    assert not suspended.leftover(inst)
    assert "the saved (suspended) state was discarded: resuming failed (load of migration failed" in out.getvalue()


def test_a_settled_state_is_not_hashed_again_until_it_changes(
    inst: store.Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest is taken once; a start hashes the state again only when its size, mtime, inode or device
    changed (three clones resuming from one shared state hash it no more)."""
    inst.suspend_state.write_bytes(b"QEVM" + os.urandom(100_000))
    os.utime(inst.suspend_state, ns=(1, 1_000_000_000))  # long settled
    rec = suspended.complete(inst, driver="qemu", argv=ARGV, ssh_port=4022)
    assert rec.state_stat and rec.state_stat[1] == 1_000_000_000
    hashed: list[object] = []
    real = suspended._sha256_file
    monkeypatch.setattr(suspended, "_sha256_file", lambda p: hashed.append(p) or real(p))
    assert suspended.usable(inst, "qemu")[0] is not None and hashed == []
    with inst.suspend_state.open("r+b") as f:  # rewritten in place, same size
        f.write(b"XXXX")
    rec2, why = suspended.usable(inst, "qemu")
    assert rec2 is None and "corrupted" in why and hashed


def test_a_state_written_a_moment_ago_is_always_hashed(inst: store.Instance) -> None:
    rec = saved(inst)  # the key would not tell a write within the same clock tick apart
    assert rec.state_stat == ()
