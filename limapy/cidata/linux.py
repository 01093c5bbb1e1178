"""The NoCloud seed ("cidata" ISO) that configures a Linux guest on every boot.

Files (as Lima lays them out): user-data, meta-data, network-config, lima.env, param.env,
etc_environment, boot.sh, provision.{dependency,data,system,user}/%08d. `mode: boot` scripts go into
user-data's bootcmd. boot.sh runs the provision modes in Lima's order and finally writes
/run/lima-boot-done with the instance-id, which the host agent waits for.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

from limapy.cidata import Provision, params_of, provisions, user_of
from limapy.errors import LimapyError
from limapy.names import hostname_for, mount_tag

LABEL = "cidata"
SEED_MOUNT = "/mnt/lima-cidata"
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _mounts(cfg: dict[str, Any]) -> list[dict[str, str]]:
    mount_type = cfg.get("mountType") or "9p"
    if cfg.get("plain") or mount_type not in ("9p", "virtiofs"):
        return []
    from limapy.units import parse_size

    out = []
    for m in cfg.get("mounts") or []:
        location = str(m["location"])
        mount_point = str(m.get("mountPoint") or location)
        writable = bool(m.get("writable"))
        options = "rw" if writable else "ro"
        if mount_type == "9p":
            ninep = m.get("9p") or {}
            msize = parse_size(ninep.get("msize") or "128KiB")
            cache = ninep.get("cache") or ("mmap" if writable else "fscache")
            version = ninep.get("protocolVersion") or "9p2000.L"
            options += f",trans=virtio,version={version},msize={msize},cache={cache}"
        options += ",nofail"  # a missing device must not stop the boot
        out.append(
            {
                "tag": mount_tag(location, mount_point),
                "mount_point": mount_point,
                "type": mount_type,
                "options": options,
            }
        )
    return out


MAX_CERT_BYTES = 1 << 20
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def ca_certs(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """cloud-init's `ca_certs` from Lima's caCerts: PEM text from `certs` and from the host files `files`."""
    ca = cfg.get("caCerts") or {}
    certs = [str(c) for c in ca.get("certs") or []]
    for f in ca.get("files") or []:
        path = Path(os.path.expanduser(str(f)))
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
    if not certs and not ca.get("removeDefaults"):
        return None
    return {"remove_defaults": bool(ca.get("removeDefaults")), "trusted": certs}


def nameservers(cfg: dict[str, Any]) -> list[str]:
    """Lima's `dns` (only used with the host resolver off, as validation requires): checked IP addresses."""
    import ipaddress

    out = []
    for entry in cfg.get("dns") or []:
        try:
            out.append(str(ipaddress.ip_address(str(entry))))
        except ValueError:
            raise LimapyError(f"dns: `{entry}` is not an IP address") from None
    return out


def host_entries(cfg: dict[str, Any]) -> bytes:
    """hostResolver.hosts as /etc/hosts lines (boot.sh puts them between markers, as /etc/environment)."""
    import ipaddress

    lines = []
    for name, addr in sorted(((cfg.get("hostResolver") or {}).get("hosts") or {}).items()):
        if not _HOSTNAME.fullmatch(str(name)):
            raise LimapyError(f"hostResolver.hosts: `{name}` is not a host name")
        try:
            ip = ipaddress.ip_address(str(addr))
        except ValueError:
            raise LimapyError(f"hostResolver.hosts.{name}: `{addr}` is not an IP address") from None
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
    cfg: dict[str, Any],
    *,
    name: str,
    instance_dir: Path,
    iid: str,
    ssh_pubkeys: list[str],
    mac: str,
) -> dict[str, bytes]:
    """The files of the NoCloud seed, by path inside the ISO."""
    from limapy.cidata.render import raw_template, render

    user = user_of(cfg)
    if user["name"] == "root" or int(user["uid"]) == 0:
        raise LimapyError("user.name must not be root and user.uid must not be 0")
    keys = [k.strip() for k in ssh_pubkeys if k.strip()]
    if not keys:
        raise LimapyError("no SSH public key to put into the guest", hint="limapy creates _config/user.pub")
    user["comment"] = _CONTROL.sub("", str(user.get("comment") or ""))
    hostname = hostname_for(name)
    params = params_of(cfg)
    provs = provisions(cfg, name, allowed=("system", "user", "boot", "data", "dependency"))

    files: dict[str, bytes] = {}
    env: dict[str, str] = {
        "LIMA_CIDATA_NAME": name,
        "LIMA_CIDATA_HOSTNAME": hostname,
        "LIMA_CIDATA_IID": iid,
        "LIMA_CIDATA_USER": str(user["name"]),
        "LIMA_CIDATA_UID": str(user["uid"]),
        "LIMA_CIDATA_HOME": str(user["home"]),
        "LIMA_CIDATA_SHELL": str(user["shell"]),
        "LIMA_CIDATA_MNT": SEED_MOUNT,
        "LIMA_CIDATA_MOUNTTYPE": str(cfg.get("mountType") or "9p"),
        "LIMA_CIDATA_PLAIN": "1" if cfg.get("plain") else "0",
        "LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION": "0",
    }
    boot_scripts: list[tuple[str, str]] = []
    for p in provs:
        fname = f"{p.index:08d}"
        if p.mode == "boot":
            boot_scripts.append((fname, _b64(p.text)))
        elif p.mode == "data":
            _data_env(env, fname, p)
            files[f"provision.data/{fname}"] = p.text.encode()
        else:
            files[f"provision.{p.mode}/{fname}"] = p.text.encode()
            if p.mode == "dependency" and p.entry.get("skipDefaultDependencyResolution"):
                env["LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION"] = "1"

    param_env = _env_lines({f"PARAM_{k}": v for k, v in params.items()}, "param")
    bootcmd = ""
    if boot_scripts:
        bootcmd = render("linux/bootcmd.sh", scripts=boot_scripts, params_b64=_b64(param_env))

    files["user-data"] = render(
        "linux/user-data",
        name=name,
        hostname=hostname,
        timezone=str(cfg.get("timezone") or ""),
        mounts=_mounts(cfg),
        user=user,
        ssh_pubkeys=keys,
        per_boot_b64=_b64(raw_template("linux/per-boot.sh")),
        bootcmd=bootcmd,
        ca_certs=ca_certs(cfg),
    ).encode()
    files["meta-data"] = render("linux/meta-data", iid=iid, hostname=hostname).encode()
    files["network-config"] = render("linux/network-config", mac=mac, nameservers=nameservers(cfg)).encode()
    files["etc_hosts"] = host_entries(cfg)
    files["lima.env"] = _env_lines(env, "lima.env")
    files["param.env"] = param_env
    files["etc_environment"] = _env_lines({str(k): str(v) for k, v in (cfg.get("env") or {}).items()}, "env")
    files["boot.sh"] = raw_template("linux/boot.sh").encode()
    return files


def _data_env(env: dict[str, str], fname: str, p: Provision) -> None:
    path = str(p.entry.get("path") or "")
    if not path.startswith("/"):
        raise LimapyError(f"provision[{p.index}].path must be an absolute guest path for `mode: data`")
    prefix = f"LIMA_CIDATA_DATAFILE_{fname}"
    env[f"{prefix}_PATH"] = path
    env[f"{prefix}_OWNER"] = str(p.entry.get("owner") or "root:root")
    env[f"{prefix}_PERMISSIONS"] = str(p.entry.get("permissions") or "644")
    overwrite = p.entry.get("overwrite")
    env[f"{prefix}_OVERWRITE"] = "false" if overwrite is False else "true"


def seed_modes(files: dict[str, bytes]) -> dict[str, int]:
    """Rock Ridge modes: scripts executable, everything else read-only."""
    return {
        path: 0o555 if path == "boot.sh" or (path.startswith("provision.") and "data/" not in path) else 0o444
        for path in files
    }


def write_seed_iso(
    path: str | os.PathLike[str],
    cfg: dict[str, Any],
    *,
    name: str,
    instance_dir: Path,
    iid: str,
    ssh_pubkeys: list[str],
    mac: str,
) -> None:
    """Build the seed and write it atomically (0600) as a Rock Ridge + Joliet ISO labelled `cidata`."""
    from limapy.iso import write_iso_file

    files = build_seed(cfg, name=name, instance_dir=instance_dir, iid=iid, ssh_pubkeys=ssh_pubkeys, mac=mac)
    write_iso_file(path, files, LABEL, joliet=True, rock_ridge=True, modes=seed_modes(files))
