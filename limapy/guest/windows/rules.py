"""lima.yaml as a Windows guest reads it: Lima's Windows defaults and rules (validate.go: qemu only, x86_64 or
aarch64, no boot/yq/ansible steps), and limapy's own for `osOpts.Windows`, `user.shell` and the account name.

At the configuration's layer (limapy.guest.rules says why); it reads the filled configuration as limapy.config
does, through limapy.guest.windows.opts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from limapy.config.golang import go_list, go_q
from limapy.guest.rules import Checker, Rules
from limapy.guest.windows import opts as winopts

if TYPE_CHECKING:
    from limapy.base.records import Config
    from limapy.config.yamlread import NodePath

#: The shells a Windows guest's `user.shell` may name (Win32-OpenSSH's DefaultShell).
WINDOWS_SHELLS = ("cmd.exe", "powershell.exe", "pwsh.exe")

#: Win32-OpenSSH's MSIs (PowerShell/Win32-OpenSSH release 10.0.0.0p2-Preview, the one Lima's
#: pkg/cidata/wincidata.TEMPLATE.d/first_logon.ps1 pins): filled into a Windows config's empty
#: `osOpts.Windows.opensshMsi` unless `opensshSource: capability`, so the first logon installs sshd from the
#: answer ISO in seconds, offline, instead of from Windows Update. The digests are the release's published
#: SHA-256 (GitHub's release page lists them; Lima checks the same values).
_OPENSSH = "https://github.com/PowerShell/Win32-OpenSSH/releases/download/10.0.0.0p2-Preview/OpenSSH-{}-v10.0.0.0.msi"
OPENSSH_MSIS: tuple[dict[str, str], ...] = (
    {"location": _OPENSSH.format("Win64"), "arch": "x86_64",
     "digest": "sha256:ddec9c53864280759cf9f74791cefd387100e3946aa849a1c138a4ed1b96b7d9"},
    {"location": _OPENSSH.format("ARM64"), "arch": "aarch64",
     "digest": "sha256:7a17d0e22d004fb47ca4bfd8fef926fa305de4ebf70a6f3c7a29c39aabef0023"},
)  # fmt: skip
OPENSSH_SOURCES = ("msi", "capability")
#: The drive letters of the mounts, in `mounts` order (limapy.guest.windows.folders): from Z: down, as `net use`
#: takes them, clear of the disks and CD drives Windows letters from C:.
DRIVES = "ZYXWVUTSRQPONMLKJIH"

#: Windows account names: what `net user` and the unattend file refuse.
WINDOWS_BAD_USER_CHARS = set('"/\\[]:;|=,+*?<>%@')
WINDOWS_RESERVED_USERS = {"administrator", "guest", "defaultaccount", "wdagutilityaccount", "wsiaccount", "none"}
#: Windows' built-in local groups and well-known principals (Microsoft, "Security identifiers": the
#: S-1-5-32-* aliases and the well-known names): an account cannot share a name with one (Setup would fail to
#: create it, or the name would resolve to the group in ACLs and `net user`).
WINDOWS_BUILTIN_GROUPS = {
    "administrators", "users", "guests", "power users", "account operators", "server operators",
    "print operators", "backup operators", "replicator", "remote desktop users", "network configuration operators",
    "performance monitor users", "performance log users", "distributed com users", "iis_iusrs",
    "cryptographic operators", "event log readers", "certificate service dcom access", "rds remote access servers",
    "rds endpoint servers", "rds management servers", "hyper-v administrators", "access control assistance operators",
    "remote management users", "device owners", "storage replica administrators", "openssh users",
    "system managed accounts group", "user mode hardware operators", "everyone", "system", "local service",
    "network service", "authenticated users", "interactive", "network", "service", "batch", "creator owner",
    "anonymous logon", "iusr", "trustedinstaller",
}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def windows_user_problems(name: str) -> list[str]:
    """Why `name` cannot be a Windows account name (empty: it can)."""
    problems = []
    if not name or len(name) > 20:
        problems.append("must be 1 to 20 characters")
    if set(name) & WINDOWS_BAD_USER_CHARS or _CONTROL.search(name):
        problems.append('must not contain any of " / \\ [ ] : ; | = , + * ? < > % @ or control characters')
    if name.endswith(".") or not name.strip(". "):
        problems.append("must not end with a dot or be only dots and spaces")
    if name.lower() in WINDOWS_RESERVED_USERS:
        problems.append("must not be a built-in account name")
    elif name.lower() in WINDOWS_BUILTIN_GROUPS:
        problems.append("must not be the name of a built-in group or principal (Administrators, Users, ...)")
    return problems


class WindowsRules(Rules):
    name = "Windows"
    home = "C:\\Users\\{{.User}}"
    shell = "cmd.exe"
    implied_shell = "cmd.exe"  # FillDefault's Windows shell, also for a spec of a partial config
    provision_modes = ("system", "user", "data", "dependency")  # Lima refuses ansible, boot and yq on Windows
    kernel_boot = False

    def default_mount_type(self, unsupported: list[Any]) -> str:
        return "smb"  # limapy's private smbd (limapy.guest.smb); Windows has no 9p, virtiofs needs WinFsp

    def mount_type_problem(self, mount_type: str) -> str | None:
        if mount_type != "smb":
            return (f"a Windows guest mounts host folders over `smb` only (limapy), got {go_q(mount_type)}; "
                    "remove `mountType`, or set `plain: true` for no mounts")
        return None

    def fill(self, cfg: Config) -> None:
        win = cfg["osOpts"]["Windows"]
        if win.get("opensshSource") is None:
            win["opensshSource"] = "msi"
        if win["opensshSource"] == "msi" and not win.get("opensshMsi"):
            win["opensshMsi"] = [dict(m) for m in OPENSSH_MSIS]

    def validate(self, v: Checker) -> None:
        c = v.cfg
        if c.get("vmType") != "qemu":
            v.add(("vmType",), f"currently Windows guest is only supported on `qemu`; got `{c.get('vmType')}`")
        if c.get("arch") not in ("x86_64", "aarch64"):
            v.add(
                ("arch",),
                f"currently Windows guest is only supported on [`x86_64`, `aarch64`]; got `{c.get('arch')}`",
            )
        self.os_opts(v)
        self.mounts(v)

    def mounts(self, v: Checker) -> None:
        """A drive letter per mount (limapy.guest.windows.folders): Z: down to H:."""
        mounts = v.cfg.get("mounts") or []
        if len(mounts) > len(DRIVES) and not v.cfg.get("plain"):
            v.add(("mounts", len(DRIVES)), f"a Windows guest maps at most {len(DRIVES)} mounts (drive letters "
                  f"{DRIVES[0]}: down to {DRIVES[-1]}:), got {len(mounts)}")  # fmt: skip

    def os_opts(self, v: Checker) -> None:
        """limapy's own rules for `osOpts.Windows` (Lima has no such fields, or does not check them)."""
        at: NodePath = ("osOpts", "Windows")
        win = winopts.windows_opts(v.cfg)
        arch = str(v.cfg.get("arch"))
        for key in ("virtioWin", "opensshMsi"):
            for i, f in enumerate(win.get(key) or []):
                v.file(f, (*at, key, i), f"osOpts.Windows.{key}[{i}]")
                if key == "opensshMsi" and isinstance(f, dict) and not f.get("digest"):
                    v.add(
                        (*at, key, i),
                        f"field `osOpts.Windows.opensshMsi[{i}].digest` must be set (sha256:...): "
                        "the guest installs the MSI the digest pins",
                    )
        if arch == "aarch64" and winopts.virtio_win(v.cfg) is None:
            v.add(
                (*at, "virtioWin") if win.get("virtioWin") else ("arch",),
                "an aarch64 Windows guest needs `osOpts.Windows.virtioWin` with an aarch64 entry: Windows on arm64 "
                "has no inbox driver for a network device QEMU emulates (its usb-net binds to usbser), so limapy "
                "attaches virtio-net and Setup loads NetKVM from the virtio-win ISO (see "
                "templates/experimental/windows.yaml)",
            )
        locale = win.get("locale")
        if locale not in (None, ""):
            from limapy.guest.windows import language as winlocale

            if winlocale.known(str(locale)) is None:
                v.add(
                    (*at, "locale"),
                    f"field `osOpts.Windows.locale` {go_q(locale)} is not a Windows language/region tag limapy knows "
                    "a keyboard for (e.g. de-DE, en-GB, fr-CA, ja-JP)",
                )
        product_key = win.get("productKey")
        if product_key not in (None, "") and not winopts.PRODUCT_KEY_RE.fullmatch(str(product_key).strip()):
            v.add(
                (*at, "productKey"),
                "field `osOpts.Windows.productKey` must be 25 letters or digits in five groups "
                "(XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)",
            )

    def validate_shell(self, v: Checker, shell: Any) -> None:
        if shell is None:  # '' on Windows is no shell at all: refused
            return
        base = re.split(r"[\\/]", str(shell))[-1].lower()
        if base not in WINDOWS_SHELLS:
            v.add(
                ("user", "shell"),
                f"field `user.shell` must be one of {go_list(list(WINDOWS_SHELLS))} for Windows guest, got `{shell}`",
            )

    def absolute_guest_path(self, path: str) -> bool:
        return True  # a Windows path (Lima does not check it)

    def user_problems(self, user: Mapping[str, Any], name: str, home: str, shell: str) -> list[tuple[NodePath, str]]:
        problems = windows_user_problems(name)
        if not problems:
            return []
        return [(("user", "name"), f"field `user.name` {name!r} cannot be a Windows account name: "
                 + "; ".join(problems))]  # fmt: skip


RULES = WindowsRules()
