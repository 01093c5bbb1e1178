"""`limapy shell --sync DIR`: the command works on a copy of DIR in the guest; its changes come back on exit.

Lima 2.1's semantics (cmd/limactl/shell.go lines 208-300 and 538-700): refused when the instance mounts host
folders (the guest could write them directly) and with --workdir; DIR must be at least 4 levels deep (so a home
directory or `/` itself is never mirrored with --delete); rsync copies DIR's contents to `<guest home><DIR>`
(Lima's rsync flags plus --delete) and the shell starts there. When the command succeeds the changes are synced
back, also deletions: without a terminal at once, on a terminal after a question (yes, no, or view the changes
first), and the guest copy is then removed. When it fails, nothing comes back and the copy stays in the guest
(Lima returns the error before syncing).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from limapy.base import proc
from limapy.base.errors import LimapyError, UsageError
from limapy.instance import store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from limapy.config.model import Spec

    Request = Any  # limapy.ops.shell.Request (which imports this module)

MIN_DEPTH = 4  # shell.go rsyncMinimumSrcDirDepth: the depth of "/Users/USER" is 3


def path_depth(path: str) -> int:
    """shell.go pathDepth (line 776): separator-delimited fields, `/` counting as one."""
    while "//" in path:
        path = path.replace("//", "/")
    trimmed = path.rstrip("/")
    if "/" in trimmed:
        path = trimmed
    return path.count("/") + 1


def _say(msg: str) -> None:
    print(f"limapy: {msg}", file=sys.stderr)


def _guest(inst: store.Instance, command: str) -> int:
    from limapy.ssh import config_argv

    return proc.run([*config_argv(inst), command], check=False, timeout=120).returncode


def _rsync(inst: store.Instance, src: tuple[str, bool], dst: tuple[str, bool], *extra: str) -> list[str]:
    """rsync argv from `src` to `dst` ((path, in the guest?)), recursive, mirroring (--delete)."""
    from limapy import copytool

    ops = [copytool.Operand(p, inst if remote else None) for p, remote in (src, dst)]
    return copytool.rsync_argv(ops, recursive=True, extra=["--delete", *extra])


def check(inst: store.Instance, spec: Spec, req: Request) -> tuple[str, str]:
    """(the host directory, its copy in the guest), or the reason `--sync` cannot run."""
    from limapy import guest

    os_ = guest.for_spec(spec)
    if not os_.rsync:
        raise LimapyError(f"cannot use `--sync` with a {os_.name} guest: it has no rsync")
    if spec.mounts:
        raise LimapyError("cannot use `--sync` when the instance has host mounts configured, start the instance "
                          "with `--mount-none` to disable mounts")  # fmt: skip
    if req.workdir:
        raise UsageError("cannot use `--workdir` and `--sync` at the same time")
    if shutil.which("rsync") is None:
        raise LimapyError("rsync is required for `--sync` but not found", hint="install rsync")
    host_dir = os.path.abspath(os.path.expanduser(str(req.sync)))
    if not os.path.isdir(host_dir):
        raise LimapyError(f"--sync {req.sync}: not a directory")
    depth = path_depth(host_dir)
    if depth < MIN_DEPTH:
        raise LimapyError(f"expected the depth of the host working directory (`{host_dir}`) to be at least "
                          f"{MIN_DEPTH}, only got {depth}", hint="cd to a deeper directory")  # fmt: skip
    return host_dir, spec.user.home + host_dir


def run_synced(inst: store.Instance, req: Request, *, ready: Callable[[store.Instance, bool], None],
               env_of: Callable[[], Mapping[str, str]]) -> int:  # fmt: skip
    """The remote command's exit code (after syncing back, when it succeeded). `ready` starts (or refuses) a
    stopped instance and `env_of` gives --preserve-env's variables, as for every shell."""
    from limapy import ssh
    from limapy.instance import summary

    ready(inst, req.start)
    spec = summary.load(inst).spec
    host_dir, guest_dir = check(inst, spec, req)
    port = ssh.config_port(inst)
    if req.reconnect:
        proc.run(ssh.control_exit_argv(inst), check=False)
    _say(f"syncing {host_dir} to the guest ({inst.name}:{guest_dir})")
    if _guest(inst, "mkdir -p " + ssh_quote(guest_dir)) != 0:
        raise LimapyError(f"failed to create the synced workdir {guest_dir} in the guest")
    if proc.call(_rsync(inst, (host_dir, False), (guest_dir, True))) != 0:
        raise LimapyError(f"failed to rsync {host_dir} to the guest")
    env = env_of() if req.preserve_env else None
    script = ssh.shell_script(spec, list(req.command), workdir=guest_dir, shell=req.shell, env=env)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    rc = proc.call(ssh.ssh_argv(inst, spec, port, tty=tty, script=script))
    if rc != 0:
        _say(f"warning: the command exited with status {rc}: nothing was synced back; the guest's copy stays at "
             f"{inst.name}:{guest_dir}")  # fmt: skip
        return rc
    sync_back(inst, host_dir, guest_dir)
    return rc


def ssh_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def sync_back(inst: store.Instance, host_dir: str, guest_dir: str) -> None:
    """The guest copy's changes to `host_dir` (asked first on a terminal), then the copy removed."""
    from limapy.base import term

    if term.interactive(sys.stdout) and sys.stdin.isatty():
        changes = proc.run(_rsync(inst, (guest_dir, True), (host_dir, False), "--dry-run", "--itemize-changes"),
                           check=False).stdout.decode(errors="replace").splitlines()  # fmt: skip
        changes = [c for c in changes if c.strip() and not c.startswith(".d")]
        if not changes:
            _say("no changes detected")
        elif not _accepted(inst, host_dir, guest_dir, changes):
            _say("skipping syncing back the changes to the host")
        else:
            _copy_back(inst, host_dir, guest_dir)
    else:
        _copy_back(inst, host_dir, guest_dir)
    if _guest(inst, "rm -rf " + ssh_quote(guest_dir)) != 0:
        _say(f"warning: failed to clean up the guest's copy {guest_dir}")


def _copy_back(inst: store.Instance, host_dir: str, guest_dir: str) -> None:
    if proc.call(_rsync(inst, (guest_dir, True), (host_dir, False))) != 0:
        raise LimapyError("failed to sync back the changes from the guest to the host",
                          hint=f"the guest's copy stays at {inst.name}:{guest_dir}")  # fmt: skip
    _say("synced back the changes to the host")


def _accepted(inst: store.Instance, host_dir: str, guest_dir: str, changes: list[str]) -> bool:
    while True:
        print(f"Accept the changes? ({len(changes)} changed) [y]es, [n]o, [v]iew: ", end="", file=sys.stderr,
              flush=True)  # fmt: skip
        answer = sys.stdin.readline().strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no", ""):
            return False
        if answer in ("v", "view"):
            print("\n".join(changes))
            if shutil.which("diff"):
                with tempfile.TemporaryDirectory(prefix="limapy-synced-") as tmp:
                    view = os.path.join(tmp, os.path.basename(host_dir))
                    os.mkdir(view)
                    proc.call(_rsync(inst, (guest_dir, True), (view, False)))
                    proc.call(["diff", "-ruN", host_dir, view])
