"""What `suspend` waits for on Linux before it saves the state: the end of the guest's boot (issue 29).

limapy calls a guest ready once its boot scripts and provisioning are done, which is before cloud-init's later
stages end: cloud-config and cloud-final each start a Python interpreter and run their modules after READY (on
the test image under TCG: 12 s of work at more than one core after a later boot, minutes after the first, where
`locale` and `grub-dpkg` run). A state saved then carries that work into every resume and every clone resumed from
it, and each of them does it again: three clones resumed together on two cores each finished the source's boot
before their SSH answered.

So `suspend` first waits, bounded, for the boot to end:
- under systemd, `systemctl is-system-running --wait` (systemd 240 and later) returns once the start-up
  transaction is done: cloud-final.service is in it (cloud-init.target, wanted by multi-user.target), as is
  anything else the boot queued;
- without systemd (OpenRC, FreeBSD's rc), cloud-init writes /run/cloud-init/result.json when its final stage ends
  (cloud-init's cmd/main.py, status_wrapper); the script polls for it while /run/cloud-init exists.
It changes nothing in the guest; a guest whose boot is long done answers at once.
"""

from __future__ import annotations

SCRIPT = (
    "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then "
    "systemctl is-system-running --wait >/dev/null 2>&1; exit 0; fi; "
    "if [ -d /run/cloud-init ]; then "
    "while [ ! -e /run/cloud-init/result.json ]; do sleep 1; done; fi"
)
