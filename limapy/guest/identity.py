"""What a clone resumed from its source's saved state runs once to become a machine of its own (issue 29;
GuestOS.clone_identity): the command, what it gives (for the event log), and its stdin (secrets: never on a command
line)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CloneIdentity:
    command: str
    what: str
    stdin: bytes = b""
