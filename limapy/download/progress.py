"""Progress of a download: a rich bar on a TTY, otherwise a plain line every 10 % (or 10 s)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class ProgressReporter:
    """A progress callback. Use as `with ProgressReporter("ubuntu.img") as p: fetch(url, digest=d, progress=p)`.

    A resumed download starts at the bytes already there; the first report says how many."""

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self._rich: Any = None
        self._task: Any = None
        self._last_pct = -10
        self._last_time = 0.0
        self._first = True

    def __enter__(self) -> ProgressReporter:
        from limapy.term import interactive

        if interactive(self.stream):
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self._rich = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def say(self, message: str) -> None:
        if self._rich is not None:
            self._rich.console.log(f"{self.label}: {message}")
        else:
            print(f"{self.label}: {message}", file=self.stream, flush=True)

    def __call__(self, done: int, total: int | None) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=done, total=total)
            return
        now = time.monotonic()
        pct = done * 100 // total if total else -1
        if not self._first:
            if total and pct < self._last_pct + 10 and done != total and now - self._last_time < 10:
                return
            if not total and now - self._last_time < 10:
                return
        self._first = False
        self._last_pct, self._last_time = pct, now
        size = f"{done >> 20} MiB" + (f" of {total >> 20} MiB ({pct}%)" if total else "")
        print(f"{self.label}: {size}", file=self.stream, flush=True)
