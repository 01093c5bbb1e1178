"""Everything a boot needs, prepared in the instance dir, ending in the exact QEMU argv.

Shared by the host agent (which then launches it) and `limapy start --dry-run` (which prints it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limapy import store
from limapy.errors import LimapyError
from limapy.units import parse_size

log = logging.getLogger("limapy.boot")


@dataclass
class BootPlan:
    argv: list[str]
    ssh_port: int
    iid: str
    windows: bool
    install: bool  # Windows media attached (the install is not finished)
    tpm: bool
    accel: str
    notices: list[str] = field(default_factory=list)
    #: Windows: cmdline.WIN_INSTALL (answer the boot prompt), WIN_SETUP (Setup is under way) or WIN_INSTALLED.
    windows_boot: str | None = None
    rdp_port: int | None = None


def instance_config(inst: store.Instance) -> dict[str, Any]:
    """The instance's lima.yaml, layered and filled, as every command sees it."""
    from limapy.config import load_config

    return load_config(str(inst.lima_yaml), name=inst.name, instance_dir=inst.dir).cfg


def ssh_pubkeys(cfg: dict[str, Any]) -> list[str]:
    _, pub = store.ensure_user_key()
    keys = [pub]
    if (cfg.get("ssh") or {}).get("loadDotSSHPubKeys"):
        for p in sorted((Path.home() / ".ssh").glob("*.pub")):
            try:
                keys.append(p.read_text().strip())
            except OSError:
                continue
    return keys


def check_ssh_port(cfg: dict[str, Any]) -> int:
    """The configured ssh.localPort (0 = pick one at boot); refused when something listens on it."""
    from limapy import netutil

    want = int((cfg.get("ssh") or {}).get("localPort") or 0)
    if want and not netutil.port_is_free(want):
        raise LimapyError(
            f"ssh.localPort {want} is already in use on 127.0.0.1",
            hint="free it, or set `ssh.localPort: 0` to let limapy pick a free port",
        )
    return want


def choose_ssh_port(inst: store.Instance, cfg: dict[str, Any]) -> int:
    from limapy import netutil

    return check_ssh_port(cfg) or netutil.free_port()


def ensure_disk_size(inst: store.Instance, cfg: dict[str, Any]) -> None:
    from limapy import disk

    if not inst.disk.exists():
        raise LimapyError(
            f"the disk of `{inst.name}` is missing ({inst.disk})", hint="delete and re-create the instance"
        )
    disk.check_base(inst.dir, inst.disk, inst.name)
    disk.grow(inst.disk, parse_size(cfg["disk"]))


def windows_image(inst: store.Instance, cfg: dict[str, Any]) -> tuple[int | None, str | None, bool, list[str]]:
    """(image index, image name, is_server, warnings) for the answer file, read from the install ISO."""
    from limapy import winedition, winmedia

    win = (cfg.get("osOpts") or {}).get("Windows") or {}
    info, warnings = winmedia.inspect_iso_lenient(inst.iso.resolve())
    index, name, more = winedition.choose_image(
        info, arch=cfg["arch"], edition=win.get("edition"), image_index=win.get("imageIndex")
    )
    is_server = bool(info.is_server) if info is not None else False
    return index, name, is_server, [*warnings, *more]


def windows_password(inst: store.Instance) -> str:
    from limapy.cidata import windows

    try:
        pw = inst.password_file.read_text().strip()
        if pw:
            return pw
    except FileNotFoundError:
        pass
    pw = windows.new_password()
    windows.write_password_file(inst.password_file, pw)
    return pw


def prepare(
    inst: store.Instance,
    cfg: dict[str, Any],
    *,
    ssh_port: int | None = None,
    iid: str | None = None,
) -> BootPlan:
    from limapy import netutil, ssh
    from limapy.config import winopts
    from limapy.qemu import cmdline, firmware, host

    store.check_links(inst)  # nothing below may write through a link planted in the instance dir
    arch = str(cfg["arch"])
    facts = host.detect_host(arch)
    host.check_minimum_version(facts, cfg)
    notices = [facts.accel_notice] if facts.accel_notice else []
    windows = cfg.get("os") == "Windows"
    install = windows and not inst.win_done_installation.exists()
    windows_boot = windows_boot_kind(inst) if windows else None
    if windows_boot == cmdline.WIN_SETUP:
        notices.append(
            "Windows Setup has already written the disk: booting from it to continue the install (no boot keys); "
            "to install again from scratch, delete and re-create the instance"
        )
    tpm = bool(cfg.get("tpm"))
    if tpm:
        from limapy.qemu.tpm import find_swtpm

        find_swtpm()  # a clear error before anything runs
    port = ssh_port or choose_ssh_port(inst, cfg)
    key_path, _ = store.ensure_user_key()
    keys = ssh_pubkeys(cfg)
    mac = netutil.mac_address(inst.dir)
    iid = iid or f"iid-{int(time.time())}"
    ensure_disk_size(inst, cfg)

    fw_code = fw_vars = None
    # A Linux guest booted by direct kernel boot needs no UEFI: QEMU's own loader is faster (about 4 s
    # under TCG) and keeps bootindex 0 for the kernel.
    direct_kernel = not windows and inst.kernel.exists()
    pair = None if direct_kernel else firmware.find_firmware(arch, cfg, qemu_binary=facts.qemu_binary)
    if pair is not None:
        fw_code, fw_vars = firmware.prepare_vars(pair, arch, inst.dir)

    overrides: dict[str, Any] = {"fw_code": fw_code, "fw_vars": fw_vars}
    if windows:
        if install:
            if not inst.iso.exists():
                raise LimapyError(
                    f"the install ISO of `{inst.name}` is missing ({inst.iso} -> {inst.iso.resolve()})",
                    hint="restore the ISO at that path, or delete and re-create the instance",
                )
            from limapy.cidata import windows as wincidata

            index, name, is_server, warnings = windows_image(inst, cfg)
            notices += warnings
            virtio = inst.virtio_win.exists()
            msi = inst.openssh_msi.read_bytes() if inst.openssh_msi.exists() else None
            wincidata.write_answer_iso(
                inst.cidata_iso,
                cfg,
                name=inst.name,
                arch=arch,
                password=windows_password(inst),
                ssh_pubkeys=keys,
                image_index=index,
                image_name=name,
                is_server=is_server,
                virtio_win=virtio,
                opensshmsi=msi,
                product_key=windows_product_key(inst),
            )
            overrides["iso"] = inst.iso
            overrides["virtio_win"] = inst.virtio_win if virtio else None
    else:
        from limapy.cidata import linux

        linux.write_seed_iso(
            inst.cidata_iso, cfg, name=inst.name, instance_dir=inst.dir, iid=iid, ssh_pubkeys=keys, mac=mac
        )
        if inst.iso.exists():
            overrides["iso"] = inst.iso
        if inst.kernel.exists():
            overrides["kernel"] = inst.kernel
            if inst.initrd.exists():
                overrides["initrd"] = inst.initrd
            if inst.kernel_cmdline.exists():
                overrides["cmdline"] = inst.kernel_cmdline.read_text().strip()
    adds = []
    for d in cfg.get("additionalDisks") or []:
        from limapy import disk

        adds.append(disk.claim_additional_disk(str(d["name"]), inst.dir))
    overrides["additional_disks"] = tuple(adds)
    rdp_port = choose_rdp_port(inst) if windows and winopts.rdp_enabled(cfg) else None
    paths = cmdline.Paths.for_instance(inst.dir, **overrides)
    argv = cmdline.build_argv(
        cfg, inst.name, paths, facts, ssh_port=port, mac=mac, install=install, windows_boot=windows_boot,
        rdp_port=rdp_port,
    )
    ssh.write_ssh_config(inst, cfg, key_path, port)
    log.debug("boot plan for %s: port %d, accel %s", inst.name, port, facts.accel)
    return BootPlan(argv, port, iid, windows, install, tpm, facts.accel, notices, windows_boot, rdp_port)


def windows_boot_kind(inst: store.Instance) -> str:
    """Installed; Setup under way (it has partitioned the disk); or the first boot of an install."""
    from limapy import disk
    from limapy.qemu import cmdline

    if inst.win_done_installation.exists():
        return cmdline.WIN_INSTALLED
    if inst.disk.exists() and disk.partition_table(inst.disk) is not None:
        return cmdline.WIN_SETUP
    return cmdline.WIN_INSTALL


def windows_product_key(inst: store.Instance) -> str | None:
    try:
        key = inst.product_key_file.read_text().strip()
    except FileNotFoundError:
        return None
    return key or None


def choose_rdp_port(inst: store.Instance) -> int:
    """The RDP port of the last boot when it is still free (clients remember it), else a new one."""
    from limapy import netutil

    try:
        last = int(inst.rdp_port_file.read_text().strip())
    except (OSError, ValueError):
        last = 0
    port = last if 0 < last < 65536 and netutil.port_is_free(last) else netutil.free_port()
    store.atomic_write(inst.rdp_port_file, f"{port}\n".encode(), 0o600)
    return port
