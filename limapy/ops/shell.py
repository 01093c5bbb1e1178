"""`limapy shell NAME [CMD...]`: OpenSSH into the guest with Lima's semantics; the exit code is the guest's."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from limapy import proc, store
from limapy.errors import ExternalToolError, LimapyError


def require_running(inst: store.Instance) -> None:
    from limapy import driver

    st = driver.status(inst)
    if st != store.RUNNING:
        raise LimapyError(
            f"instance `{inst.name}` is {st.lower()}", hint=f"run `limapy start {inst.name}` to start it"
        )


def shell_argv(
    inst: store.Instance, command: Sequence[str], *, workdir: str | None, shell: str | None
) -> list[str]:
    from limapy import config, ssh
    from limapy.ops.list import ssh_port

    require_running(inst)
    port = ssh_port(inst)
    if not port:
        raise LimapyError(f"instance `{inst.name}` has no SSH port yet (still starting?)")
    spec = config.instance_spec(inst)
    script = ssh.shell_script(spec, list(command), workdir=workdir, shell=shell)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return ssh.ssh_argv(inst, spec, port, tty=tty, script=script)


def exec_shell(argv: list[str]) -> None:
    try:
        proc.exec_replace(argv)
    except ExternalToolError as e:
        raise LimapyError(e.message, hint="install openssh-client") from None
