"""lima.yaml as each guest OS reads it: its defaults (Lima's FillDefault per `os`) and the validation rules that only
make sense for that OS, where the configuration needs them.

limapy.config is a low layer: it never imports a guest OS package. It asks `for_os(NAME)`, which finds the rules
through the registry (limapy.guest.registry): the registered package's `rules` module (`RULES`), which sits at the
configuration's layer too and reads the configuration as config does. Lima also names OSes limapy does not run
(Darwin, FreeBSD): their defaults and rules are Lima's, kept in the table below, so `validate --fill` says what
`limactl` says; an `os` limapy cannot boot is refused when an instance is made (limapy.guest.for_spec).

`Rules` is what every OS starts from: Lima's defaults for a POSIX guest, and limapy's rules for a Linux user.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from limapy.guest.registry import registry

if TYPE_CHECKING:
    from limapy.base.records import Config
    from limapy.config.yamlread import NodePath

#: Lima's provision modes (validate.go).
PROVISION_MODES = ("system", "user", "boot", "data", "dependency", "ansible", "yq")
#: Guest user names a Linux guest's tools accept (useradd's default rule, as cloud-init passes it on).
LINUX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class Checker(Protocol):
    """What a rule sees of Lima's validation (limapy.config.validate): the filled configuration, a way to report
    a problem at a field, and Lima's check of a file entry (location, arch, digest)."""

    cfg: Config

    def add(self, path: NodePath, msg: str) -> None: ...

    def file(self, f: Any, path: NodePath, label: str) -> None: ...


class Rules:
    """Lima's defaults and rules for a guest OS; each OS package's `rules.RULES` is one (a subclass)."""

    name = ""  # Lima's `os` value
    home = "/home/{{.User}}.guest"  # user.home's default
    shell = "/bin/bash"  # user.shell's default
    implied_shell = ""  # user.shell when nobody filled the configuration (config.model.Spec of a partial one)
    passwordless_sudo = True  # user.passwordlessSudo's default
    provision_owner = "root:root"  # a data step's owner by default
    provision_modes: tuple[str, ...] = PROVISION_MODES  # the provision modes the guest runs
    host_folders = True  # the guest mounts `mounts` (False: limapy has no way yet: the guest is `plain` there)
    kernel_boot = True  # an image's own kernel and initrd may boot directly (QEMU's loader, no firmware)
    only_arch: str | None = None  # the one arch the OS's images are for (an image URL names no other)

    def containerd_user(self, arch: str) -> bool:
        """Lima's default for `containerd.user`."""
        return False

    def default_mount_type(self, unsupported: list[Any]) -> str:
        """`mountType` when it is unset or `default` (Lima's: 9p, reverse-sshfs when 9p is unsupported)."""
        return "reverse-sshfs" if "9p" in unsupported else "9p"

    def mount_type_problem(self, mount_type: str) -> str | None:
        """Why this guest cannot mount host folders with `mount_type` (None: it can)."""
        return None

    def fill(self, cfg: Config) -> None:
        """Defaults of this OS's own options, once `osOpts` is filled (FillDefault's last steps)."""

    def validate(self, v: Checker) -> None:
        """The rules of this OS, right after `os` itself is checked (validate.go's order)."""

    def validate_shell(self, v: Checker, shell: Any) -> None:
        """`user.shell` (None: unset; "" is unset too on a POSIX guest)."""
        if shell in (None, ""):
            return
        if not str(shell).startswith("/"):
            v.add(("user", "shell"), f"field `user.shell` must be an absolute path, got `{shell}`")

    def refuse_provision_mode(self, mode: Any) -> str | None:
        """Why a provision step of `mode` cannot run in this guest (None: it can). Modes Lima does not know are
        reported by Lima's own rule."""
        if mode in PROVISION_MODES and mode not in self.provision_modes:
            return f"provision mode `{mode}` is not supported on {self.name} VM"
        return None

    def absolute_guest_path(self, path: str) -> bool:
        """A `data`/`yq` step's `path` is absolute in the guest."""
        return path.startswith("/")

    def sudo_problem(self, passwordless_sudo: Any, plain: bool) -> str | None:
        """`user.passwordlessSudo` (validate.go lines 431-448, GHSA-2j9v-p4xj-cjw2: no password-protected sudo
        without plain mode)."""
        if passwordless_sudo is False and not plain:
            return "`user.passwordlessSudo: false` requires `plain: true`"
        return None

    def user_problems(self, user: Mapping[str, Any], name: str, home: str, shell: str) -> list[tuple[NodePath, str]]:
        """What `start` could not boot with (limapy.config.validate_instance): a Linux user."""
        out: list[tuple[NodePath, str]] = []
        # Lima's ValidateTemplateArgs (at start): `field User must not be "root"`, `field UID must not be 0`
        if name == "root":
            out.append((("user", "name"), 'field `user.name` must not be "root" (root logs in through sudo)'))
        elif not LINUX_USER.fullmatch(name):
            out.append((("user", "name"), f"field `user.name` {name!r} is not a Linux user name: lowercase "
                        "letters, digits, `_` and `-`, starting with a letter or `_`, at most 32"))  # fmt: skip
        if user.get("uid") == 0:
            out.append((("user", "uid"), "field `user.uid` must not be 0"))
        if not home.startswith("/"):
            out.append((("user", "home"), f"field `user.home` must be an absolute path in the guest, got `{home}`"))
        if not shell:
            out.append((("user", "shell"), "field `user.shell` must be set"))
        return out


class _Darwin(Rules):
    """Lima's macOS guests (vz only; limapy does not run them)."""

    name = "Darwin"
    home = "/Users/{{.User}}.guest"
    shell = "/bin/zsh"
    passwordless_sudo = False
    provision_owner = "root:wheel"
    only_arch = "aarch64"

    def sudo_problem(self, passwordless_sudo: Any, plain: bool) -> str | None:
        if passwordless_sudo is True:
            return "`user.passwordlessSudo: true` is not supported on macOS guests"
        return None


class _FreeBSD(Rules):
    """Lima's FreeBSD guests (Lima 2.1; limapy has no package for them)."""

    name = "FreeBSD"
    shell = "/bin/sh"
    provision_owner = "root:wheel"


#: The OSes Lima names and limapy has no package for: Lima's defaults and rules only.
LIMA_ONLY: dict[str, Rules] = {"Darwin": _Darwin(), "FreeBSD": _FreeBSD()}
_LOADED: dict[tuple[str, str], Rules] = {}


def for_os(name: str) -> Rules:
    """The rules of the guest OS `name` (Lima's `os` value): its package's, else Lima's (LIMA_ONLY), else the
    defaults every OS starts from (an `os` Lima does not know, which its own rule reports)."""
    module = registry().get(name)
    if module is None:
        return LIMA_ONLY.get(name) or Rules()
    found = _LOADED.get((name, module))
    if found is None:
        try:
            mod = importlib.import_module(f"{module}.rules")
        except ModuleNotFoundError as e:  # a plain module (the tests' toy guest) keeps RULES itself
            if e.name != f"{module}.rules":
                raise
            mod = importlib.import_module(module)
        found = _LOADED[(name, module)] = mod.RULES
    return found
