"""QMP helpers, swtpm and process logic without starting anything."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, cast

import pytest

from limapy.errors import LimapyError
from limapy.qemu import process, tpm
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
    def __init__(self, status: str) -> None:
        self.status = status

    def query_status(self) -> str:
        return self.status


def test_internal_error_is_reported_with_override(tmp_path: Path) -> None:
    (tmp_path / "qmp.sock").write_text("")
    with pytest.raises(LimapyError) as e:
        process.watch_internal_error(tmp_path, qmp=cast(QMP, FakeQMP("internal-error")))
    assert "internal error" in e.value.message and "LIMAPY_QEMU_ACCEL=tcg" in (e.value.hint or "")
    assert not (tmp_path / "qmp.sock").exists()


def test_running_is_fine(tmp_path: Path) -> None:
    process.watch_internal_error(tmp_path, qmp=cast(QMP, FakeQMP("running")))


def test_swtpm_missing_message() -> None:
    with pytest.raises(LimapyError) as e:
        tpm.find_swtpm(which=lambda _n: None)
    assert "apt install swtpm" in (e.value.hint or "") and "tpm: false" in (e.value.hint or "")


def test_swtpm_argv(tmp_path: Path) -> None:
    argv = tpm.swtpm_argv("swtpm", tmp_path)
    assert argv[:3] == ["swtpm", "socket", "--tpm2"]
    assert f"type=unixio,path={tmp_path / 'swtpm.sock'}" in argv and "--terminate" in argv


def test_qemu_pid_only_for_this_instance(tmp_path: Path) -> None:
    from tests.procs import sleeper

    inst = tmp_path / "web"
    inst.mkdir()
    assert process.qemu_pid(inst) is None
    p = sleeper("-name", "limapy-web")
    try:
        (inst / "qemu.pid").write_text(f"{p.pid}\n")
        assert process.qemu_pid(inst) == p.pid
        other = tmp_path / "we"  # a prefix of the name is another instance
        other.mkdir()
        (other / "qemu.pid").write_text(f"{p.pid}\n")
        assert process.qemu_pid(other) is None
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
