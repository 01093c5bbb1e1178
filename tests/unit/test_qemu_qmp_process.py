"""QMP helpers, swtpm and process logic without starting anything."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, cast

import pytest

from limapy.base.errors import LimapyError
from limapy.driver import load
from limapy.driver.qemu.machine import QemuMachine
from limapy.driver.sidecars import Supervisor
from limapy.instance import store
from limapy.qemu import tpm
from limapy.qemu.qmp import QMP, ppm_to_png


def test_ppm_to_png_roundtrip() -> None:
    pixels = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    png = ppm_to_png(b"P6\n# c\n2 2\n255\n" + pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", png[16:24]) == (2, 2)
    idat_len = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert raw == b"\x00" + pixels[:6] + b"\x00" + pixels[6:]


class FakeQMP:
    """The host agent's monitor: queued events, a status, and what was asked of it."""

    def __init__(self, status: str, events: list[str]) -> None:
        self.status = status
        self.queued = [{"event": e} for e in events]
        self.asked: list[str] = []

    def events(self) -> list[dict[str, Any]]:
        out, self.queued = self.queued, []
        return out

    def query_status(self) -> str:
        self.asked.append("query-status")
        return self.status

    def quit(self) -> None:
        self.asked.append("quit")

    def close(self) -> None:
        pass


def machine(tmp_path: Path, qmp: FakeQMP) -> QemuMachine:
    from tests.procs import sleeper

    inst = store.Instance("vm", tmp_path)
    m = QemuMachine(inst, sleeper("-name", "limapy-vm"), Supervisor())
    m.qmp = cast(QMP, qmp)
    return m


def test_internal_error_after_stop_event_stops_qemu(tmp_path: Path) -> None:
    (tmp_path / "qmp.sock").write_text("")
    m = machine(tmp_path, FakeQMP("internal-error", ["RESUME", "STOP"]))
    with pytest.raises(LimapyError) as e:
        m.check()
    assert "internal error" in e.value.message and "LIMAPY_QEMU_ACCEL=tcg" in (e.value.hint or "")
    assert not m.alive() and not (tmp_path / "qmp.sock").exists()


def test_no_stop_event_asks_nothing(tmp_path: Path) -> None:
    """Events, not polling: without a STOP event QEMU's status is not queried at all."""
    qmp = FakeQMP("internal-error", ["RESET"])
    m = machine(tmp_path, qmp)
    try:
        m.check()
        assert qmp.asked == [] and m.alive()
        qmp.status, qmp.queued = "paused", [{"event": "STOP"}]
        m.check()  # paused by someone: not an error
        assert qmp.asked == ["query-status"] and m.alive()
    finally:
        m.child.kill()
        m.child.wait()


def test_swtpm_missing_message() -> None:
    with pytest.raises(LimapyError) as e:
        tpm.find_swtpm(which=lambda _n: None)
    assert "apt install swtpm" in (e.value.hint or "") and "tpm: false" in (e.value.hint or "")


def test_swtpm_argv(tmp_path: Path) -> None:
    inst = store.Instance("vm", tmp_path)
    argv = tpm.swtpm_argv("swtpm", inst.swtpm_dir, inst.swtpm_sock, inst.swtpm_pid, inst.swtpm_log)
    assert argv[:3] == ["swtpm", "socket", "--tpm2"]
    assert f"type=unixio,path={tmp_path / 'swtpm.sock'}" in argv and "--terminate" in argv


def test_qemu_pid_only_for_this_instance(tmp_path: Path) -> None:
    from tests.procs import sleeper

    qemu = load("qemu")
    inst = store.Instance("web", tmp_path / "web")
    inst.dir.mkdir()
    assert qemu.pid(inst) is None
    p = sleeper("-name", "limapy-web", "-pidfile", str(inst.qemu_pid))
    try:
        inst.qemu_pid.write_text(f"{p.pid}\n")
        assert qemu.pid(inst) == p.pid
        other = store.Instance("we", tmp_path / "we")  # a prefix of the name is another instance
        other.dir.mkdir()
        other.qemu_pid.write_text(f"{p.pid}\n")
        assert qemu.pid(other) is None
        elsewhere = store.Instance("web", tmp_path / "home2" / "web")  # the same name in another LIMAPY_HOME
        elsewhere.dir.mkdir(parents=True)
        elsewhere.qemu_pid.write_text(f"{p.pid}\n")
        assert qemu.pid(elsewhere) is None
    finally:
        p.kill()
        p.wait()


def test_send_key_event_shape() -> None:
    sent: list[tuple[str, Any]] = []

    class Rec(QMP):
        def __init__(self) -> None:
            pass

        def execute(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
            sent.append((cmd, args))
            return {}

    Rec().send_key("ret")
    cmd, args = sent[0]
    assert cmd == "input-send-event"
    assert [e["data"]["down"] for e in args["events"]] == [True, False]
    assert args["events"][0]["data"]["key"] == {"type": "qcode", "data": "ret"}
