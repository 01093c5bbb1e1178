"""`show-ssh`: the ssh command, arguments, options or ssh_config that reach an instance, in Lima's four shapes."""

from __future__ import annotations

from limapy.base.errors import UsageError
from limapy.instance import store

FORMATS = ("cmd", "args", "options", "config")


def options(inst: store.Instance) -> list[str]:
    """Lima's SSH options as `Key=Value`, then Hostname and Port (0 while the instance has none)."""
    from limapy import config, ssh
    from limapy.ops.list import ssh_port

    spec = config.instance_spec(inst)
    opts = ssh.ssh_options(inst, spec, ssh.default_key_path())
    return [*(f"{k}={v}" for k, v in opts), f"Hostname={ssh.HOST}", f"Port={ssh_port(inst)}"]


def _quote(opt: str) -> str:
    """An option as one shell word, quoted for POSIX sh (shlex.quote): a value holding `"` goes inside single
    quotes as Lima prints it, and a `'` in it (a home under /home/o'brien) is escaped, so the printed line
    pastes as exactly these words and nothing in a path (`$(cmd)`, backquotes) is run by the shell."""
    import shlex

    return shlex.quote(opt)


def render(inst: store.Instance, fmt: str) -> str:
    from limapy.ssh import host_alias

    if fmt not in FORMATS:
        raise UsageError(f"unknown format: {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    opts = options(inst)
    alias = host_alias(inst)
    if fmt == "options":
        return "".join(o + "\n" for o in opts)
    if fmt == "config":  # the values are ssh_config values already (paths double-quoted by limapy.ssh)
        lines = [f"Host {alias}"]
        for o in opts:
            key, _, value = o.partition("=")
            lines.append(f"  {key} {value}")
        return "\n".join(lines) + "\n"
    args = " ".join(f"-o {_quote(o)}" for o in opts)
    return (f"ssh {args} {alias}" if fmt == "cmd" else args) + "\n"
