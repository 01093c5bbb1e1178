"""lima.yaml as a Linux guest reads it: Lima's defaults for every POSIX guest (limapy.guest.rules.Rules), and
containerd's user mode by default on the arches nerdctl's archives are for."""

from __future__ import annotations

from limapy.guest.rules import Rules


class LinuxRules(Rules):
    name = "Linux"

    def containerd_user(self, arch: str) -> bool:
        return arch in ("x86_64", "aarch64")


RULES = LinuxRules()
