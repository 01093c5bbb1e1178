"""Whether limapy talks to a person, and the one live line it shows them.

- `interactive(stream)`: live progress and prompts only then (`--tty`, `-y`, else isatty).
- `live(stream)`: a live line only where a terminal can redraw one: interactive and `TERM` is not `dumb`.
- `Live`: what every long command prints. Its lines are the same whether stderr is a terminal or a pipe (no
  timestamps, no markup: a message holding `[/x]` prints as it is); on a terminal one more line below them,
  redrawn in place, says what is going on now and for how long (a download: bytes, rate and ETA). No colour
  is used, so `NO_COLOR` has nothing to turn off; `color(stream)` says whether a caller may use one.
"""

from __future__ import annotations

import os
import sys
import time

ENV_TTY = "LIMAPY_TTY"  # "1" / "0": set by the global `--tty` / `--tty=false` / `-y` flags
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import IO

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_SPINNER = "|/-\\"
REFRESH = 0.2
CLEAR = "\r\x1b[2K"


def interactive(stream: object) -> bool:
    value = os.environ.get(ENV_TTY)
    if value in ("0", "1"):
        return value == "1"
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def dumb() -> bool:
    return os.environ.get("TERM", "") == "dumb"


def live(stream: object) -> bool:
    """A line redrawn in place needs a terminal that moves the cursor: not `TERM=dumb`."""
    return interactive(stream) and not dumb()


def color(stream: object) -> bool:
    """Colour only on a live terminal and without `NO_COLOR` (https://no-color.org: any non-empty value)."""
    return live(stream) and not os.environ.get("NO_COLOR")


def elapsed(seconds: float) -> str:
    """`7s`, `1m05s`, `1h02m03s`."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def _width(stream: object) -> int:
    try:
        return max(os.get_terminal_size(stream.fileno()).columns, 20)  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return 80


class Live:
    """Lines as on a pipe, and on a live terminal one status line below them with the time it has taken.

    `line(text)` prints a line (the same on a terminal and a pipe); `status(text)` sets what the live line says
    (a new text restarts its clock; `status(text, restart=False)` keeps it, for a counter that changes);
    `close()` removes the live line. Use as a context manager. Thread-safe: a ticker thread redraws the line."""

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = live(self.stream) if enabled is None else enabled
        import threading  # here, not at import: `term` is read on the hot path of every command

        self._lock = threading.Lock()
        self._text = ""
        self._since = time.monotonic()
        self._shown = False
        self._tick = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._threading = threading
        encoding = (getattr(self.stream, "encoding", None) or "").lower().replace("-", "")
        self._spinner = SPINNER if encoding == "utf8" else ASCII_SPINNER

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self, text: str) -> None:
        with self._lock:
            self._erase()
            self.stream.write(text + "\n")
            self._draw()
            self.stream.flush()

    def status(self, text: str, *, restart: bool = True) -> None:
        if not self.enabled:
            return
        with self._lock:
            if restart and text != self._text:
                self._since = time.monotonic()
            self._text = text
            self._erase()
            self._draw()
            self.stream.flush()
        if self._thread is None:
            self._thread = self._threading.Thread(target=self._ticker, name="limapy-live", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        with self._lock:
            self._erase()
            self._text = ""
            self.stream.flush()

    def _ticker(self) -> None:
        while not self._stop.wait(REFRESH):
            with self._lock:
                self._tick += 1
                self._erase()
                self._draw()
                self.stream.flush()

    def _erase(self) -> None:
        if self._shown:
            self.stream.write(CLEAR)
            self._shown = False

    def _draw(self) -> None:
        if not (self.enabled and self._text):
            return
        spin = self._spinner[self._tick % len(self._spinner)]
        text = f"{spin} {self._text} ({elapsed(time.monotonic() - self._since)})"
        width = _width(self.stream) - 1  # never wrap: a wrapped line cannot be redrawn in place
        if len(text) > width:
            text = text[: width - 1] + "…" if self._spinner is SPINNER else text[:width]
        self.stream.write(text)
        self._shown = True
