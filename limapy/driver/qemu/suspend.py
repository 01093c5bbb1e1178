"""Suspend and resume a QEMU guest through migration to and from a file in the instance directory.

QEMU 7.2 has no `file:` migration URI, and `exec:` would paste a path into a shell; instead the file is opened
here and its descriptor handed to QEMU over QMP (`getfd`), then `migrate fd:NAME` / `migrate-incoming fd:NAME`.
Everything QEMU migrates comes along: RAM, devices, the pflash UEFI variable store (QEMU writes it back to its
file when the resumed guest runs) and the TPM (the tpm-emulator backend carries swtpm's state blobs). Devices
QEMU cannot migrate (vhost-user-fs: virtiofs mounts) make the migration fail; the guest then runs on.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

from limapy.base.errors import LimapyError
from limapy.driver import suspended
from limapy.instance import pids, store
from limapy.qemu.qmp import QMP, QMPError

log = logging.getLogger("limapy.driver.qemu.suspend")

FD_NAME = "limapy-state"
SAVE_TIMEOUT = 600.0
LOAD_TIMEOUT = 600.0
EXIT_TIMEOUT = 30.0


def machine_argv(pid: int) -> tuple[str, ...]:
    """The running QEMU's command line, without the `-incoming defer` of a resume."""
    argv = pids.cmdline(pid)
    if not argv:
        raise LimapyError(f"cannot read the command line of QEMU (pid {pid})")
    out: list[str] = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "-incoming" and argv[i + 1 : i + 2] == ["defer"]:
            skip = True
            continue
        out.append(a)
    return tuple(out)


def ssh_port(argv: tuple[str, ...]) -> int:
    for a in argv:
        m = re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-:22(?:,|$)", a)
        if m:
            return int(m.group(1))
    return 0


def _wait_migration(qmp: QMP, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise LimapyError("QEMU exited during the migration")
        st = qmp.query_migrate()
        status = st.get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise LimapyError(f"QEMU's migration {status}: {st.get('error-desc') or 'no reason given'}")
        if time.monotonic() > deadline:
            raise LimapyError(f"the migration did not finish within {timeout:.0f} s (status {status})")
        time.sleep(0.05)


def save(inst: store.Instance, pid: int, driver: str) -> suspended.Record:
    """Pause the guest, stream its state into `suspend.state`, quit QEMU, then record what it belongs to.

    On any failure before QEMU quits the guest runs on (`cont`) and the partial state is removed; when QEMU
    dies half-way the partial state is removed and the instance is left stopped (a later start boots cold)."""
    suspended.discard(inst)
    argv = machine_argv(pid)
    qmp = QMP.connect(inst.qmp_sock, timeout=10.0)
    try:
        qmp.execute("stop")
        try:
            fd = store.open_private(inst.suspend_state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                qmp.send_fd(fd, FD_NAME)
            finally:
                os.close(fd)
            qmp.execute("migrate", {"uri": f"fd:{FD_NAME}"})
            _wait_migration(qmp, SAVE_TIMEOUT, lambda: pids.alive(pid))
        except BaseException as e:
            suspended.discard(inst)
            try:  # a QEMU that still answers gets its guest back
                qmp.execute("migrate_cancel")
                qmp.execute("cont")
            except QMPError as e2:
                log.info("after the failed suspend: %s", e2.message)
                raise LimapyError(
                    "QEMU ended during the suspend; the partial state was discarded (the next start boots cold)"
                ) from None
            if isinstance(e, LimapyError):
                raise LimapyError(f"suspend failed, the guest runs on: {e.message}") from None
            raise
        qmp.quit()
    finally:
        qmp.close()
    if not pids.wait_gone(pid, EXIT_TIMEOUT):
        suspended.discard(inst)
        raise LimapyError(f"QEMU (pid {pid}) did not exit after saving its state; the state was discarded")
    fd = store.open_private(inst.suspend_state, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return suspended.complete(inst, driver=driver, argv=argv, ssh_port=ssh_port(argv))


def resume(inst: store.Instance, qmp: QMP, alive: Callable[[], bool]) -> None:
    """Feed `suspend.state` to a QEMU started with `-incoming defer`; the guest runs when this returns.
    Raises ResumeFailed (the caller discards the state and boots cold)."""
    started = time.monotonic()
    try:
        fd = store.open_private(inst.suspend_state, os.O_RDONLY)
        try:
            qmp.send_fd(fd, FD_NAME)
        finally:
            os.close(fd)
        qmp.execute("migrate-incoming", {"uri": f"fd:{FD_NAME}"})
        _wait_migration(qmp, LOAD_TIMEOUT, alive)
        log.info("state loaded in %.1f s", time.monotonic() - started)
        # the source was paused before it saved (a consistent state), and QEMU restores that run state
        if qmp.query_status() != "running":
            qmp.execute("cont")
    except (LimapyError, OSError) as e:
        raise suspended.ResumeFailed(getattr(e, "message", None) or str(e)) from None
