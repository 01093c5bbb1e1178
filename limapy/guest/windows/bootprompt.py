"""When to press a key for a Windows install ISO's "Press any key to boot from CD or DVD", and when to stop.

A missed prompt is fatal for an unattended install: the firmware moves on to its next boot option (the
empty disk, PXE, the UEFI shell) and nothing continues. A key too many is harmless only until Setup's first
reboot; after it a key would boot the install media again. So:

- Keys are pressed from the moment the firmware starts the install media (its boot line on the serial
  console: OVMF's `BdsDxe: starting Boot0001 "UEFI QEMU DVD-ROM ..."`, AAVMF's `... "UEFI QEMU QEMU USB
  HARDDRIVE ..."`; the install ISO is boot option 0), or `BLIND_AFTER` seconds after launch when no such line
  comes (legacy BIOS prints on the screen only), every `BLIND_INTERVAL`, whatever else the serial console
  says: the boot program's prompt need not reach it (issue 23). Installers that run real installs in their
  CI do the same (dockur/windows presses from the firmware's DVD boot line; docs/windows.md).
- When the prompt does show on the serial console (OVMF and AAVMF mirror ConOut there), the presses stop as
  soon as it is left: other output follows it, or its dots stop for `QUIET` seconds.
- Setup writing the disk (`SETUP_WRITES` bytes) is the evidence that Setup started; pressing ends there,
  and so does everything after `WINDOW` seconds.
- If the firmware goes on to another boot option (`BdsDxe: loading Boot...`, PXE, the UEFI shell) within
  `MISS_GRACE` seconds of starting the install media, the key came too late: the guest is reset and watched
  again, at most `MAX_ATTEMPTS` times. Later than that it is a restart: no key is sent any more.

The class is pure (text, byte counts and times in; actions out) so the rules are unit-tested; the host agent
reads the files and sends the keys through QMP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROMPT = "Press any key to boot from"
#: The firmware starting a boot option; the first one of an attempt is the install media (bootindex 0).
CD_BOOT = re.compile(r"BdsDxe: starting Boot[0-9A-Fa-f]{4}\b|Booting from (?:DVD/CD|CD-Rom)")
#: What the firmware prints when it moves on from a boot option to the next one, or gives up.
FALL_THROUGH = re.compile(
    r"BdsDxe: (?:loading|starting|failed to load|failed to start) Boot|Start PXE over|UEFI Interactive Shell|Shell> "
)
_PROMPT_WORDS = re.compile(r"^[^.\r\n]*")
_ESCAPES = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Za-z0-9]|[\x00\x07]")

POLL = 0.2  # how often the host agent looks (seconds)
PRESS_INTERVAL = 0.25  # while the prompt shows on the serial console
BLIND_INTERVAL = 0.5  # while it does not
QUIET = 2.5
MISS_GRACE = 60.0
BLIND_AFTER = 20.0
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

    poll = POLL

    def __init__(self, start: float, *, disk_base: int = 0) -> None:
        self.start = start
        self.disk_base = disk_base
        self.attempt = 1
        self.finished = False
        self._new_attempt(start)

    def _new_attempt(self, now: float) -> None:
        self.attempt_start = now
        self.text = ""  # serial output of the current attempt, cleaned
        self.cd_at: int | None = None  # index in self.text just after the install media's boot line
        self.cd_time = now
        self.pressing = False
        self.prompt_at: int | None = None  # index in self.text where the prompt starts
        self.last_growth = now
        self.last_press = float("-inf")
        self.presses = 0
        self.answered_at: float | None = None

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
            seen = self.prompt_at is not None and self.presses
            how = f"answered the boot prompt ({PROMPT} CD or DVD); " if seen else ""
            return self._end(f"{how}Windows Setup started (it is writing the disk)", answered=True)
        if now - self.start > WINDOW:
            return self._end(
                f"no sign of Windows Setup after {WINDOW / 60:.0f} minutes; stopped pressing keys "
                "(see `limapy screenshot`)",
                answered=False,
            )
        message = self._start_pressing(now)
        if not self.pressing:
            return Action()
        if self.cd_at is not None and FALL_THROUGH.search(self.text, self.cd_at):
            if now - self.cd_time <= MISS_GRACE:
                return self._missed(now)
            return self._end(
                "the guest restarted before Windows Setup wrote the disk; no more keys (one now could start the "
                "install media again; see `limapy screenshot`)",
                answered=self.answered_at is not None,
            )
        if self.prompt_at is None:
            found = self.text.find(PROMPT, self.cd_at or 0)
            if found >= 0:
                self.prompt_at = found
                message = message or "the install media asks to press a key: pressing Enter"
        if self.answered_at is not None:
            return Action(message=message)  # the prompt was left: watch for a miss, press nothing
        if self.prompt_at is not None and self.presses:
            # What follows the prompt's words ("... CD or DVD"): its dots, then whatever comes next.
            after = _PROMPT_WORDS.sub("", self.text[self.prompt_at + len(PROMPT) :], count=1)
            if after.replace(".", "").strip() or now - self.last_growth >= QUIET:
                self.answered_at = now  # it printed something else, or its dots stopped: it has gone on
                return Action(message=f"answered the boot prompt ({PROMPT} CD or DVD)", answered=True)
        interval = PRESS_INTERVAL if self.prompt_at is not None else BLIND_INTERVAL
        if now - self.last_press < interval:
            return Action(message=message)
        self.last_press = now
        self.presses += 1
        return Action(press=True, message=message)

    def _start_pressing(self, now: float) -> str | None:
        """Start pressing at the install media's boot line, or `BLIND_AFTER` seconds in without one."""
        if self.cd_at is None:
            m = CD_BOOT.search(self.text)
            if m is not None:
                self.cd_at, self.cd_time = m.end(), now
                if not self.pressing:
                    self.pressing = True
                    return "the firmware is starting the install media: pressing Enter until Windows Setup starts"
        if not self.pressing and now - self.attempt_start >= BLIND_AFTER:
            self.pressing = True
            return (
                f"no boot line from the firmware on the serial console after {BLIND_AFTER:.0f} s: pressing Enter "
                "until Windows Setup starts"
            )
        return None

    def _missed(self, now: float) -> Action:
        if self.attempt >= MAX_ATTEMPTS:
            return self._end(
                f"the boot prompt was missed {self.attempt} times; the firmware went on to another boot option "
                "(see serial.log; `limapy stop` and start again to retry)",
                answered=False,
            )
        self.attempt += 1
        self._new_attempt(now)
        return Action(
            reset=True,
            message=f"the boot prompt was missed (the firmware moved on); resetting the guest, attempt "
            f"{self.attempt} of {MAX_ATTEMPTS}",
        )
