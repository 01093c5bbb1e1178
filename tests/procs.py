"""Stand-in processes for pid-file tests: a sleeping Python whose command line carries given arguments."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def sleeper(*marks: str) -> subprocess.Popen[bytes]:
    """A process whose argv ends with `marks` (as QEMU's `-name limapy-a`), returned once exec is done
    (until then /proc/PID/cmdline still shows the parent's)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *marks])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            argv = []
        if b"import time; time.sleep(60)" in argv:
            break
        time.sleep(0.01)
    return p
