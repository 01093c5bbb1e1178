"""The live display's parts: `shell` into a guest that is still booting says so and waits; the download
reporter prints nothing until bytes move, sizes as Lima's bar (MiB/GiB), a line every 10 % on a pipe and a live
line on a terminal; `stop` and the start display pass messages through verbatim."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

from limapy import driver
from limapy.base.errors import LimapyError
from limapy.base.term import Live, elapsed
from limapy.base.units import format_transfer
from limapy.download.progress import ProgressReporter
from limapy.instance import store
from limapy.ops import shell as shell_ops


def event(phase: str, message: str = "", **status: object) -> str:
    return json.dumps({"time": "t", "status": status, "phase": phase, "message": message}) + "\n"


@pytest.fixture
def booting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> store.Instance:
    inst = store.Instance("web", tmp_path / "web")
    inst.dir.mkdir()
    inst.ha_stdout_log.write_text(event("preparing") + event("firmware") + event("booting", running=False))
    monkeypatch.setattr(driver, "status", lambda i: store.RUNNING)
    monkeypatch.setattr(store, "ha_pid", lambda i: 4242)
    return inst


def test_booting_phase_reads_the_host_agents_last_event(booting: store.Instance) -> None:
    assert shell_ops.booting_phase(booting) == "booting"
    with open(booting.ha_stdout_log, "a") as f:
        f.write(event("ready", running=True) + event("ready", portForward={"type": "forwarding"}))
    assert shell_ops.booting_phase(booting) is None  # events after `ready` keep its phase
    booting.ha_stdout_log.unlink()
    assert shell_ops.booting_phase(booting) is None  # nothing to tell from: ssh says what it finds


def test_shell_waits_for_a_booting_guest(booting: store.Instance, capsys: pytest.CaptureFixture[str]) -> None:
    def ready_soon() -> None:
        time.sleep(0.6)
        with open(booting.ha_stdout_log, "a") as f:
            f.write(event("ssh") + event("ready", running=True))

    t = threading.Thread(target=ready_soon)
    t.start()
    began = time.monotonic()
    shell_ops.require_running(booting)
    t.join()
    assert time.monotonic() - began >= 0.5
    err = capsys.readouterr().err
    assert err == "limapy: instance `web` is not ready yet (booting): waiting for it to be ready\n"


def test_shell_stops_waiting_when_the_start_fails(booting: store.Instance) -> None:
    with open(booting.ha_stdout_log, "a") as f:
        f.write(event("exiting", "error", exiting=True, errors=["QEMU exited: no KVM"]))
    with pytest.raises(LimapyError, match="stopped before it was ready: QEMU exited: no KVM"):
        shell_ops.require_running(booting)


def test_shell_waits_only_so_long(booting: store.Instance) -> None:
    with pytest.raises(LimapyError, match=r"was not ready after 0 s \(still: booting\)"):
        shell_ops.wait_until_ready(booting, "booting", timeout=0.3)


def test_transfer_sizes_as_limas_progress_bar() -> None:
    assert [format_transfer(n) for n in (0, 1023, 1024, 5 << 20, (3 << 30) // 2, 1 << 40)] == [
        "0 B", "1023 B", "1.00 KiB", "5.00 MiB", "1.50 GiB", "1.00 TiB"]  # fmt: skip
    assert [elapsed(s) for s in (0, 59.9, 65, 3723)] == ["0s", "59s", "1m05s", "1h02m03s"]


class Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_download_progress_on_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIMAPY_TTY", raising=False)
    out = io.StringIO()
    with ProgressReporter("image", "https://example.org/x.img", stream=out) as p:
        pass
    assert out.getvalue() == ""  # no bytes moved (a cache hit): nothing at all
    with ProgressReporter("image", "https://example.org/x.img", stream=out) as p:
        for done in range(0, 101 << 20, 1 << 20):
            p(done, 100 << 20)
    lines = out.getvalue().splitlines()
    assert lines[0] == "downloading image: https://example.org/x.img"
    assert lines[1] == "image: 0 B / 100.00 MiB (0%)" and lines[-1] == "image: 100.00 MiB / 100.00 MiB (100%)"
    assert len(lines) == 12  # a line every 10 %


def test_download_progress_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIMAPY_TTY", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = Tty()
    with ProgressReporter("image", "https://example.org/x.img", stream=out) as p:
        p.say("resuming: 1 MiB already downloaded")
        for done in range(1 << 20, 201 << 20, 8 << 20):
            p(done, 200 << 20)
            time.sleep(0.01)
    raw = out.getvalue()
    assert raw.startswith("downloading image: https://example.org/x.img\nimage: resuming: 1 MiB already downloaded\n")
    assert "MiB/s, ETA" in raw and "\x1b[2K" in raw  # the live line: rate and time left
    final = [ln.rsplit("\x1b[2K", 1)[-1] for ln in raw.split("\n") if ln]
    assert final[-1] == "image: 193.00 MiB / 200.00 MiB (96%)"  # the pipe's last line stays once it is done


def test_live_lines_are_verbatim() -> None:
    out = Tty()
    with Live(out, enabled=True) as live:
        live.line("[preparing] a [/x] b [bold]c")
        live.status("preparing")
    assert out.getvalue().startswith("[preparing] a [/x] b [bold]c\n⠋ preparing (0s)")
    assert out.getvalue().endswith("\r\x1b[2K")  # the live line is gone when it closes
