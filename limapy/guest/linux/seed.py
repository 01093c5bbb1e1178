"""The NoCloud seed ("cidata" ISO) that configures a Linux guest on every boot.

Files (as Lima lays them out): user-data, meta-data, network-config, lima.env, param.env,
etc_environment, boot.sh, provision.{dependency,data,yq,system,user}/%08d. `mode: boot` scripts go into
user-data's bootcmd. boot.sh runs the provision modes in Lima's order and finally writes
/run/lima-boot-done with the instance-id, which the host agent waits for. `mode: yq` steps are applied by
limapy's own yq (util/limapy-yq and util/limapy/, the very modules `limapy yq` runs) with the guest's Python,
where Lima runs the yq built into its guest agent.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import TypedDict

from limapy.base.errors import LimapyError
from limapy.base.names import hostname_for, mount_tag
from limapy.config.model import Mount, Spec
from limapy.config.validate_fields import ENV_KEY, HOSTNAME, resolve_host
from limapy.guest.provision import Step, provisions

LABEL = "cidata"
SEED_MOUNT = "/mnt/lima-cidata"
_ENV_KEY = ENV_KEY
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def kernel_mount_options(spec: Spec, m: Mount) -> str:
    """mount(8) options of a 9p or virtiofs mount (the seed's `mounts:` entry adds `nofail`)."""
    options = "rw" if m.writable else "ro"
    if spec.mount_type == "9p":
        p9 = m.ninep
        options += f",trans=virtio,version={p9.protocol_version},msize={p9.msize},cache={p9.cache}"
    return options


def _mounts(spec: Spec) -> list[dict[str, str]]:
    kind = spec.mount_type
    if kind not in ("9p", "virtiofs"):
        return []
    return [
        {
            "tag": mount_tag(m.location, m.mount_point),
            "mount_point": m.mount_point,
            "type": kind,
            "options": kernel_mount_options(spec, m) + ",nofail",  # a missing device must not stop the boot
        }
        for m in spec.mounts_of(kind)
    ]


MAX_CERT_BYTES = 1 << 20


class CACertsConfig(TypedDict):
    """cloud-init's `ca_certs` module configuration."""

    remove_defaults: bool
    trusted: list[str]


_HOSTNAME = HOSTNAME


def ca_certs(spec: Spec) -> CACertsConfig | None:
    """cloud-init's `ca_certs` from Lima's caCerts: PEM text from `certs` and from the host files `files`."""
    certs = list(spec.ca_certs.certs)
    for f in spec.ca_certs.files:
        path = Path(os.path.expanduser(f))
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_CERT_BYTES + 1)
        except OSError as e:
            raise LimapyError(f"caCerts.files: cannot read {path}: {e.strerror}") from None
        if len(raw) > MAX_CERT_BYTES:
            raise LimapyError(f"caCerts.files: {path} is larger than 1 MiB; it is no certificate")
        certs.append(raw.decode("ascii", "replace"))
    for i, pem in enumerate(certs):
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise LimapyError(f"caCerts: certificate {i + 1} is not PEM (no BEGIN CERTIFICATE line)")
    if not certs and not spec.ca_certs.remove_defaults:
        return None
    return {"remove_defaults": spec.ca_certs.remove_defaults, "trusted": certs}


def nameservers(spec: Spec) -> list[str]:
    """Lima's `dns` (only used with the host resolver off, as validation requires): checked IP addresses."""
    import ipaddress

    out = []
    for entry in spec.dns:
        try:
            out.append(str(ipaddress.ip_address(entry)))
        except ValueError:
            raise LimapyError(f"dns: `{entry}` is not an IP address") from None
    return out


def host_entries(spec: Spec) -> bytes:
    """hostResolver.hosts as /etc/hosts lines (boot.sh puts them between markers, as /etc/environment); a value
    that names host.lima.internal or another entry is written as the address it stands for."""
    hosts = dict(spec.host_resolver.hosts)
    lines = []
    for name, addr in sorted(hosts.items()):
        if not _HOSTNAME.fullmatch(name):
            raise LimapyError(f"hostResolver.hosts: `{name}` is not a host name")
        ip = resolve_host(addr, hosts)
        if ip is None:
            raise LimapyError(f"hostResolver.hosts.{name}: `{addr}` is not an IP address")
        lines.append(f"{ip} {name}\n")
    return "".join(lines).encode()


def _env_lines(pairs: dict[str, str], what: str) -> bytes:
    """KEY=VALUE lines read back with `export "$line"` (never evaluated by a shell)."""
    lines = []
    for key in sorted(pairs):
        value = pairs[key]
        if not _ENV_KEY.fullmatch(key):
            raise LimapyError(f"{what}: `{key}` is not a valid environment variable name")
        if "\n" in value or "\r" in value or "\0" in value:
            raise LimapyError(f"{what}: the value of `{key}` must be a single line")
        lines.append(f"{key}={value}\n")
    return "".join(lines).encode()


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def build_seed(
    spec: Spec,
    *,
    name: str,
    iid: str,
    ssh_pubkeys: list[str],
    mac: str,
) -> dict[str, bytes]:
    """The files of the NoCloud seed, by path inside the ISO."""
    from limapy.guest.render import raw_template, render

    user = spec.user
    if user.name == "root" or user.uid == 0:
        raise LimapyError("user.name must not be root and user.uid must not be 0")
    keys = [k.strip() for k in ssh_pubkeys if k.strip()]
    if not keys:
        raise LimapyError("no SSH public key to put into the guest", hint="limapy creates _config/user.pub")
    hostname = hostname_for(name)
    steps = provisions(spec, name, allowed=("system", "user", "boot", "data", "dependency", "yq"))

    files: dict[str, bytes] = {}
    env: dict[str, str] = {
        "LIMA_CIDATA_NAME": name,
        "LIMA_CIDATA_HOSTNAME": hostname,
        "LIMA_CIDATA_IID": iid,
        "LIMA_CIDATA_USER": user.name,
        "LIMA_CIDATA_UID": str(user.uid),
        "LIMA_CIDATA_HOME": user.home,
        "LIMA_CIDATA_SHELL": user.shell,
        "LIMA_CIDATA_MNT": SEED_MOUNT,
        "LIMA_CIDATA_MOUNTTYPE": spec.mount_type,
        "LIMA_CIDATA_MOUNTS": str(len(spec.shared_mounts)),
        "LIMA_CIDATA_PLAIN": "1" if spec.plain else "0",
        "LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION": "0",
    }
    boot_scripts: list[tuple[str, str]] = []
    for step in steps:
        fname = f"{step.index:08d}"
        if step.mode == "boot":
            boot_scripts.append((fname, _b64(step.text)))
        elif step.mode == "data":
            _data_env(env, fname, step)
            files[f"provision.data/{fname}"] = step.data
        elif step.mode == "yq":
            _yq_env(env, fname, step)
            files[f"provision.yq/{fname}"] = step.data
        else:
            files[f"provision.{step.mode}/{fname}"] = step.data
            if step.mode == "dependency" and step.entry.skip_default_dependency_resolution:
                env["LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION"] = "1"

    param_env = _env_lines({f"PARAM_{k}": v for k, v in spec.param.items()}, "param")
    # bootcmd, on every boot: the boot script's own unit, queued to start once this stage ends (early.sh), then
    # the `mode: boot` scripts, whose status stays the last one (cloud-init runs the entries as one script)
    early = "".join(ln for ln in raw_template("linux/early.sh").splitlines(True) if not ln.startswith("#"))
    bootcmd = [early]
    if boot_scripts:
        bootcmd.append(render("linux/bootcmd.sh", scripts=boot_scripts, params_b64=_b64(param_env)))

    files["user-data"] = render(
        "linux/user-data",
        name=name,
        hostname=hostname,
        timezone=spec.timezone,
        mounts=_mounts(spec),
        user={
            "name": user.name, "comment": _CONTROL.sub("", user.comment), "uid": user.uid, "home": user.home,
            "shell": user.shell, "passwordlessSudo": user.passwordless_sudo,
        },
        ssh_pubkeys=keys,
        per_boot_b64=_b64(raw_template("linux/per-boot.sh")),
        bootcmd=bootcmd,
        ca_certs=ca_certs(spec),
    ).encode()  # fmt: skip
    files["meta-data"] = render("linux/meta-data", iid=iid, hostname=hostname).encode()
    files["network-config"] = render("linux/network-config", mac=mac, nameservers=nameservers(spec)).encode()
    files["etc_hosts"] = host_entries(spec)
    files["lima.env"] = _env_lines(env, "lima.env")
    files["param.env"] = param_env
    files["etc_environment"] = _env_lines(dict(spec.env), "env")
    files["boot.sh"] = raw_template("linux/boot.sh").encode()
    if "provision.yq" in {path.split("/", 1)[0] for path in files}:
        files.update(yq_tool())
    return files


#: limapy's yq as the guest runs it: the entry script and the (stdlib-only) modules it imports.
YQ_MODULES = ("expr/yqparse.py", "expr/yqlite.py", "expr/yqformats.py", "expr/yqcli.py")


def yq_tool() -> dict[str, bytes]:
    from importlib.resources import files

    src = files("limapy")
    out = {f"util/limapy/{m}": (src / m).read_bytes() for m in YQ_MODULES}
    out["util/limapy/__init__.py"] = b"# limapy's yq modules, carried by the seed (see boot.sh)\n"
    out["util/limapy/expr/__init__.py"] = b""
    out["util/limapy-yq"] = b"import sys\n\nfrom limapy.expr.yqcli import main\n\nsys.exit(main())\n"
    return out


def _yq_env(env: dict[str, str], fname: str, step: Step) -> None:
    """Lima's lima.env entries for a yq step (cidata.TEMPLATE.d/lima.env)."""
    path = step.path or ""
    if not path.startswith("/"):
        raise LimapyError(f"provision[{step.index}].path must be an absolute guest path for `mode: yq`")
    prefix = f"LIMA_CIDATA_YQ_PROVISION_{fname}"
    env[f"{prefix}_FORMAT"] = step.entry.format
    env[f"{prefix}_OWNER"] = step.owner or "root:root"
    env[f"{prefix}_PATH"] = path
    env[f"{prefix}_PERMISSIONS"] = step.permissions or "644"


def _data_env(env: dict[str, str], fname: str, step: Step) -> None:
    path = step.path or ""
    if not path.startswith("/"):
        raise LimapyError(f"provision[{step.index}].path must be an absolute guest path for `mode: data`")
    prefix = f"LIMA_CIDATA_DATAFILE_{fname}"
    env[f"{prefix}_PATH"] = path
    env[f"{prefix}_OWNER"] = step.owner or "root:root"
    env[f"{prefix}_PERMISSIONS"] = step.permissions or "644"
    env[f"{prefix}_OVERWRITE"] = "true" if step.entry.overwrite else "false"


def seed_modes(files: dict[str, bytes]) -> dict[str, int]:
    """Rock Ridge modes: scripts executable, everything else read-only."""
    return {
        path: 0o555 if path == "boot.sh" or (path.startswith("provision.") and "data/" not in path) else 0o444
        for path in files
    }


def write_seed_iso(
    path: str | os.PathLike[str],
    spec: Spec,
    *,
    name: str,
    iid: str,
    ssh_pubkeys: list[str],
    mac: str,
) -> None:
    """Build the seed and write it atomically (0600) as a Rock Ridge + Joliet ISO labelled `cidata`."""
    from limapy.base.iso import write_iso_file

    files = build_seed(spec, name=name, iid=iid, ssh_pubkeys=ssh_pubkeys, mac=mac)
    write_iso_file(path, files, LABEL, joliet=True, rock_ridge=True, modes=seed_modes(files))
