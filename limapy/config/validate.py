"""Lima's semantic validation (pkg/limayaml/validate.go), with Lima's messages, on a filled config.

Every rule appends a Problem; nothing stops at the first error, except where Lima itself returns early
(the provision loop on a data/yq entry without a path), which the golden cases depend on.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from limapy import LIMA_COMPAT_VERSION
from limapy.base.units import parse_size
from limapy.config.golang import go_list, go_q, parse_semver
from limapy.config.idents import validate_digest, validate_identifier
from limapy.config.validate_net import NetRules
from limapy.config.yamlread import NodePath
from limapy.guest.rules import PROVISION_MODES
from limapy.guest.rules import for_os as guest_rules

OS_TYPES = ["Linux", "Darwin", "FreeBSD", "Windows"]
ARCH_TYPES = ["x86_64", "aarch64", "armv7l", "ppc64le", "riscv64", "s390x"]
MOUNT_TYPES = ["reverse-sshfs", "9p", "virtiofs", "wsl2", "smb"]  # smb: limapy's (a private smbd, docs/windows.md)
VM_TYPES = ["qemu", "vz", "wsl2", "krunkit"]
RESERVED_MOUNTPOINTS = ["/", "/bin", "/dev", "/etc", "/home", "/opt", "/sbin", "/tmp", "/usr", "/var"]
PARAM_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")  # fullmatch only: shown as Lima shows it
#: QEMU's -fsdev security_model, and the Linux 9p client's version= and cache= values.
NINEP_ENUMS = {
    "securityModel": ("passthrough", "mapped-xattr", "mapped-file", "none"),
    "protocolVersion": ("9p2000", "9p2000.u", "9p2000.L"),
    "cache": ("none", "loose", "fscache", "mmap"),
}


@dataclass(frozen=True)
class Problem:
    path: NodePath
    message: str  # Lima's wording; starts with "field `...`" when Lima's does


class _V(NetRules):
    def __init__(self, cfg: dict[str, Any], lima_version: str) -> None:
        self.cfg = cfg
        self.version = lima_version
        self.problems: list[Problem] = []

    def add(self, path: NodePath, msg: str) -> None:
        self.problems.append(Problem(path, msg))

    def file(self, f: Any, path: NodePath, label: str) -> None:
        if not isinstance(f, dict):
            return
        loc = f.get("location")
        if not loc:
            self.add((*path, "location"), f"field `{label}.location` must be set")
        elif "://" not in str(loc) and _unexpandable(str(loc)):  # Lima's validateFileObject (validate.go l.493)
            self.add((*path, "location"), f"field `{label}.location` refers to an invalid local file path: "
                     f"{go_q(loc)}: unexpandable path {go_q(loc)}")  # fmt: skip
        arch = f.get("arch")
        if arch is not None and arch not in ARCH_TYPES:
            self.add((*path, "arch"), f"field `arch` must be one of {go_list(ARCH_TYPES)}; got `{arch}`")
        err = validate_digest(f.get("digest"))
        if err:
            self.add((*path, "digest"), f"field `{label}.digest` is invalid: {f.get('digest')}: {err}")

    def run(self) -> list[Problem]:
        c = self.cfg
        if c.get("base"):
            self.add(("base",), "field `base` must be empty for YAML validation")
        self.minimum_version()
        os_ = c.get("os")
        if os_ not in OS_TYPES:
            self.add(("os",), f"field `os` must be one of {go_list(OS_TYPES, quote=True)}; got `{os_}`")
        rules = guest_rules(str(os_))  # the rules of this guest OS (limapy.guest.rules), in Lima's order
        rules.validate(self)
        if c.get("vmType") not in VM_TYPES:
            self.add(("vmType",), f"field `vmType` must be one of {go_list(VM_TYPES)}; got `{c.get('vmType')}`")
        arch = c.get("arch")
        if arch not in ARCH_TYPES:
            self.add(("arch",), f"field `arch` must be one of {go_list(ARCH_TYPES)}; got `{arch}`")
        self.user_shell()
        self.images()
        self.sizes()
        for i, d in enumerate(c.get("additionalDisks") or []):
            err = validate_identifier(d.get("name") if isinstance(d, dict) else d)
            if err:
                self.add(("additionalDisks", i, "name"), f"field `additionalDisks[{i}].name is invalid`: {err}")
        self.mounts()
        port = (c.get("ssh") or {}).get("localPort") or 0
        if port:
            self.port(("ssh", "localPort"), "ssh.localPort", port)
        mt = c.get("mountType")
        if mt not in MOUNT_TYPES:
            self.add(("mountType",), "field `mountType` must be `reverse-sshfs` or `9p` or `virtiofs`, or `wsl2`, "
                     f"or `smb` (limapy), got {go_q(mt)}")  # fmt: skip
        unsupported = c.get("mountTypesUnsupported") or []
        if mt in unsupported:
            self.add(("mountType",), f"field `mountType` must not be one of {go_list(unsupported)} "
                     f"(`mountTypesUnsupported`), got {go_q(mt)}")  # fmt: skip
        elif mt in MOUNT_TYPES and c.get("mounts") and not c.get("plain"):
            refused = rules.mount_type_problem(str(mt))
            if refused:
                self.add(("mountType",), refused)
        if not self.provisions():
            return self.problems
        self.containerd()
        self.probes()
        self.port_forwards()
        for i, ch in enumerate(c.get("copyToHost") or []):
            for k in ("guest", "host"):
                v = ch.get(k) if isinstance(ch, dict) else None
                if v and not str(v).startswith("/"):
                    self.add(("copyToHost", i, k),
                             f"field `CopyToHost[{i}].{k}` must be an absolute path, but is {go_q(v)}")
        if c.get("dns") and (c.get("hostResolver") or {}).get("enabled"):
            self.add(("dns",), "field `dns` must be empty when field `HostResolver.Enabled` is true")
        self.networks()
        self.params()
        user = c.get("user") or {}
        # validate.go lines 431-448 (GHSA-2j9v-p4xj-cjw2: no passwordless sudo without plain mode); the guest OS's
        # own rule (macOS refuses `true`) cannot meet the WSL2 one (`false`), so their order is Lima's
        if c.get("vmType") == "wsl2" and user.get("passwordlessSudo") is False:
            self.add(("user", "passwordlessSudo"), "`user.passwordlessSudo: false` is not supported on WSL2 guest")
        sudo = rules.sudo_problem(user.get("passwordlessSudo"), bool(c.get("plain")))
        if sudo:
            self.add(("user", "passwordlessSudo"), sudo)
        if c.get("tpm") and arch not in ("x86_64", "aarch64", "armv7l", "riscv64"):
            self.add(("tpm",), f"field `tpm` is not supported on architecture {go_q(arch)}")
        audio_if = (c.get("audio") or {}).get("interface")
        if audio_if not in (None, "", "hda", "virtio"):
            self.add(("audio", "interface"), f'invalid audio.interface {json.dumps(audio_if)}, must be "hda" or "virtio"')
        return self.problems

    def minimum_version(self) -> None:
        want = self.cfg.get("minimumLimaVersion")
        if want in (None, ""):
            return
        try:
            parsed = parse_semver(str(want))
        except ValueError as e:
            self.add(
                ("minimumLimaVersion",),
                f"field `minimumLimaVersion` must be a semvar value, got {go_q(want)}: {e}",
            )
            return
        try:
            current = parse_semver(self.version)
        except ValueError:  # an unparsable current version counts as "latest"
            return
        if current < parsed:
            self.add(
                ("minimumLimaVersion",),
                f"template requires Lima version {go_q(want)}; this is only {go_q(self.version)}",
            )

    def user_shell(self) -> None:
        guest_rules(str(self.cfg.get("os"))).validate_shell(self, (self.cfg.get("user") or {}).get("shell"))

    def images(self) -> None:
        images = self.cfg.get("images") or []
        if not images:
            self.add(("images",), "field `images` must be set")
        for i, img in enumerate(images):
            if not isinstance(img, dict):
                continue
            self.file(img, ("images", i), f"images[{i}]")
            for sub in ("kernel", "initrd"):
                f = img.get(sub)
                if isinstance(f, dict):
                    self.file(f, ("images", i, sub), f"images[{i}].{sub}")
                    if f.get("arch") not in (None, img.get("arch")):
                        self.add(
                            ("images", i, sub, "arch"),
                            f"images[{i}].{sub} has unexpected architecture {go_q(f.get('arch'))}, "
                            f"must be {go_q(img.get('arch'))}",
                        )

    def sizes(self) -> None:
        cpus = self.cfg.get("cpus")
        if cpus == 0 or (isinstance(cpus, int) and cpus < 0):
            self.add(("cpus",), "field `cpus` must be set")
        for key in ("memory", "disk"):
            v = self.cfg.get(key)
            try:
                parse_size(v if isinstance(v, (str, int)) else str(v))
            except ValueError as e:
                self.add((key,), f"field `{key}` has an invalid value: {e}")
        for i, m in enumerate(self.cfg.get("mounts") or []):
            ms = ((m or {}).get("9p") or {}).get("msize")
            if ms is not None:
                try:
                    parse_size(ms)
                except ValueError as e:
                    self.add(("mounts", i, "9p", "msize"), f"field `mounts[{i}].9p.msize` has an invalid value: {e}")

    def mounts(self) -> None:
        """validate.go lines 124-161, on the filled mounts (locations rendered and `~/` expanded)."""
        self.mount_options()
        home = (self.cfg.get("user") or {}).get("home")
        seen: dict[str, int] = {}
        for i, m in enumerate(self.cfg.get("mounts") or []):
            if not isinstance(m, dict):
                continue
            loc = str(m.get("location") or "")
            if not (loc.startswith("/") or loc.startswith("~")):
                self.add(("mounts", i, "location"), f"field `mounts[{i}].location` must be an absolute path, got {go_q(loc)}")
            if _unexpandable(loc):
                self.add(("mounts", i, "location"), f"field `mounts[{i}].location` refers to an unexpandable path: "
                         f"{go_q(loc)}: unexpandable path {go_q(loc)}")  # fmt: skip
            elif loc.startswith("/") and os.path.exists(loc) and not os.path.isdir(loc):
                self.add(("mounts", i, "location"), f"field `mounts[{i}].location` refers to a non-directory path: {go_q(loc)}")
            mp = str(m.get("mountPoint") or loc)
            # limapy also refuses `/etc/` and `/usr/../etc` (Lima compares the text as written)
            clean = os.path.normpath(mp) if mp.startswith("/") else mp
            if clean in RESERVED_MOUNTPOINTS:
                self.add(("mounts", i, "mountPoint"), f"field `mounts[{i}].mountPoint` must not be a system path such as /etc or /usr")
            elif home and clean == home:
                self.add(("mounts", i, "mountPoint"), f"field `mounts[{i}].mountPoint` is the reserved internal home directory {go_q(home)}")
            if mp.startswith("~"):  # there is no `~` expansion for guest paths
                self.add(("mounts", i, "mountPoint"), f"field `mounts[{i}].mountPoint` must not start with `~`")
            if clean in seen:
                self.add(("mounts", i, "mountPoint"), f"field `mounts[{i}].mountPoint` must be unique: `{clean}`")
            seen[clean] = i

    def mount_options(self) -> None:
        """The 9p option values QEMU and mount(8) take, as enums: a value such as `none,path=/` must never
        reach `-virtfs` as extra options."""
        for i, m in enumerate(self.cfg.get("mounts") or []):
            ninep = (m or {}).get("9p") if isinstance(m, dict) else None
            if not isinstance(ninep, dict):
                continue
            for key, allowed in NINEP_ENUMS.items():
                value = ninep.get(key)
                if value is not None and str(value) not in allowed:
                    self.add(
                        ("mounts", i, "9p", key),
                        f"field `mounts[{i}].9p.{key}` must be one of {go_list(list(allowed))}; got {go_q(value)}",
                    )

    def provisions(self) -> bool:
        """validate.go lines 191-276; False where Lima returns early (a data/yq entry without a path)."""
        rules = guest_rules(str(self.cfg.get("os")))
        for i, p in enumerate(self.cfg.get("provision") or []):
            if not isinstance(p, dict):
                continue
            label = f"provision[{i}]"
            f = p.get("file")
            if isinstance(f, dict):
                if f.get("url"):
                    self.add((*("provision", i), "file"), f"field `{label}.file.url` must be empty during validation (script should already be embedded)")
                if f.get("digest"):
                    self.add((*("provision", i), "file"), f"field `{label}.file.digest` support is not yet implemented")
            mode = p.get("mode")
            if mode not in PROVISION_MODES:
                self.add(
                    ("provision", i, "mode"),
                    f"field `{label}.mode` must one of `system`, `user`, `boot`, `data`, `dependency`, `ansible`, or `yq`",
                )
            if mode != "dependency" and p.get("skipDefaultDependencyResolution") is not None:
                self.add(("provision", i, "skipDefaultDependencyResolution"),
                         f"field `{label}.mode` cannot set skipDefaultDependencyResolution, only valid on scripts of type `dependency`")  # fmt: skip
            refused = rules.refuse_provision_mode(mode)
            if refused:
                self.add(("provision", i, "mode"), refused)
            if mode in ("data", "yq"):
                path = p.get("path")
                if path is None:
                    self.add(("provision", i, "path"), f"field `{label}.path` must not be empty when mode is `{mode}`")
                    return False
                if not rules.absolute_guest_path(str(path)):
                    self.add(("provision", i, "path"), f"field `{label}.path` must be an absolute path")
                if mode == "data" and p.get("content") is None:
                    self.add(("provision", i, "content"), f"field `{label}.content` must not be empty when mode is `data`")
                if mode == "yq" and p.get("expression") is None:
                    self.add(("provision", i, "expression"), f"field `{label}.expression` must not be empty when mode is `yq`")
                perms = p.get("permissions")
                if perms is not None and not re.fullmatch(r"0?[0-7]{1,4}", str(perms)):
                    self.add(("provision", i, "permissions"), f"field `{label}.permissions` must be an octal number: "
                             f"strconv.ParseInt: parsing {json.dumps(str(perms))}: invalid syntax")  # fmt: skip
            else:
                if not p.get("script") and mode != "ansible":
                    self.add(("provision", i, "script"), f"field `{label}.script` must not be empty")
                for k in ("content", "overwrite", "owner"):
                    if p.get(k) is not None:
                        self.add(("provision", i, k), f"field `{label}.{k}` can only be set when mode is `data`")
                for k in ("path", "permissions"):
                    if p.get(k) is not None:
                        self.add(("provision", i, k), f"field `{label}.{k}` can only be set when mode is `data`, or `yq`")
                if p.get("format") is not None:
                    self.add(("provision", i, "format"), f"field `{label}.format` can only be set when mode is `yq`")
            if p.get("playbook"):
                self.playbook(i, p)
        return True

    def playbook(self, i: int, p: dict[str, Any]) -> None:
        label = f"provision[{i}]"
        if p.get("mode") != "ansible":
            self.add(("provision", i, "playbook"), f"field `{label}.playbook can only be set when mode is `ansible`")
        if p.get("script"):
            self.add(("provision", i, "script"), f"field `{label}.script must be empty if playbook is set")
        playbook = str(p["playbook"])
        if not os.path.exists(playbook):
            self.add(("provision", i, "playbook"), f"field `{label}.playbook` refers to an inaccessible path: "
                     f"{go_q(playbook)}: stat {playbook}: no such file or directory")  # fmt: skip

    def containerd(self) -> None:
        # as Lima: the archives are checked when containerd is wanted (the fill gives Lima's list when none
        # is set, so "must be provided" cannot happen); limapy installs none of them (DESIGN.md)
        c = self.cfg.get("containerd") or {}
        if not (c.get("user") or c.get("system")):
            return
        if not c.get("archives"):
            self.add(("containerd", "archives"), "field `containerd.archives` must be provided")
        for i, a in enumerate(c.get("archives") or []):
            self.file(a, ("containerd", "archives", i), f"containerd.archives[{i}]")

    def probes(self) -> None:
        for i, p in enumerate(self.cfg.get("probes") or []):
            if not isinstance(p, dict):
                continue
            f = p.get("file")
            if isinstance(f, dict):
                if f.get("url"):
                    self.add(("probes", i, "file"), f"field `probe[{i}].file.url` must be empty during validation (script should already be embedded)")
                if f.get("digest"):
                    self.add(("probes", i, "file"), f"field `probe[{i}].file.digest` support is not yet implemented")
            if not str(p.get("script") or "").startswith("#!"):
                self.add(("probes", i, "script"), f"field `probe[{i}].script` must start with a '#!' line")
            if p.get("mode") not in (None, "readiness"):
                self.add(("probes", i, "mode"), f"field `probe[{i}].mode` can only be \"readiness\"")

    def params(self) -> None:
        for k, v in (self.cfg.get("param") or {}).items():
            if not PARAM_NAME_RE.fullmatch(str(k)):
                self.add(("param", k), f"param {go_q(k)} name does not match regex {go_q(PARAM_NAME_RE.pattern)}")
            text = "" if v is None else str(v)
            for ch in text:
                if ch in "\t ":
                    continue
                if not ch.isprintable():
                    self.add(("param", k), f"param {go_q(k)} value contains unprintable character {ch!r}")
                    break


def _unexpandable(path: str) -> bool:
    """Lima's localpathutil.Expand refuses `~user/...` (only `~` and `~/...` expand)."""
    return path.startswith("~") and not (path == "~" or path.startswith("~/"))


def lima_warnings(cfg: dict[str, Any]) -> list[str]:
    """The warnings Lima's Validate logs (validate.go lines 269 and 273)."""
    out = []
    for i, p in enumerate(cfg.get("provision") or []):
        if not isinstance(p, dict):
            continue
        if p.get("playbook"):
            out.append(f"warning: provision[{i}]: provision mode `ansible` is deprecated, use "
                       f"`ansible-playbook {p['playbook']}` instead")  # fmt: skip
        if "LIMA_CIDATA" in str(p.get("script") or ""):
            out.append(f"warning: provision[{i}]: provisioning scripts should not reference the LIMA_CIDATA variables")
    return out


def validate(cfg: dict[str, Any], *, lima_version: str = LIMA_COMPAT_VERSION) -> list[Problem]:
    return _V(cfg, lima_version).run()


PARAM_USE_FIELDS = ("provision", "probes", "copyToHost", "portForwards", "mounts")


def unused_params(raw: dict[str, Any]) -> list[Problem]:
    """Lima refuses a template whose `param` keys are never referenced (checked before templating)."""
    params = raw.get("param")
    if not isinstance(params, dict) or not params:
        return []
    texts: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)
        elif isinstance(node, str):
            texts.append(node)

    for key in PARAM_USE_FIELDS:
        collect(raw.get(key))
    blob = "\n".join(texts)
    out = []
    for k in params:
        # validate.go line 590: the key goes into the pattern as it is, with no word boundary after `.Param.KEY`
        try:
            used = re.search(r"\{\{[^}]*\.Param\." + str(k) + r"[^}]*\}\}|\bPARAM_" + str(k) + r"\b", blob)
        except re.error:
            used = re.search(r"\{\{[^}]*\.Param\." + re.escape(str(k)) + r"[^}]*\}\}", blob)
        if not used and k != "internal_netplanOptional":
            out.append(
                Problem(
                    ("param", k),
                    f"field `param` key `{k}` is not used in any provision, probe, copyToHost, or portForward",
                )
            )
    return out
