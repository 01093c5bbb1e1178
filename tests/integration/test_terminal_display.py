"""What a person at a terminal sees, on a real pseudo-terminal (tests/ptyrun.py): `limapy start` of a template
whose image comes over HTTP, through the host agent and the toy driver (tests/toydriver.py: no QEMU).

- the phase lines are printed literally (`[preparing] ...`, not swallowed as markup), with no timestamp and no
  source link, and they are the very lines a pipe gets;
- below them one live line (redrawn in place) names the phase; a download shows bytes in MiB as Lima's bar does;
- a cache hit prints no download line;
- a message holding `[/x]` (rich's closing tag, which used to crash the display) prints verbatim;
- `stop` says it waits for the guest to power off.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import ptyrun

REPO = Path(__file__).resolve().parents[2]
MESSAGE = "all set [/x] [bold]not bold[/bold] [link=file:///etc]x[/link]"
TIMESTAMP = re.compile(r"\b\d\d:\d\d:\d\d\b|\[\d\d/\d\d/\d\d")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Path, str]]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    d = Path(tempfile.mkdtemp(prefix="lptty-", dir="/tmp"))
    www = d / "www"
    www.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(www / "img.qcow2"), "64M"], check=True)
    with open(www / "img.qcow2", "ab") as f:  # bytes to move: a download that takes more than one report
        f.write(os.urandom(3 << 20))
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    template = d / "t.yaml"
    url = f"http://127.0.0.1:{server.server_address[1]}/img.qcow2"
    template.write_text(f"images:\n- location: {json.dumps(url)}\n  arch: x86_64\narch: x86_64\nmounts: []\n"
                        f"message: {json.dumps(MESSAGE)}\n")  # fmt: skip
    yield d, url
    server.shutdown()
    for name in ("a", "b", "c"):
        subprocess.run([sys.executable, "-m", "limapy", "stop", "-f", name], env=_env(d), capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def _env(d: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIMAPY_TTY", "NO_COLOR", "COLUMNS")}
    env.update(LIMAPY_HOME=str(d / "home"), LIMAPY_CACHE_DIR=str(d / "cache"), PYTHONPATH=str(REPO),
               LIMAPY_DRIVER_MODULES="toy=tests.toydriver", LIMAPY_DRIVER="toy", TERM="xterm-256color",
               PYTHONIOENCODING="utf-8", **extra)  # fmt: skip
    return env


def on_terminal(d: Path, *args: str) -> tuple[int, str, list[str]]:
    rc, raw = ptyrun.run([sys.executable, "-m", "limapy", *args], env=_env(d), cwd=str(REPO))
    return rc, raw, ptyrun.screen(raw)


def test_start_on_a_terminal(served: tuple[Path, str]) -> None:
    d, url = served
    rc, raw, lines = on_terminal(d, "start", "--name", "a", str(d / "t.yaml"))
    assert rc == 0, raw
    for phase in ("[preparing] reading the configuration", "[booting] guest booting", "[ready] ready"):
        assert phase in lines, (phase, lines)
    assert MESSAGE in lines, lines  # verbatim: no markup read in it, and no crash
    assert f"downloading image: {url}" in lines, lines
    assert any(re.fullmatch(r"image: \d+\.\d\d MiB / \d+\.\d\d MiB \(100%\)", ln) for ln in lines), lines
    assert not [ln for ln in lines if TIMESTAMP.search(ln) or ".py:" in ln], lines
    assert "\x1b[2K" in raw and re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (preparing|firmware|booting)", raw), raw  # the live line
    assert lines[-1] == "READY. Run `limapy shell a` to open a shell.", lines

    # the same lines as on a pipe
    cp = subprocess.run([sys.executable, "-m", "limapy", "start", "--name", "c", str(d / "t.yaml")], env=_env(d),
                        cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert "\x1b" not in cp.stderr
    piped = [ln for ln in cp.stderr.splitlines() if ln.startswith("[")]
    assert piped and piped == [ln for ln in lines if ln.startswith("[")]


def test_a_cache_hit_shows_no_download_line(served: tuple[Path, str]) -> None:
    d, _ = served
    if not (d / "home" / "a").exists():
        on_terminal(d, "create", "--name", "a", str(d / "t.yaml"))
    rc, raw, lines = on_terminal(d, "create", "--name", "b", str(d / "t.yaml"))
    assert rc == 0, raw
    assert "download" not in raw and "MiB" not in raw, lines
    assert lines == [f"created `b` in {d / 'home' / 'b'}", "Run `limapy start b` to start the instance."], lines


def test_stop_says_it_waits_for_the_guest(served: tuple[Path, str]) -> None:
    d, _ = served
    if not (d / "home" / "a" / "ha.pid").exists():
        assert on_terminal(d, "start", "--name", "a", str(d / "t.yaml"))[0] == 0
    rc, raw, lines = on_terminal(d, "stop", "a")
    assert rc == 0, raw
    assert lines[0].startswith("waiting for `a` to power off"), lines
    assert lines[-1] == "stopped `a`", lines
    rc, raw, lines = on_terminal(d, "stop", "a")  # limactl: not running is an error
    assert rc == 1 and lines[0] == "limapy: instance `a` is not running: expected status `Running`, got `Stopped`"
