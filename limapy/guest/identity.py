"""What a clone resumed from its source's saved state runs once to become a machine of its own (issue 29;
GuestOS.clone_identity): the command, what it gives (for the event log), its stdin (secrets: never on a command
line), and whether it also sets the resumed guest's clock: then the host's time (seconds since the epoch) is
appended to the command as its last argument when it runs, and the first probe does not set it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CloneIdentity:
    command: str
    what: str
    stdin: bytes = b""
    sets_clock: bool = False
