"""Setting a resumed guest's clock: after `limapy suspend` + `start` the guest's clock stands where it was
suspended (TLS certificates and build tools then misjudge time), so the host agent sets it to the host's
(UTC, to the millisecond) in the first command it runs in the resumed guest."""

from __future__ import annotations

#: Printed on stderr by `linux(...)` when the guest refused to set its clock.
FAILED = "limapy-clock-not-set"


def linux(now: float) -> str:
    """A POSIX sh snippet (passwordless sudo, as Lima's guest user has) that sets the clock, silently."""
    return f"if ! sudo -n date -u -s @{now:.3f} >/dev/null 2>&1; then echo {FAILED} >&2; fi"
