from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from limapy import driver
from limapy.base import proc
from limapy.base.errors import InstanceError, LimapyError, NotFoundError, UsageError
from limapy.instance import pids, store
from tests.procs import sleeper

DEAD_PID = 4194305  # above the largest possible pid_max (2^22): never a live process


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("LIMAPY_HOME", str(h))
    return h


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def make(name: str) -> store.Instance:
    return store.create_instance_dir(name, {"lima.yaml": b"images: []\n"})


@pytest.mark.parametrize(
    "name", ["default", "containerd.io", "0912341234", "underscores_are_allowed", "a" * 76, "win-11"]
)
def test_valid_names(name: str) -> None:
    store.validate_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "foo..foo", "foo.-boo", "-foo.boo", "foo.boo-", "but__only_tasteful_underscores",
     "default--default", "a" * 77, "foo/foo", "x.yaml", "x.yml"],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(UsageError):
        store.validate_name(name)


def test_instance_file_names(home: Path) -> None:
    inst = store.Instance("w", store.instance_dir("w"))
    assert inst.dir == home / "w"
    expected = {
        "lima_yaml": "lima.yaml", "lima_version": "lima-version", "cidata_iso": "cidata.iso", "disk": "disk",
        "iso": "iso", "virtio_win": "virtio-win", "kernel": "kernel", "initrd": "initrd",
        "kernel_cmdline": "kernel.cmdline", "qemu_pid": "qemu.pid", "qmp_sock": "qmp.sock",
        "serial_log": "serial.log", "serial_sock": "serial.sock", "ha_pid": "ha.pid",
        "ha_stdout_log": "ha.stdout.log", "ha_stderr_log": "ha.stderr.log", "ssh_config": "ssh.config",
        "ssh_sock": "ssh.sock", "win_done_installation": "win-done-installation", "swtpm_dir": "swtpm",
        "swtpm_sock": "swtpm.sock", "password_file": "windows-password",
    }
    for attr, filename in expected.items():
        assert getattr(inst, attr) == home / "w" / filename, attr


def test_create_instance_dir_is_private_and_complete(home: Path) -> None:
    inst = store.create_instance_dir("a", {"lima.yaml": b"x: 1\n", "lima-version": b"2.0.0"})
    assert mode(inst.dir) == 0o700
    assert mode(home) == 0o700
    assert inst.lima_yaml.read_bytes() == b"x: 1\n"
    assert mode(inst.lima_version) == 0o444
    assert [p.name for p in home.iterdir()] == ["a"]


def test_failed_create_leaves_nothing(home: Path) -> None:
    with pytest.raises(RuntimeError), store.creating("a") as tmp:
        (tmp / "lima.yaml").write_text("x: 1\n")
        (tmp / "disk").write_bytes(b"\0" * 10)
        assert tmp.name.startswith(".a.tmp-")
        raise RuntimeError("download failed")
    assert list(home.iterdir()) == []
    assert store.list_instances() == []


def test_create_refuses_existing_before_work(home: Path) -> None:
    make("a")
    with pytest.raises(InstanceError, match="already exists"), store.creating("a"):
        pytest.fail("body must not run")  # pragma: no cover


def test_create_refuses_invalid_and_too_long(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError):
        store.create_instance_dir("bad..name")
    monkeypatch.setenv("LIMAPY_HOME", "/tmp/" + "h" * 80)
    with pytest.raises(UsageError, match="too long"):
        store.create_instance_dir("abcdefghij")


def test_create_over_dir_holding_only_a_lock(home: Path) -> None:
    inst = store.Instance("a", store.instance_dir("a"))
    with store.lock(inst):
        pass
    assert inst.lock_file.exists() and not inst.lima_yaml.exists()
    made = make("a")
    assert made.lima_yaml.is_file()
    assert store.list_instances() == ["a"]
    assert [p.name for p in home.iterdir()] == ["a"]


def test_create_over_foreign_dir_is_refused(home: Path) -> None:
    (home / "a").mkdir(parents=True)
    (home / "a" / "notes.txt").write_text("mine")
    with pytest.raises(InstanceError, match="not a limapy instance"):
        make("a")
    assert (home / "a" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in home.iterdir()) == ["a"]


def test_list_instances_skips_reserved_and_incomplete(home: Path) -> None:
    make("b")
    make("a")
    (home / "_config").mkdir()
    (home / "_config" / "lima.yaml").write_text("")
    (home / ".a.tmp-123").mkdir()
    (home / ".a.tmp-123" / "lima.yaml").write_text("")
    (home / "nolimayaml").mkdir()
    assert store.list_instances() == ["a", "b"]


def test_list_instances_without_home(home: Path) -> None:
    assert store.list_instances() == []


def test_resolve_exact_prefix_ambiguous_unknown(home: Path) -> None:
    for n in ("windows", "win", "ubuntu", "ubuntu-2"):
        make(n)
    assert store.resolve("win").name == "win"  # exact beats prefix
    assert store.resolve("wind").name == "windows"
    assert store.resolve("windows", exact=True).dir == home / "windows"
    with pytest.raises(LimapyError, match="ambiguous") as ei:
        store.resolve("ubu")
    assert "ubuntu, ubuntu-2" in ei.value.message
    with pytest.raises(NotFoundError) as nf:
        store.resolve("fedora")
    assert "limapy create" in (nf.value.hint or "") and "limapy list" in (nf.value.hint or "")
    with pytest.raises(NotFoundError):
        store.resolve("wind", exact=True)
    for bad in ("", "../x", "_config", ".a"):
        with pytest.raises(UsageError):
            store.resolve(bad)


def test_pid_files_are_trusted_only_for_their_own_process(home: Path) -> None:
    inst = make("a")
    assert store.ha_pid(inst) is None
    decoy = sleeper("unrelated")
    try:
        # A live process that is not this instance's host agent: stale, the file removed, never signalled.
        inst.ha_pid.write_text(f"{decoy.pid}\n")
        assert store.ha_pid(inst) is None and not inst.ha_pid.exists()
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait()
    for text in (f"{DEAD_PID}\n", "garbage"):
        inst.ha_pid.write_text(text)
        assert store.ha_pid(inst) is None and not inst.ha_pid.exists()
    inst.ha_pid.write_text("")
    assert store.ha_pid(inst) is None and inst.ha_pid.exists()  # a pid file being written is left alone


def test_status(home: Path) -> None:
    inst = make("a")
    assert driver.status(inst) == store.STOPPED
    agent = sleeper("-m", "limapy", *pids.hostagent_args("a", inst.dir))
    qemu = sleeper("-name", "limapy-a", "-pidfile", str(inst.qemu_pid))
    other = sleeper("-name", "limapy-ab", "-pidfile", str(inst.dir.parent / "ab" / "qemu.pid"))
    try:
        inst.ha_pid.write_text(str(agent.pid))
        inst.qemu_pid.write_text(str(qemu.pid))
        assert driver.status(inst) == store.RUNNING
        inst.qemu_pid.write_text(str(other.pid))  # another instance's QEMU (a longer name) is not ours
        assert driver.status(inst) == store.BROKEN
        assert not inst.qemu_pid.exists()
        inst.qemu_pid.write_text(str(DEAD_PID))
        assert driver.status(inst) == store.BROKEN
        assert not inst.qemu_pid.exists()  # stale one cleaned
        inst.ha_pid.write_text(str(DEAD_PID))
        assert driver.status(inst) == store.STOPPED
        assert not inst.ha_pid.exists()
    finally:
        for p in (agent, qemu, other):
            p.kill()
            p.wait()
    inst.lima_yaml.unlink()
    assert driver.status(inst) == store.BROKEN


def test_lock_creates_private_dir_and_file(home: Path) -> None:
    inst = store.Instance("a", store.instance_dir("a"))
    with store.lock(inst):
        assert mode(inst.dir) == 0o700
        assert mode(inst.lock_file) == 0o600
        assert inst.lock_file.read_text().strip() == str(os.getpid())


def _hold(inst: store.Instance, acquired: threading.Event, release: threading.Event) -> None:
    with store.lock(inst):
        acquired.set()
        release.wait(10)


def test_lock_contention_fails_clearly(home: Path) -> None:
    inst = make("a")
    acquired, release = threading.Event(), threading.Event()
    t = threading.Thread(target=_hold, args=(inst, acquired, release))
    t.start()
    try:
        assert acquired.wait(5)
        start = time.monotonic()
        with pytest.raises(InstanceError, match="busy") as ei, store.lock(inst, timeout=0.3):
            pytest.fail("second holder must not enter")  # pragma: no cover
        assert time.monotonic() - start >= 0.3
        assert f"pid {os.getpid()}" in ei.value.message
    finally:
        release.set()
        t.join()
    with store.lock(inst, timeout=0):
        pass


def test_lock_waiter_gets_it_after_release(home: Path) -> None:
    inst = make("a")
    acquired, release = threading.Event(), threading.Event()
    t = threading.Thread(target=_hold, args=(inst, acquired, release))
    t.start()
    assert acquired.wait(5)
    threading.Timer(0.3, release.set).start()
    order: list[str] = []
    with store.lock(inst, timeout=5):
        order.append("second")
        assert release.is_set()
    t.join()
    assert order == ["second"]


def test_atomic_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "f"
    store.atomic_write(p, b"one")
    assert p.read_bytes() == b"one" and mode(p) == 0o600
    store.atomic_write(p, b"two", mode=0o644)
    assert p.read_bytes() == b"two" and mode(p) == 0o644

    def boom(*a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.atomic_write(p, b"three")
    assert p.read_bytes() == b"two"
    assert [x.name for x in tmp_path.iterdir()] == ["f"]


class FakeKeygen:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str | Path], **kw: object) -> subprocess.CompletedProcess[bytes]:
        args = [str(a) for a in argv]
        self.calls.append(args)
        assert args[0] == "ssh-keygen"
        if "-y" in args:
            return subprocess.CompletedProcess(args, 0, b"ssh-ed25519 AAAAregen limapy\n", b"")
        assert args[1:9] == ["-t", "ed25519", "-q", "-N", "", "-C", "limapy", "-f"]
        key = Path(args[9])
        key.write_text("PRIVATE")
        key.chmod(0o644)  # ensure_user_key must fix it
        key.with_name("user.pub").write_text("ssh-ed25519 AAAAtest limapy\n")
        return subprocess.CompletedProcess(args, 0, b"", b"")


def test_ensure_user_key_once_private(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKeygen()
    monkeypatch.setattr(proc, "run", fake)
    key, pub = store.ensure_user_key()
    assert key == home / "_config" / "user"
    assert pub == "ssh-ed25519 AAAAtest limapy"
    assert mode(key) == 0o600
    assert mode(home / "_config") == 0o700
    assert store.ensure_user_key() == (key, pub)
    assert len(fake.calls) == 1
    assert sorted(p.name for p in (home / "_config").iterdir()) == [".user.lock", "user", "user.pub"]
    (home / "_config" / "user.pub").unlink()
    assert store.ensure_user_key()[1] == "ssh-ed25519 AAAAregen limapy"
    assert fake.calls[-1][:2] == ["ssh-keygen", "-y"]
