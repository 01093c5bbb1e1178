"""Progress of a download, as lines (the same on a terminal and a pipe) and, on a terminal, one live line.

Nothing is printed until bytes move: a cache hit shows no download line. The first report prints
`downloading LABEL: URL`; then a line every 10 % (or 10 s) on a pipe, and on a terminal the live line
(bytes, percentage, rate, ETA) with the last of those lines once it is done. Sizes as Lima's progress bar
prints them (MiB, GiB: limapy.base.units.format_transfer).
"""

from __future__ import annotations

import time
from typing import IO

from limapy.base.units import format_transfer

#: A rate over the last few seconds, so the ETA follows a connection that slows down or speeds up.
RATE_WINDOW = 5.0


class ProgressReporter:
    """A progress callback. Use as `with ProgressReporter("image", url) as p: fetch(url, progress=p, say=p.say)`.

    A resumed download starts at the bytes already there; the first report says how many. `stage` is what the
    header says is happening (the download module sets it to "decompressing" before it decompresses)."""

    def __init__(self, label: str, url: str = "", stream: IO[str] | None = None) -> None:
        from limapy.base.term import Live

        self.label = label
        self.url = url
        self.stage = "downloading"
        self.live = Live(stream)
        self._started = ""  # the stage whose header was printed
        self._last_pct = -10
        self._last_time = 0.0
        self._last_line = ""
        self._printed_last = False
        self._samples: list[tuple[float, int]] = []

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.close()
        if self.live.enabled and self._last_line and not self._printed_last and exc[0] is None:
            self.live.line(self._last_line)  # the pipe's last line, once the live line is gone

    def _header(self) -> None:
        if self._started != self.stage:
            self._started = self.stage
            self._samples.clear()
            where = f": {self.url}" if self.url and self.stage == "downloading" else ""
            self.live.line(f"{self.stage} {self.label}{where}")

    def say(self, message: str) -> None:
        self._header()
        self.live.line(f"{self.label}: {message}")

    def rate(self, now: float, done: int) -> float | None:
        """Bytes per second over the last RATE_WINDOW seconds (None until there are two samples)."""
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.pop(0)
        t0, d0 = self._samples[0]
        return (done - d0) / (now - t0) if now > t0 and done >= d0 else None

    def text(self, done: int, total: int | None, rate: float | None = None) -> str:
        """`12.34 MiB / 330.00 MiB (3%)`, and with a rate `..., 10.52 MiB/s, ETA 30s`."""
        from limapy.base.term import elapsed

        out = f"{self.label}: {format_transfer(done)}"
        if total:
            out += f" / {format_transfer(total)} ({done * 100 // total}%)"
        if rate:
            out += f", {format_transfer(rate)}/s"
            if total and total > done:
                out += f", ETA {elapsed((total - done) / rate)}"
        return out

    def __call__(self, done: int, total: int | None) -> None:
        self._header()
        now = time.monotonic()
        if self.live.enabled:
            self.live.status(self.text(done, total, self.rate(now, done)), restart=False)
        pct = done * 100 // total if total else -1
        line = self.text(done, total)
        self._last_line, self._printed_last = line, False
        if self._last_time:
            if total and pct < self._last_pct + 10 and done != total and now - self._last_time < 10:
                return
            if not total and now - self._last_time < 10:
                return
        self._last_pct, self._last_time = pct, now
        if not self.live.enabled:  # a terminal has the live line instead
            self.live.line(line)
            self._printed_last = True
