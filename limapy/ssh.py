"""OpenSSH plumbing: Lima's ssh options (lima-reference.md §6.3), `ssh.config` for `ssh -F`, argv for
`shell` and `copy` (the remote command as the guest OS wants it: limapy.guest), and scripted runs.

Everything targets 127.0.0.1 only. The `$SSH` environment variable overrides the ssh command, as in Lima.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from limapy.base import dirs, proc
from limapy.base.errors import UsageError
from limapy.instance import store

# `limapy shell` imports this module on its hot path, with a summary of the instance's configuration
# (limapy.instance.summary.View) in place of the full `Spec`: what it reads of either is `ShellSpec`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from limapy.config.model import Spec

    class _User(Protocol):
        @property
        def name(self) -> str: ...
        @property
        def shell(self) -> str: ...

    class _SSHOpts(Protocol):
        @property
        def load_dot_ssh_pubkeys(self) -> bool: ...
        @property
        def forward_agent(self) -> bool: ...
        @property
        def forward_x11(self) -> bool: ...
        @property
        def forward_x11_trusted(self) -> bool: ...

    class _Mount(Protocol):
        @property
        def location(self) -> str: ...

    class ShellSpec(Protocol):
        """What `shell`, `ssh_options` and `ssh_argv` read of an instance's configuration."""

        @property
        def os(self) -> object: ...  # the guest OS (config.model.OS, or its name in a summary's View)
        @property
        def user(self) -> _User: ...
        @property
        def ssh(self) -> _SSHOpts: ...
        @property
        def mounts(self) -> Sequence[_Mount]: ...

HOST = "127.0.0.1"
_ENV_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def ssh_command() -> list[str]:
    value = os.environ.get("SSH")
    return shlex.split(value) if value else ["ssh"]


VERSION_CACHE = "openssh-version.json"


def _which(program: str) -> str | None:
    """shutil.which's answer for a plain program name or a path (shutil costs ~2 ms to import)."""
    if os.sep in program:
        return program if os.access(program, os.X_OK) else None
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _ssh_binary_key() -> str | None:
    """What identifies the ssh binary `ssh_command()` runs: its resolved path, size and mtime (None when
    it is not found on PATH, or `$SSH` holds more than a program)."""
    argv = ssh_command()
    found = _which(argv[0]) if argv else None
    if found is None:
        return None
    try:
        real = os.path.realpath(found)
        st = os.stat(real)
    except OSError:
        return None
    return f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{shlex.join(argv[1:])}"


@functools.cache
def openssh_version() -> tuple[int, int]:
    """(major, minor) of the local OpenSSH client; (8, 9) when it cannot be told.

    `ssh -V` costs a process per call (~5 ms), and `limapy shell` is called in loops: the answer is kept in
    the cache dir, keyed by the binary's resolved path, size and mtime, so an upgrade asks again."""
    import json

    from limapy.base import cachedir

    key = _ssh_binary_key()
    cache = dirs.cache_dir() / VERSION_CACHE
    raw = cachedir.read_memo(cache) if key is not None else None
    if raw is not None:
        try:
            known = json.loads(raw)
            hit = known.get(key) if isinstance(known, dict) else None
            if isinstance(hit, list) and len(hit) == 2 and all(isinstance(x, int) for x in hit):
                return (hit[0], hit[1])
        except ValueError:
            pass
    cp = proc.run([*ssh_command(), "-V"], check=False)
    m = re.search(rb"OpenSSH_(\d+)\.(\d+)", cp.stderr + cp.stdout)
    version = (int(m.group(1)), int(m.group(2))) if m else (8, 9)
    if key is not None and m:
        cachedir.write_memo(cache, json.dumps({key: list(version)}).encode())  # read-only cache: ask every time
    return version


@functools.cache
def _has_aes() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # macOS and friends: AES hardware is the norm
    return any(
        line.split(":", 1)[0].strip() in ("flags", "Features") and " aes" in f" {line.split(':', 1)[1]}"
        for line in text.splitlines()
        if ":" in line
    )


def _q(path: Path | str) -> str:
    """A path as an ssh_config value (double-quoted, as Lima writes it)."""
    s = str(path)
    if '"' in s or not s.isprintable():
        raise UsageError(
            f"path {s!r} cannot be used in an ssh option", hint='a path for ssh holds no `"` or control characters'
        )
    return f'"{s}"'


def _value(text: str, what: str) -> str:
    """An ssh_config value: as it is when it is one word, double-quoted when it holds spaces (ssh reads
    `User John Smith` as the user `John`). A `"` or a control character cannot be written at all."""
    if '"' in text or not text.isprintable():
        raise UsageError(f"{what} {text!r} cannot be written into an ssh config", hint='it must hold no `"`')
    return f'"{text}"' if any(c.isspace() for c in text) or not text else text


def default_key_path() -> Path:
    return dirs.config_dir() / store.USER_KEY


def _dot_ssh_keys() -> list[Path]:
    ssh_dir = Path.home() / ".ssh"
    keys = [p.with_suffix("") for p in sorted(ssh_dir.glob("*.pub"))] if ssh_dir.is_dir() else []
    return [k for k in keys if k.is_file()]


def authorized_keys(spec: Spec) -> list[str]:
    """The public keys the guest user accepts: limapy's own (made once), and ~/.ssh/*.pub when
    ssh.loadDotSSHPubKeys is on."""
    _, pub = store.ensure_user_key()
    keys = [pub]
    if spec.ssh.load_dot_ssh_pubkeys:
        for p in sorted((Path.home() / ".ssh").glob("*.pub")):
            try:
                keys.append(p.read_text().strip())
            except OSError:
                continue
    return keys


def ssh_options(
    inst: store.Instance, spec: ShellSpec, key_path: Path, *, control_master: bool = True, reuse_only: bool = False
) -> list[tuple[str, str]]:
    """Lima's SSHArgsFromOpts as (key, value) pairs, in Lima's order."""
    opts: list[tuple[str, str]] = [("IdentityFile", _q(key_path))]
    if spec.ssh.load_dot_ssh_pubkeys:
        opts += [("IdentityFile", _q(k)) for k in _dot_ssh_keys()]
    opts += [
        ("StrictHostKeyChecking", "no"),
        ("UserKnownHostsFile", "/dev/null"),
        ("NoHostAuthenticationForLocalhost", "yes"),
        ("PreferredAuthentications", "publickey"),
        ("Compression", "no"),
        ("BatchMode", "yes"),
        ("IdentitiesOnly", "yes"),
    ]
    version = openssh_version()
    if version >= (8, 1):
        aes = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
        ciphers = aes if _has_aes() else "^chacha20-poly1305@openssh.com"
        opts.append(("Ciphers", f'"{ciphers}"'))
    if spec.user.name:
        opts.append(("User", _value(spec.user.name, "user.name")))
    if control_master and reuse_only:  # a master that runs is used; none is made (the host agent's is coming)
        opts += [("ControlMaster", "no"), ("ControlPath", _q(inst.ssh_sock))]
    elif control_master:
        opts += [("ControlMaster", "auto"), ("ControlPath", _q(inst.ssh_sock)), ("ControlPersist", "yes")]
    if spec.ssh.forward_agent:
        opts.append(("ForwardAgent", "yes"))
    if spec.ssh.forward_x11:
        opts.append(("ForwardX11", "yes"))
    if spec.ssh.forward_x11_trusted:
        opts.append(("ForwardX11Trusted", "yes"))
    proxy = proxy_command(inst)
    if proxy is not None:
        opts.append(("ProxyCommand", proxy))
    opts.append(("LogLevel", "ERROR" if version >= (8, 9) else "QUIET"))
    return opts


def proxy_command(inst: store.Instance) -> str | None:
    """The hop to the host the guest's port is on, when that is not this one (a remote libvirt host): the
    `ProxyCommand` (`ssh -W`, what ProxyJump runs) the instance's `ssh.proxy` holds."""
    try:
        key, _, value = (inst.dir / "ssh.proxy").read_text().strip().partition(" ")
    except (FileNotFoundError, NotADirectoryError):
        return None
    return value.strip() if key == "ProxyCommand" and value.strip() else None


def host_alias(inst: store.Instance) -> str:
    return f"lima-{inst.name}"


def render_ssh_config(inst: store.Instance, opts: Sequence[tuple[str, str]], port: int) -> str:
    lines = [
        "# This SSH config file can be passed to 'ssh -F'.",
        "# This file is created by limapy for internal use; editing it is not recommended.",
        f"Host {host_alias(inst)}",
        *(f"  {k} {v}" for k, v in opts),
        f"  Hostname {HOST}",
        f"  Port {int(port)}",
    ]
    return "\n".join(lines) + "\n"


def write_ssh_config(inst: store.Instance, spec: Spec, key_path: Path, port: int) -> Path:
    """`<dir>/ssh.config` (0600): `ssh -F <dir>/ssh.config lima-<name>` reaches the guest."""
    text = render_ssh_config(inst, ssh_options(inst, spec, key_path), port)
    store.atomic_write(inst.ssh_config, text.encode(), 0o600)
    return inst.ssh_config


def config_port(inst: store.Instance) -> int:
    """The guest's SSH port on 127.0.0.1, as the instance's ssh.config says (0 before the first boot)."""
    try:
        m = re.search(r"^\s*Port\s+(\d+)", inst.ssh_config.read_text(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def config_argv(inst: store.Instance, *options: str) -> list[str]:
    """`ssh -F <dir>/ssh.config OPTIONS lima-NAME`: the instance as its ssh.config reaches it (add a command)."""
    return [*ssh_command(), "-F", str(inst.ssh_config), *options, host_alias(inst)]


def control_exit_argv(inst: store.Instance) -> list[str]:
    """`ssh -O exit` on the instance's ControlMaster (`shell --reconnect`: a fresh connection next)."""
    return config_argv(inst, "-O", "exit")


def option_args(opts: Sequence[tuple[str, str]]) -> list[str]:
    args = ["-F", "/dev/null"]
    for k, v in opts:
        args += ["-o", f"{k}={v}"]
    return args


def ssh_argv(
    inst: store.Instance,
    spec: ShellSpec,
    port: int,
    *,
    tty: bool,
    script: str,
    control_master: bool = True,
    key_path: Path | None = None,
    connect_timeout: int | None = None,
    reuse_only: bool = False,
) -> list[str]:
    """`ssh -F /dev/null -o ... [-t] -p PORT 127.0.0.1 -- SCRIPT`, as `limactl shell` runs it."""
    opts = ssh_options(inst, spec, key_path or default_key_path(), control_master=control_master,
                       reuse_only=reuse_only)  # fmt: skip
    argv = [*ssh_command(), *option_args(opts)]
    if connect_timeout is not None:
        argv += ["-o", f"ConnectTimeout={int(connect_timeout)}"]
    if tty:
        argv += ["-t", "-o", "SendEnv=COLORTERM"]
    else:
        argv.append("-T")
    return [*argv, "-p", str(int(port)), HOST, "--", script]


# -- shell semantics ----------------------------------------------------------------------------------------


def shell_script(
    spec: ShellSpec,
    command: Sequence[str],
    *,
    workdir: str | None = None,
    shell: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    host_home: Path | None = None,
) -> str:
    """The remote command `limapy shell` sends (Lima's semantics, lima-reference.md §1.3), as the instance's guest
    OS runs it (limapy.guest.GuestOS.shell_script: a POSIX shell's `-c`, cmd.exe's or PowerShell's quoting)."""
    from limapy import guest

    return guest.for_spec(spec).shell_script(spec, command, workdir=workdir, shell=shell, env=env, cwd=cwd,
                                             host_home=host_home)  # fmt: skip


# -- running things ---------------------------------------------------------------------------------------


def run(
    inst: store.Instance,
    spec: ShellSpec,
    port: int,
    script: str,
    timeout: float | None = None,
    *,
    input: bytes | None = None,
    control_master: bool = True,
    connect_timeout: int | None = 10,
) -> proc.Completed[bytes]:
    """Run `script` in the guest with the real ssh; never raises for a non-zero exit (check returncode)."""
    argv = ssh_argv(
        inst, spec, port, tty=False, script=script, control_master=control_master,
        connect_timeout=connect_timeout,
    )
    return proc.run(argv, check=False, timeout=timeout, input=input if input is not None else b"")


def execute_script(
    inst: store.Instance,
    spec: ShellSpec,
    port: int,
    script: str,
    timeout: float | None = None,
    *,
    control_master: bool = True,
) -> proc.Completed[bytes]:
    """Lima's ExecuteScript: the `#!` line names the interpreter, the body goes through stdin."""
    first, _, _ = script.partition("\n")
    if not first.startswith("#!"):
        raise UsageError("script must start with a '#!' line")
    interpreter = first[2:].strip()
    return run(inst, spec, port, interpreter, timeout, input=script.encode(), control_master=control_master)


def control_master_exit(inst: store.Instance) -> None:
    """`ssh -O exit` on the instance's ControlMaster socket, if one is running."""
    if inst.ssh_sock.exists():
        proc.run(
            [*ssh_command(), "-F", "/dev/null", "-o", f"ControlPath={_q(inst.ssh_sock)}", "-O", "exit", HOST],
            check=False,
            timeout=10,
        )


def scp_argv(operands: Sequence[str], *, recursive: bool = False, verbose: bool = False) -> list[str]:
    """`scp -F <dir>/ssh.config ... lima-NAME:path` for `limapy copy SRC... DST` (NAME may be a prefix)."""
    if len(operands) < 2:
        raise UsageError("copy needs at least one source and a destination")
    config: Path | None = None
    args: list[str] = []
    for op in operands:
        name, sep, path = op.partition(":")
        if sep and name and "/" not in name and store.NAME_RE.fullmatch(name):
            inst = store.resolve(name)
            if config is not None and config != inst.ssh_config:
                raise UsageError("copying between two instances is not supported", hint="copy via the host")
            config = inst.ssh_config
            args.append(f"{host_alias(inst)}:{path}")
        else:
            args.append(op)
    if config is None:
        raise UsageError(
            "copy needs an `INSTANCE:path` operand", hint="e.g. `limapy copy file.txt default:/tmp/`"
        )
    flags = (["-r"] if recursive else []) + (["-v"] if verbose else ["-q"])
    return ["scp", "-F", str(config), *flags, "--", *args]
