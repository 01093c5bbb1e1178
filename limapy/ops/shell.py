"""`limapy shell NAME [CMD...]`: OpenSSH into the guest with Lima's semantics; the exit code is the guest's."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from limapy import store
from limapy.errors import LimapyError


def shell_argv(
    inst: store.Instance, command: Sequence[str], *, workdir: str | None, shell: str | None
) -> list[str]:
    from limapy import boot, ssh
    from limapy.ops.list import ssh_port

    st = store.status(inst)
    if st != "Running":
        raise LimapyError(
            f"instance `{inst.name}` is {st.lower()}", hint=f"run `limapy start {inst.name}` to start it"
        )
    port = ssh_port(inst)
    if not port:
        raise LimapyError(f"instance `{inst.name}` has no SSH port yet (still starting?)")
    cfg = boot.instance_config(inst)
    script = ssh.shell_script(cfg, list(command), workdir=workdir, shell=shell)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return ssh.ssh_argv(inst, cfg, port, tty=tty, script=script)


def exec_shell(argv: list[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)  # noqa: S606 (argv list, no shell)
    except OSError as e:
        raise LimapyError(f"cannot run {argv[0]}: {e.strerror}", hint="install openssh-client") from None
