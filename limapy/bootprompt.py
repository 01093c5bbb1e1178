"""When to press a key for a Windows install ISO's "Press any key to boot from CD or DVD", and when to stop.

A missed prompt is fatal for an unattended install: the firmware moves on to its next boot option (the
empty disk, PXE, the UEFI shell) and nothing continues. A key too many is harmless only while the boot
program is still waiting; after the first reboot it would boot the install media again. So the decisions
here follow what the guest shows, not a clock:

- The firmware's console reaches the serial port (OVMF and AAVMF put it in ConOut), so the prompt text is
  read from serial.log. Once it appears, a key is pressed every `PRESS_INTERVAL` until the prompt is left:
  other output follows, or its dots stop for `QUIET` seconds.
- If the firmware then falls through to another boot option anyway ("BdsDxe: loading Boot...", PXE, the
  UEFI shell) within `MISS_GRACE` seconds, the prompt was missed: the guest is reset and watched again, at
  most `MAX_ATTEMPTS` times.
- Setup writing the disk (`SETUP_WRITES` bytes) is the evidence that Setup started; pressing ends there
  in any case, and so does everything after `WINDOW` seconds.
- Where the firmware writes nothing to the serial port (legacy BIOS prints on the screen only), keys are
  pressed blindly every `BLIND_INTERVAL` from `BLIND_AFTER` seconds on, until Setup writes the disk.

The class is pure (text, byte counts and times in; actions out) so the rules are unit-tested; the host
agent reads the files and sends the keys through QMP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROMPT = "Press any key to boot from"
#: What the firmware prints when it moves on from a boot option to the next one, or gives up.
FALL_THROUGH = re.compile(
    r"BdsDxe: (?:loading|starting|failed to load) Boot|Start PXE over|UEFI Interactive Shell|Shell> "
)
_PROMPT_WORDS = re.compile(r"^[^.\r\n]*")
_ESCAPES = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Za-z0-9]|[\x00\x07]")

POLL = 0.2  # how often the host agent looks (seconds)
PRESS_INTERVAL = 0.25
QUIET = 2.5
MISS_GRACE = 60.0
BLIND_AFTER = 20.0
BLIND_INTERVAL = 0.5
SETUP_WRITES = 1 << 20
WINDOW = 15 * 60.0
MAX_ATTEMPTS = 3


def clean(text: str) -> str:
    """Serial output without terminal escapes and NULs (OVMF's console sends both)."""
    return _ESCAPES.sub("", text)


@dataclass(frozen=True)
class Action:
    press: bool = False
    reset: bool = False
    done: bool = False
    #: One line for the phase display when something changed, else None.
    message: str | None = None
    #: The prompt was answered (or Setup started) rather than given up on.
    answered: bool = False


class BootPrompt:
    """Feed it what is new on the serial console and the disk's allocated bytes; do what it says."""

    def __init__(self, start: float, *, disk_base: int = 0) -> None:
        self.start = start
        self.disk_base = disk_base
        self.attempt = 1
        self.text = ""  # serial output of the current attempt, cleaned
        self.prompt_at: int | None = None  # index in self.text where the prompt starts
        self.last_growth = start
        self.last_press = 0.0
        self.presses = 0  # presses while the prompt was showing (this attempt)
        self.answered_at: float | None = None
        self.finished = False

    def _end(self, message: str, *, answered: bool) -> Action:
        self.finished = True
        return Action(done=True, message=message, answered=answered)

    def feed(self, new_serial: str, disk_allocated: int, now: float) -> Action:
        if self.finished:
            return Action(done=True)
        if new_serial:
            self.text += clean(new_serial)
            self.last_growth = now
        if disk_allocated - self.disk_base >= SETUP_WRITES:
            answered = f"answered the boot prompt ({PROMPT} CD or DVD); " if self.prompt_at is not None else ""
            return self._end(f"{answered}Windows Setup started (it is writing the disk)", answered=True)
        if now - self.start > WINDOW:
            return self._end(
                f"no sign of Windows Setup after {WINDOW / 60:.0f} minutes; stopped pressing keys "
                "(see `limapy screenshot`)",
                answered=False,
            )
        if self.prompt_at is None:
            found = self.text.find(PROMPT)
            if found >= 0:
                self.prompt_at = found
                return self._press(now, "the install media asks to press a key: pressing Enter")
            if not self.text.strip() and now - self.start >= BLIND_AFTER:
                if now - self.last_press >= BLIND_INTERVAL:
                    self.last_press = now
                    first = self.presses == 0
                    self.presses += 1
                    msg = "nothing on the serial console: pressing Enter until Setup writes the disk" if first else None
                    return Action(press=True, message=msg)
            return Action()
        # What follows the prompt's words ("... CD or DVD"): its dots, then whatever comes next.
        after = _PROMPT_WORDS.sub("", self.text[self.prompt_at + len(PROMPT) :], count=1)
        if FALL_THROUGH.search(after):
            if self.answered_at is None or now - self.answered_at <= MISS_GRACE:
                return self._missed(now)
            return Action()  # long after the answer: Setup's own restart, not a missed prompt
        if self.answered_at is not None:
            return Action()
        if self.presses and after.replace(".", "").strip():
            return self._answered(now)  # the boot program printed something else: it has gone on
        if self.presses and now - self.last_growth >= QUIET:
            return self._answered(now)  # its dots stopped: it has gone on
        return self._press(now, None)

    def _press(self, now: float, message: str | None) -> Action:
        if now - self.last_press < PRESS_INTERVAL:
            return Action(message=message)
        self.last_press = now
        self.presses += 1
        return Action(press=True, message=message)

    def _answered(self, now: float) -> Action:
        self.answered_at = now
        return Action(message=f"answered the boot prompt ({PROMPT} CD or DVD)", answered=True)

    def _missed(self, now: float) -> Action:
        if self.attempt >= MAX_ATTEMPTS:
            return self._end(
                f"the boot prompt was missed {self.attempt} times; the firmware went on to another boot option "
                "(see serial.log; `limapy stop` and start again to retry)",
                answered=False,
            )
        self.attempt += 1
        self.text = ""
        self.prompt_at = None
        self.presses = 0
        self.answered_at = None
        self.last_growth = now
        return Action(
            reset=True,
            message=f"the boot prompt was missed (the firmware moved on); resetting the guest, attempt "
            f"{self.attempt} of {MAX_ATTEMPTS}",
        )
