"""Run a command on a pseudo-terminal, as a person at a terminal would, and read back what the screen shows.

`run(argv)` gives the raw bytes the program wrote to its terminal; `screen(raw)` replays them as a terminal
does for the two controls limapy's live line uses (`\\r` and erase-line `ESC [2K`), giving the lines left on
the screen, each as the final state of that line."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Mapping, Sequence

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None = None, timeout: float = 120, cols: int = 120
) -> tuple[int, str]:
    """(exit code, everything written to the terminal) of `argv` with stdin, stdout and stderr on a new pty."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    p = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd,
                         start_new_session=True)  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                break
        else:
            p.kill()
            raise TimeoutError(f"{argv} did not finish in {timeout} s: {b''.join(chunks)[-2000:]!r}")
        rc = p.wait(timeout=10)
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
    return rc, b"".join(chunks).decode(errors="replace")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows after `raw`: `\\r` returns to the line's start, `ESC [2K` erases it."""
    lines: list[str] = []
    current: list[str] = []
    col = 0
    i = 0
    text = raw.replace("\r\n", "\n")
    while i < len(text):
        m = ANSI.match(text, i)
        if m:
            if m.group() == "\x1b[2K":
                current, col = [], 0
            i = m.end()
            continue
        c = text[i]
        if c == "\n":
            lines.append("".join(current).rstrip())
            current, col = [], 0
        elif c == "\r":
            col = 0
        else:
            if col < len(current):
                current[col] = c
            else:
                current.append(c)
            col += 1
        i += 1
    if "".join(current).strip():
        lines.append("".join(current).rstrip())
    return lines
