"""The Windows first logon's progress lines, as the host reads them from the serial console.

The first-logon script (limapy/guest/windows/templates/first_logon.ps1, `Send-Phase`) writes one line per step
to COM1 and to C:\\ProgramData\\Lima\\limapy-phases.txt:

    LIMAPY-PHASE openssh: installing OpenSSH
    LIMAPY-FAILED openssh: msiexec failed with exit code 1603 (the whole log: C:\\ProgramData\\Lima\\first-logon.log)
    LIMAPY-DONE done: first logon finished

QEMU logs the serial port to serial.log (x86_64: the 16550 UART Windows names COM1); the host agent feeds what
is new here and shows `[windows] installing OpenSSH`; a FAILED line ends the wait with the step and the error.
The same lines come from the phases file over SSH once it is up (Windows on Arm has no COM1, see docs/windows.md).
The guest is not trusted with the terminal: control characters are dropped and lines are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"LIMAPY-(PHASE|FAILED|DONE) ([A-Za-z0-9_.-]{1,40}): ?([^\r\n]{0,400})")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
MAX_PENDING = 4096


@dataclass(frozen=True)
class Event:
    kind: str  # "PHASE" | "FAILED" | "DONE"
    step: str
    text: str


def parse_line(line: str) -> Event | None:
    m = _LINE.search(line)
    if m is None:
        return None
    return Event(m.group(1), m.group(2), _UNPRINTABLE.sub(" ", m.group(3)).strip())


class Reader:
    """Complete lines out of a stream of serial text; each event once (a resumed first logon repeats nothing it
    has done, but the phases file read over SSH repeats what COM1 said)."""

    def __init__(self) -> None:
        self.pending = ""
        self.seen: set[Event] = set()

    def feed(self, text: str) -> list[Event]:
        self.pending += text.replace("\x00", "")
        *lines, self.pending = re.split(r"\r\n|\r|\n", self.pending)
        self.pending = self.pending[-MAX_PENDING:]
        return self._new(lines)

    def lines(self, lines: list[str]) -> list[Event]:
        """Whole lines from elsewhere (the phases file)."""
        return self._new(lines)

    def _new(self, lines: list[str]) -> list[Event]:
        out = []
        for line in lines:
            event = parse_line(line)
            if event is not None and event not in self.seen:
                self.seen.add(event)
                out.append(event)
        return out


def failure_message(event: Event, serial_log: str) -> str:
    """The one line `limapy start` ends with when the first logon failed."""
    return f"the Windows first logon failed at step `{event.step}`: {event.text} (the serial console: {serial_log})"
