"""What shell completion offers: instance names per command (a directory listing; for `start`, `stop` and
`suspend` only the instances the command can act on), `template:NAME`s, and the values of fixed-value flags.
Both the fast completer (limapy.cli.complete) and the typer commands ask here, so they answer the same."""

from __future__ import annotations

SHELLS = ("bash", "zsh", "fish", "powershell")
#: Commands whose instance argument offers only some instances: those not Running (start), not Stopped.
NOT_RUNNING = ("start",)
NOT_STOPPED = ("stop", "suspend")
#: Commands whose argument may also be a template (Lima's `start` offers both), or only a template (or a file).
WITH_TEMPLATES = ("start", "doctor")
TEMPLATES_ONLY = ("create", "validate")
#: The values of limapy's fixed-value flags (the engine names come from the driver registry).
VALUES: dict[str, tuple[str, ...]] = {
    "--mount-type": ("reverse-sshfs", "9p", "virtiofs", "smb"),
    "--vm-type": ("qemu",),
    "--arch": ("x86_64", "aarch64", "armv7l", "riscv64", "ppc64le", "s390x"),
    "--containerd": ("user", "system", "user+system", "none"),
    "--log-level": ("trace", "debug", "info", "warn", "error"),
    "--log-format": ("text", "json"),
    "list --format": ("table", "json", "yaml"),
    "show-ssh --format": ("cmd", "args", "options", "config"),
    "--type": ("socks",),
}


def instance_names() -> list[str]:
    """The instances under $LIMAPY_HOME, sorted. Every completion of an instance argument calls this."""
    from limapy.instance import store

    return store.list_instances()


def template_names() -> list[str]:
    """`template:NAME` for every template on the search path (as `create --list-templates`)."""
    from limapy.config.templates import list_templates

    return [f"template:{t.name}" for t in list_templates()]


def candidates(command: str, incomplete: str) -> list[str]:
    """What the instance argument of `command` completes `incomplete` to."""
    out: list[str] = []
    if command not in TEMPLATES_ONLY and not incomplete.startswith("template:"):
        out = [n for n in instance_names() if n.startswith(incomplete)]
        if command in NOT_RUNNING or command in NOT_STOPPED:
            from limapy import driver
            from limapy.instance import store

            skip = store.RUNNING if command in NOT_RUNNING else store.STOPPED
            out = [n for n in out if driver.status(store.Instance(n, store.instance_dir(n))) != skip]
    if (command in WITH_TEMPLATES or command in TEMPLATES_ONLY) and "template:".startswith(incomplete[:9]):
        out += [t for t in template_names() if t.startswith(incomplete)]
    return out


def values(flag: str, incomplete: str) -> list[str]:
    """The values of a fixed-value flag (`--driver`: the registered engines) that start with `incomplete`."""
    if flag == "--driver":
        from limapy.driver import registry

        choices: tuple[str, ...] = tuple(registry())
    else:
        choices = VALUES[flag]
    return [c for c in choices if c.startswith(incomplete)]
