"""Lima's FillDefault: `_config/default.yaml` < instance lima.yaml < `_config/override.yaml` < builtins.

The result is the plain `cfg` dict every other module reads (Lima's key names, every default filled).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from limapy.base.names import LIMA_YAML
from limapy.base.netutil import mac_from_seed
from limapy.base.units import format_size
from limapy.config.hostinfo import HostInfo, default_guest_user
from limapy.config.listmerge import entry_key, merge_entry
from limapy.guest.rules import for_os as guest_rules

# lists concatenated override + instance + default (first matching rule wins => override first)
LIST_CONCAT = {
    ("images",),
    ("additionalDisks",),
    ("provision",),
    ("probes",),
    ("portForwards",),
    ("copyToHost",),
    ("containerd", "archives"),
    ("firmware", "images"),
    ("mountTypesUnsupported",),
}

#: Lima's builtin `containerd.archives` (its embedded pkg/limayaml/containerd.yaml, v2.2.0-153, commit
#: 183a60d): filled when the layered list is empty, as Lima does. limapy never downloads or installs them;
#: they are filled so `validate --fill`, `list --json` and `info` show what Lima would.
_NERDCTL = "https://github.com/containerd/nerdctl/releases/download/v2.3.5/nerdctl-full-2.3.5-linux-{}.tar.gz"
CONTAINERD_ARCHIVES: tuple[dict[str, str], ...] = (
    {"location": _NERDCTL.format("amd64"), "arch": "x86_64",
     "digest": "sha256:b697295c623639734aaab737523c808fd3cc8d3046039fd94fff1744e4c317aa"},
    {"location": _NERDCTL.format("arm64"), "arch": "aarch64",
     "digest": "sha256:6e4b687f1d138e750a3c8372abc0f81d3d7490b6359c48c0562fc7dfe98859b2"},
)  # fmt: skip



def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _layer(o: Any, y: Any, d: Any, path: tuple[str, ...]) -> Any:
    if path in LIST_CONCAT:
        out: list[Any] = []
        for part in (o, y, d):
            if isinstance(part, list):
                out += copy.deepcopy(part)
        return out if (o is not None or y is not None or d is not None) else None
    if path == ("dns",):
        for part in (o, y, d):
            if isinstance(part, list) and part:
                return copy.deepcopy(part)
        return None
    if path in (("caCerts", "files"), ("caCerts", "certs")):
        seen: list[Any] = []
        for part in (d, y, o):
            for item in part or []:
                if item not in seen:
                    seen.append(item)
        return seen
    if path == ("mounts",):
        return _merge_by(d, y, o, ("mountPoint", "location"))
    if path == ("networks",):
        return _merge_by(d, y, o, ("interface",))
    dicts = [p for p in (o, y, d) if p is not None]
    if dicts and all(isinstance(p, dict) for p in dicts):
        keys: list[str] = []
        for p in (y, d, o):
            for k in p or {}:
                if k not in keys:
                    keys.append(k)
        return {
            k: _layer((o or {}).get(k), (y or {}).get(k), (d or {}).get(k), (*path, k)) for k in keys
        }
    return copy.deepcopy(_first(o, y, d))


def _merge_by(d: Any, y: Any, o: Any, keys: tuple[str, ...]) -> Any:
    """default < instance < override: an entry with a key seen before updates that entry."""
    if d is None and y is None and o is None:
        return None
    out: list[Any] = []
    index: dict[str, int] = {}
    for part in (d, y, o):
        for item in part or []:
            item = copy.deepcopy(item)
            ident = entry_key(item, keys)
            if ident is not None and ident in index:
                merge_entry(out[index[ident]], item, later_wins=True)
                continue
            if ident is not None:
                index[ident] = len(out)
            out.append(item)
    return out


def layer(defaults: dict[str, Any] | None, doc: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    keys: list[str] = []
    for part in (doc, defaults or {}, override or {}):
        for k in part:
            if k not in keys:
                keys.append(k)
    out = {}
    for k in keys:
        out[k] = _layer((override or {}).get(k), doc.get(k), (defaults or {}).get(k), (k,))
    return out


def _d(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    v = cfg.get(key)
    if not isinstance(v, dict):
        v = {}
        cfg[key] = v
    return v


def _set(m: dict[str, Any], key: str, value: Any) -> None:
    if m.get(key) is None:
        m[key] = value


def go_clean(path: str) -> str:
    """Go's filepath.Clean on a POSIX host (a leading `//` is one `/`, an empty path is `.`)."""
    import posixpath

    out = posixpath.normpath(path) if path else "."
    return "/" + out.lstrip("/") if out.startswith("//") else out


def fill(
    layered: dict[str, Any],
    *,
    host: HostInfo,
    name: str = "default",
    instance_dir: str | None = None,
    file_path: str | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Apply Lima's builtin defaults to an already layered config. Returns a new dict.

    `file_path` is the lima.yaml's path: network MACs derive from machine-id + `<file_path>#<i>` as in Lima
    (default: `<instance_dir>/lima.yaml`). Template variables are rendered as Lima renders them
    (config.tmplvars); a field that does not render is kept as it was and named in `warnings`.
    """
    from limapy.base import dirs
    from limapy.config.tmplvars import expand_tilde, guest_data, host_data, params, render

    if file_path is None and instance_dir:
        file_path = os.path.join(instance_dir, LIMA_YAML)
    cfg = copy.deepcopy(layered)
    cfg.pop("base", None)
    if cfg.get("vmType") in (None, "", "default"):
        cfg["vmType"] = "qemu"
    if cfg.get("os") in (None, "", "default"):
        cfg["os"] = "Linux"
    if cfg.get("arch") in (None, "", "default"):
        cfg["arch"] = host.arch
    arch = cfg["arch"]
    rules = guest_rules(str(cfg["os"]))  # Lima's defaults for this `os` (limapy.guest.rules)

    images = cfg.get("images") or []
    for img in images:
        if isinstance(img, dict):
            _set(img, "arch", arch)
            for sub in ("kernel", "initrd"):
                if isinstance(img.get(sub), dict):
                    _set(img[sub], "arch", img["arch"])
    cfg["images"] = images

    if not cfg.get("cpus"):
        cfg["cpus"] = min(4, host.cpus)
    if cfg.get("memory") in (None, ""):
        cfg["memory"] = format_size(min(4 << 30, host.memory // 2))
    if cfg.get("disk") in (None, ""):
        cfg["disk"] = "100GiB"
    elif isinstance(cfg["disk"], dict):
        cfg["disk"] = cfg["disk"].get("size") or "100GiB"

    disks = []
    for disk in cfg.get("additionalDisks") or []:
        disk = {"name": disk} if isinstance(disk, str) else dict(disk or {})
        disks.append(disk)  # `format` stays unset, as Lima's FillDefault leaves it (true when used)
    cfg["additionalDisks"] = disks

    user = _d(cfg, "user")
    uname, uid = default_guest_user(host)
    _set(user, "name", uname)
    _set(user, "comment", host.full_name if host.uid != 0 else "")
    _set(user, "uid", uid)
    _set(user, "home", rules.home)
    _set(user, "shell", rules.shell)
    _set(user, "passwordlessSudo", rules.passwordless_sudo)
    param = params(cfg.get("param"))  # Lima's param is map[string]string: YAML `true` is "true", null ""
    cfg["param"] = param
    user["home"] = render(str(user["home"]), guest_data(name, user, param), "`user.home` value", warnings)

    cfg["mountTypesUnsupported"] = cfg.get("mountTypesUnsupported") or []
    if cfg.get("mountType") in (None, "", "default"):
        cfg["mountType"] = rules.default_mount_type(cfg["mountTypesUnsupported"])
    _set(cfg, "mountInotify", False)
    mounts = []
    home = str(dirs.limapy_home())
    host_vars = host_data(name, instance_dir or os.path.join(home, name), str(Path.home()), host.user, host.uid,
                          param, home)  # fmt: skip
    guest_vars = guest_data(name, user, param)
    for m in cfg.get("mounts") or []:
        m = dict(m or {})
        if isinstance(m.get("location"), str):
            loc = m["location"]
            rendered = render(loc, host_vars, "mount location", warnings)
            if rendered != loc or "{{" not in loc:  # Lima cleans the location when it rendered
                loc = go_clean(rendered)
            m["location"] = expand_tilde(loc)
        if isinstance(m.get("mountPoint"), str):
            m["mountPoint"] = render(m["mountPoint"], guest_vars, "mount point", warnings)
        _set(m, "mountPoint", m.get("location"))
        _set(m, "writable", False)
        sshfs = _d(m, "sshfs")
        _set(sshfs, "cache", True)
        _set(sshfs, "followSymlinks", False)
        _set(sshfs, "sftpDriver", "")
        p9 = _d(m, "9p")
        _set(p9, "securityModel", "none")
        _set(p9, "protocolVersion", "9p2000.L")
        _set(p9, "msize", "128KiB")
        _set(p9, "cache", "mmap" if m["writable"] else "fscache")
        _d(m, "virtiofs")  # queueSize unset: Lima's QEMU driver fills it (1024) later, not FillDefault
        mounts.append(m)
    cfg["mounts"] = mounts

    ssh = _d(cfg, "ssh")
    _set(ssh, "localPort", 0)
    for k in ("loadDotSSHPubKeys", "forwardAgent", "forwardX11", "forwardX11Trusted", "overVsock"):
        _set(ssh, k, False)

    fw = _d(cfg, "firmware")
    _set(fw, "legacyBIOS", False)
    fw["images"] = fw.get("images") or []

    audio = _d(cfg, "audio")
    _set(audio, "device", "")
    _set(audio, "interface", "")
    video = _d(cfg, "video")
    _set(video, "display", "none")
    vnc = _d(video, "vnc")
    _set(vnc, "display", "127.0.0.1:0,to=9")

    provs = cfg.get("provision") or []
    for i, p in enumerate(provs):
        if not isinstance(p, dict):
            continue
        _set(p, "mode", "system")
        what = f"provision[{i}]"
        if p["mode"] == "data":
            if p.get("content") is None:
                p["content"] = ""
            elif isinstance(p["content"], str):
                p["content"] = render(p["content"], guest_vars, f"{what} data content", warnings)
            _set(p, "overwrite", True)
        if p["mode"] == "yq":
            if isinstance(p.get("expression"), str):
                p["expression"] = render(p["expression"], guest_vars, f"{what} expression", warnings)
            _set(p, "format", "auto")
        if p["mode"] in ("data", "yq"):  # Lima's FillDefault, defaults.go lines 483-509
            if p.get("owner") is None:
                p["owner"] = rules.provision_owner
            elif isinstance(p["owner"], str):
                p["owner"] = render(p["owner"], guest_vars, f"{what} owner", warnings)
            if isinstance(p.get("path"), str):
                p["path"] = render(p["path"], guest_vars, f"{what} path", warnings)
            _set(p, "permissions", "644")
        if isinstance(p.get("script"), str) and p["script"]:
            p["script"] = render(p["script"], guest_vars, f"{what} script", warnings)
    cfg["provision"] = provs

    _set(cfg, "upgradePackages", False)
    cont = _d(cfg, "containerd")
    _set(cont, "system", False)
    _set(cont, "user", rules.containerd_user(arch))
    archives = cont.get("archives") or [dict(a) for a in CONTAINERD_ARCHIVES]  # every arch, as Lima's list
    for a in archives:
        if isinstance(a, dict) and not a.get("arch"):
            a["arch"] = arch
    cont["archives"] = archives
    _set(cfg, "guestInstallPrefix", "/usr/local")

    probes = cfg.get("probes") or []
    for i, pr in enumerate(probes):
        if isinstance(pr, dict):
            if isinstance(pr.get("script"), str):
                pr["script"] = render(pr["script"], guest_vars, f"probe[{i}] script", warnings)
            _set(pr, "mode", "readiness")
            _set(pr, "description", f"user probe {i + 1}/{len(probes)}")
    cfg["probes"] = probes

    cfg["portForwards"] = [
        _fill_port_forward(pf, host_vars, guest_vars, host_vars["Dir"], warnings)
        for pf in cfg.get("portForwards") or []
    ]
    copies = []
    for c in cfg.get("copyToHost") or []:
        c = dict(c or {}) if isinstance(c, dict) else c
        if isinstance(c, dict):
            if isinstance(c.get("guest"), str):
                c["guest"] = render(c["guest"], guest_vars, "copyToHost guest", warnings)
            if isinstance(c.get("host"), str):  # no `~` expansion: Lima requires an absolute path
                c["host"] = render(c["host"], host_vars, "copyToHost host", warnings)
        copies.append(c)
    cfg["copyToHost"] = copies
    _set(cfg, "message", "")
    if isinstance(cfg["message"], str) and cfg["message"]:
        # Lima renders the message with the instance's fields (and the host's OS and arch) when it shows it
        cfg["message"] = _message(cfg, host_vars, host, warnings)

    nets = []
    for i, n in enumerate(cfg.get("networks") or []):
        n = dict(n or {})
        _set(n, "interface", f"lima{i}")
        _set(n, "metric", 100)
        if not n.get("macAddress"):
            n["macAddress"] = mac_from_seed(host.machine_id + f"{file_path or name}#{i}")
        nets.append(n)
    cfg["networks"] = nets

    cfg["env"] = cfg.get("env") or {}
    cfg["dns"] = cfg.get("dns") or []
    hr = _d(cfg, "hostResolver")
    _set(hr, "enabled", True)
    _set(hr, "ipv6", False)
    hr["hosts"] = hr.get("hosts") or {}
    _set(cfg, "propagateProxyEnv", True)
    ca = _d(cfg, "caCerts")
    _set(ca, "removeDefaults", False)
    ca["files"] = ca.get("files") or []
    ca["certs"] = ca.get("certs") or []
    _set(cfg, "plain", False)
    if cfg.get("timezone") is None:
        cfg["timezone"] = host.timezone
    _set(cfg, "nestedVirtualization", False)
    _set(cfg, "tpm", False)

    vmopts = _d(cfg, "vmOpts")
    qemu = vmopts.get("qemu")
    if not isinstance(qemu, dict):
        qemu = {}
        vmopts["qemu"] = qemu
    legacy_cpu = cfg.pop("cpuType", None)
    cpu_types = qemu.get("cpuType") or {}
    if isinstance(legacy_cpu, dict):
        for k, v in legacy_cpu.items():
            cpu_types.setdefault(k, v)
    qemu["cpuType"] = cpu_types

    osopts = _d(cfg, "osOpts")
    win = osopts.get("Windows")
    if not isinstance(win, dict):
        win = {}
        osopts["Windows"] = win
    win["virtioWin"] = win.get("virtioWin") or []
    _set(win, "edition", None)
    _set(win, "imageIndex", None)
    if isinstance(win.get("opensshMsi"), dict):  # limapy extension: one mapping reads as a list of one
        win["opensshMsi"] = [win["opensshMsi"]]
    rules.fill(cfg)  # the OS's own options (Windows: where OpenSSH comes from)

    if cfg["plain"]:
        cfg["mounts"] = []
        cfg["portForwards"] = [pf for pf in cfg["portForwards"] if pf.get("static")]
        cont["system"] = False
        cont["user"] = False
    return cfg


def _message(cfg: dict[str, Any], host_vars: dict[str, Any], host: HostInfo, warnings: list[str] | None) -> str:
    """`message` with the fields Lima's FormatData gives it (pkg/store/instance.go AddGlobalFields)."""
    from limapy.expr import gotmpl

    data = {"Name": host_vars["Name"], "Dir": host_vars["Dir"], "HostOS": host.os.lower(), "HostArch": host.arch,
            "LimaHome": host_vars["LimaHome"], "IdentityFile": os.path.join(host_vars["LimaHome"], "_config", "user"),
            "Param": cfg.get("param") or {}, "Config": cfg, "VMType": cfg.get("vmType"), "Arch": cfg.get("arch"),
            "CPUs": cfg.get("cpus")}  # fmt: skip
    data["Instance"] = dict(data)  # Lima's FormatData embeds the Instance (a copy: no cycle to print)
    try:
        return gotmpl.render(cfg["message"], data)
    except gotmpl.TemplateError as e:
        if warnings is not None:
            warnings.append(f"warning: cannot execute the message template: {e}")
        return str(cfg["message"])


def _fill_port_forward(
    pf: Any, host_vars: dict[str, Any], guest_vars: dict[str, Any], instance_dir: str,
    warnings: list[str] | None = None,
) -> Any:
    """Lima's FillPortForwardDefaults (defaults.go line 991)."""
    from limapy.config.tmplvars import render

    if not isinstance(pf, dict):
        return pf
    pf = dict(pf)
    _set(pf, "proto", "any")
    if pf.get("guestIP") is None:
        pf["guestIP"] = "0.0.0.0" if pf.get("guestIPMustBeZero") else "127.0.0.1"
    _set(pf, "guestIPMustBeZero", pf["guestIP"] in ("0.0.0.0", "::ffff:0.0.0.0"))
    _set(pf, "hostIP", "127.0.0.1")
    if not pf.get("guestPortRange"):
        gp = pf.get("guestPort")
        pf["guestPortRange"] = [gp, gp] if gp else [1, 65535]
    if isinstance(pf.get("guestSocket"), str) and pf["guestSocket"]:
        pf["guestSocket"] = render(pf["guestSocket"], guest_vars, "guestSocket", warnings)
    if isinstance(pf.get("hostSocket"), str) and pf["hostSocket"]:
        hsock = render(pf["hostSocket"], host_vars, "hostSocket", warnings)
        if not hsock.startswith("/"):  # a relative socket lives in <instance>/sock/
            hsock = os.path.join(instance_dir, "sock", hsock)
        pf["hostSocket"] = hsock
    elif not pf.get("hostPortRange"):
        hp = pf.get("hostPort")
        pf["hostPortRange"] = [hp, hp] if hp else list(pf["guestPortRange"])
    return pf
