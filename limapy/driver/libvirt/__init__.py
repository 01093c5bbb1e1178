"""The libvirt driver: the same instance run by libvirtd, on this machine or on a remote KVM host.

    plan (reads: instance, libvirt host)  ->  materialize (volumes, seed, domain defined)  ->  launch

The instance directory keeps what it keeps for QEMU (lima.yaml, the disk as created, ssh.config, logs);
the libvirt host keeps the running copy: domain `limapy-NAME` (with limapy's metadata) and its volumes in
the pool `limapy` (limapy.driver.libvirt.conn). The disk is imported on the first start; from then on the
volume is the instance's disk. The host agent (readiness, mounts, forwards) is the QEMU driver's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from limapy import guest, ssh
from limapy.base import dirs, netutil
from limapy.base.errors import LimapyError
from limapy.config.model import BootKind, Spec
from limapy.driver import Fetched, Say, Snapshot, check_ssh_port, layout
from limapy.driver.libvirt import conn as lvconn
from limapy.driver.libvirt import domain, target
from limapy.driver.libvirt.machine import ACTIVE, LibvirtMachine
from limapy.driver.plan import READY_GUEST, BootPlan
from limapy.guest.boot import CD_DRIVERS, INSTALL, SETUP
from limapy.instance import store, summary

log = logging.getLogger("limapy.driver.libvirt")

#: A disk volume of an install with this much written has been partitioned by its installer: it boots first.
SETUP_WRITTEN = 64 << 20
SUSPEND_FORMAT = 1


def _virt_type(conn: Any, spec: Spec, local: bool) -> str:
    from limapy.qemu import host

    forced = (os.environ.get(dirs.ENV_ACCEL) or "").strip().lower()
    if forced:
        return "kvm" if forced == "kvm" else "qemu"
    if local:
        probe = host.HostProbe()
        accel, _ = host.choose_accel(spec.arch, host.normalize_arch(probe.machine), probe)
        return "kvm" if accel == "kvm" else "qemu"
    try:
        conn.getDomainCapabilities(None, spec.arch, None, "kvm", 0)
        return "kvm"
    except Exception:
        return "qemu"


def _firmware(spec: Spec, local: bool) -> domain.Firmware | None:
    """UEFI firmware for a boot that needs it: this host's pair (size-checked as for QEMU) when the guest runs
    here, else libvirt's own choice on its host."""
    if spec.boot_kind is not BootKind.UEFI:
        return None
    if not local:
        return domain.Firmware()
    from limapy.qemu import firmware

    pair = firmware.find_firmware(spec.arch, spec.firmware_images)
    firmware.check_pair(pair, spec.arch)
    if spec.arch == "aarch64" and pair.code.stat().st_size != firmware.AARCH64_FLASH:
        return domain.Firmware()  # libvirt's descriptors name a 64 MiB pair; ours would need padding
    template = pair.vars_template
    return domain.Firmware(loader=str(pair.code), nvram_template=str(template) if template else None)


@dataclasses.dataclass(frozen=True)
class Where:
    uri: str
    jump: target.Jump | None
    pool_path: str
    pool: Any = None  # limapy's pool there, when it exists yet


class LibvirtDriver:
    name = "libvirt"

    # -- create --------------------------------------------------------------------------------------------
    def check(self, spec: Spec, connect: str | None = None) -> None:
        uri = connect or os.environ.get("LIBVIRT_DEFAULT_URI") or None
        if uri is not None:
            target.parse(uri)
        lvconn.connect(uri).close()
        from limapy.qemu import cmdline

        cmdline.display_arg(spec)
        cmdline.static_forwards(spec)
        if spec.additional_disks:
            raise LimapyError("the libvirt driver does not attach additionalDisks yet", hint="use the qemu driver")

    def create(self, tmp: Path, spec: Spec, fetched: Fetched, say: Say) -> None:
        layout.lay_out(tmp, fetched, say)  # the same local layout as QEMU's; uploaded on the first start
        requested = target.read_requested(tmp) or (os.environ.get("LIBVIRT_DEFAULT_URI") or "").strip() or None
        c = lvconn.connect(requested)
        try:  # the URI as asked for (a remote one keeps its keyfile= and no_verify=), else libvirt's default
            target.record_uri(tmp, requested or c.getURI())
        finally:
            c.close()

    def adapt(self, spec: Spec) -> Spec:
        """Host folders are mounted over the guest's SSH connection (reverse-sshfs): the libvirt host may not
        have them, and this works the same locally and remotely."""
        if spec.shared_mounts and spec.mount_type != "reverse-sshfs":
            return dataclasses.replace(spec, mount_type="reverse-sshfs")
        return spec

    # -- plan ----------------------------------------------------------------------------------------------
    def _where(self, inst: store.Instance, conn: Any) -> Where:
        uri = target.uri_of(inst)
        try:
            pool = conn.storagePoolLookupByName(lvconn.pool_name())
            path = domain.parse(pool.XMLDesc(0)).findtext("target/path") or ""
        except lvconn.binding().libvirtError:
            pool, path = None, lvconn.pool_target(conn)  # the pool is made at the first start
        return Where(uri, target.parse(uri), path, pool)

    def plan(self, inst: store.Instance, spec: Spec) -> BootPlan:
        spec = self.adapt(spec)
        store.check_links(inst)
        conn = lvconn.connect(target.uri_of(inst))
        try:
            return self._plan(inst, spec, conn)
        finally:
            conn.close()

    def _plan(self, inst: store.Instance, spec: Spec, conn: Any) -> BootPlan:
        from limapy.driver import suspended

        where = self._where(inst, conn)
        local = where.jump is None

        def vol_path(name: str) -> str:  # where a directory pool keeps volume `name`
            return str(Path(where.pool_path) / name)

        dom = lvconn.lookup_domain(conn, domain.domain_name(inst.name))
        if dom is not None and dom.isActive():
            raise LimapyError(
                f"libvirt domain {domain.domain_name(inst.name)} is already running",
                hint=f"`limapy stop {inst.name}` (or `virsh -c {where.uri} destroy {domain.domain_name(inst.name)}`)",
            )
        disk_name = lvconn.vol_name(inst.name, ".qcow2")
        disk_vol = lvconn.volume(where.pool, disk_name) if where.pool is not None else None
        if disk_vol is None and not inst.disk.exists():
            raise LimapyError(
                f"the disk of `{inst.name}` is missing ({inst.disk}, and no volume {disk_name} on {where.uri})",
                hint="delete and re-create the instance",
            )
        notices: list[str] = []
        if spec.shared_mounts and summary.spec(inst).mount_type != "reverse-sshfs":
            notices.append("the libvirt driver mounts host folders with reverse-sshfs (mountType is ignored)")
        resume, discard = self._resume_state(inst, dom)
        if discard:
            notices.append(suspended.warning(discard))
        iid = f"iid-{int(time.time())}"
        mac = netutil.mac_address(inst.dir)
        if resume is not None:
            port = int(resume.get("ssh_port") or 0)
        elif local:
            port = check_ssh_port(spec) or netutil.free_port()
        else:
            port = spec.ssh.local_port or 20000 + secrets.randbelow(30000)
        os_ = guest.for_spec(spec)
        files = os_.boot_files(inst, spec)  # its media; how far an install got, as the local disk says
        stage = files.stage
        if stage == INSTALL and disk_vol is not None:  # the volume is the disk once imported: it says how far
            stage = SETUP if lvconn.allocation(disk_vol) >= SETUP_WRITTEN else INSTALL
        rdp = None
        if files.rdp_port is not None:
            rdp = netutil.free_port() if local else 20000 + secrets.randbelow(30000)
        media = os_.first_boot_media(inst, spec, files, iid=iid, mac=mac)
        notices += files.notices
        stage_notice = os_.stage_notice(stage)
        if stage_notice:
            notices.append(stage_notice)
        devices = os_.devices(spec, stage)
        kernel = initrd = None
        cmdline_text = None
        if spec.boot_kind is BootKind.KERNEL:
            kernel = domain.Volume(vol_path(lvconn.vol_name(inst.name, "-kernel")))
            if inst.initrd.exists():
                initrd = domain.Volume(vol_path(lvconn.vol_name(inst.name, "-initrd")))
            if inst.kernel_cmdline.exists():
                cmdline_text = inst.kernel_cmdline.read_text().strip()
        iso = None
        if files.iso is not None:  # an ISO image, or the install media while installing
            iso = domain.Volume(vol_path(lvconn.vol_name(inst.name, "-install.iso")))
        virtio = None
        if files.virtio_win is not None and any(cd.media == CD_DRIVERS for cd in devices.cds):
            virtio = domain.Volume(vol_path(lvconn.vol_name(inst.name, "-virtio-win.iso")))
        inputs = domain.Inputs(
            instance=inst.name,
            instance_dir=str(inst.dir),
            virt_type=_virt_type(conn, spec, local),
            ssh_port=port,
            mac=mac,
            disk=domain.Volume(vol_path(disk_name), "qcow2"),
            cidata=domain.Volume(vol_path(lvconn.vol_name(inst.name, "-cidata.iso"))) if media is not None else None,
            iso=iso,
            virtio_win=virtio,
            kernel=kernel,
            initrd=initrd,
            kernel_cmdline=cmdline_text,
            firmware=_firmware(spec, local),
            stage=stage,
            rdp_port=rdp,
            host_label=os.uname().nodename,
        )
        xml = domain.build(spec, inputs)
        return BootPlan(
            driver=self.name,
            argv=(),
            document=xml,
            ssh_port=port,
            user=spec.user.name or "lima",
            readiness=READY_GUEST,
            iid=iid,
            accel="kvm" if inputs.virt_type == "kvm" else "tcg",
            notices=tuple(notices),
            media=None if resume is not None else media,
            disk_size=spec.disk,
            stage=None if resume is not None else stage,
            rdp_port=rdp,
            resume=resume is not None,
            discard_state=bool(discard),
            serial_appends=True,  # limapy.driver.libvirt.machine.Console appends to serial.log
            devices=devices,
        )

    def _resume_state(self, inst: store.Instance, dom: Any) -> tuple[dict[str, Any] | None, str]:
        """The suspend record to resume from, or why a saved state must go."""
        from limapy.driver import suspended

        has_image = bool(dom is not None and dom.hasManagedSaveImage(0))
        if not inst.suspend_record.exists():
            return None, "no record of the saved state" if has_image else ""
        try:
            rec = json.loads(inst.suspend_record.read_text())
        except (OSError, ValueError) as e:
            return None, f"the record of the saved state is unreadable ({e})"
        if rec.get("driver") != self.name:
            return None, f"the saved state is from the {rec.get('driver')} driver"
        if not has_image:
            return None, "libvirt has no saved state of the domain"
        if rec.get("config_sha256") != suspended.config_digest(inst):
            return None, "lima.yaml changed after the suspend"
        return rec, ""

    # -- materialize, launch -------------------------------------------------------------------------------
    def materialize(self, inst: store.Instance, spec: Spec, plan: BootPlan) -> None:
        from limapy.driver.libvirt import volumes

        volumes.materialize(inst, self.adapt(spec), plan)

    def launch(self, inst: store.Instance, plan: BootPlan) -> LibvirtMachine:
        uri = target.uri_of(inst)
        conn = lvconn.connect(uri)
        dom = lvconn.lookup_domain(conn, domain.domain_name(inst.name))
        if dom is None:
            raise LimapyError(f"libvirt domain {domain.domain_name(inst.name)} is not defined")
        pool = lvconn.ensure_pool(conn)
        m = LibvirtMachine(inst, conn, dom, lvconn.volume(pool, lvconn.vol_name(inst.name, ".qcow2")), uri)
        spec = self.adapt(summary.spec(inst))
        forwards = domain.hostfwd_rules(spec, plan.ssh_port, plan.rdp_port)
        forced = (os.environ.get(dirs.ENV_ACCEL) or "").strip()
        may_fall_back = not plan.resume and plan.accel == "kvm" and not forced

        def as_tcg(machine: LibvirtMachine, why: str) -> None:
            """The host's libvirt offers KVM but its QEMU cannot use it (a nested or half-working KVM): the
            same domain, redefined under TCG, started again, and the user told."""
            name = machine.dom.name()
            log.warning("KVM failed on the libvirt host (%s); running %s under TCG", why, name)
            if machine.alive():
                machine.dom.destroy()
            machine._ended()
            conn.defineXML(domain.as_tcg(machine.dom.XMLDesc(0)))
            machine.dom = lvconn.lookup_domain(conn, name)
            machine.start(resume=False, forwards=forwards)
            machine.notices.append(f"KVM failed on the libvirt host ({why}), so {name} runs emulated (TCG)")

        try:
            m.start(resume=plan.resume, forwards=forwards)
        except LimapyError as e:
            if not may_fall_back or "kvm" not in e.message.lower():
                raise
            as_tcg(m, e.message)
        else:
            if may_fall_back:  # KVM may also fail once the guest runs: check() finds it, then this
                m.on_kvm_failure = lambda machine: as_tcg(machine, "a KVM internal error")
        if plan.resume:
            inst.suspend_record.unlink(missing_ok=True)
        return m

    def emulated(self, spec: Spec) -> bool:
        """Unknown before the domain runs on its host: assume emulation (the longer timeouts) unless told."""
        forced = (os.environ.get(dirs.ENV_ACCEL) or "").strip().lower()
        return forced == "tcg" if forced else True

    # -- state ---------------------------------------------------------------------------------------------
    def pid(self, inst: store.Instance) -> int | None:
        from limapy import driver

        return driver.LIGHT_PIDS[self.name](inst)  # the host agent named in `libvirt.active`

    def _domain(self, inst: store.Instance) -> tuple[Any, Any]:
        conn = lvconn.connect(target.uri_of(inst))
        return conn, lvconn.lookup_domain(conn, domain.domain_name(inst.name))

    def stop(self, inst: store.Instance, timeout: float) -> bool:
        conn, dom = self._domain(inst)
        clean = True
        try:
            if dom is not None and dom.isActive():
                m = LibvirtMachine(inst, conn, dom, None)
                clean = m.shutdown(timeout)
        finally:
            conn.close()
        (inst.dir / ACTIVE).unlink(missing_ok=True)
        return clean

    def force_stop(self, inst: store.Instance) -> None:
        conn, dom = self._domain(inst)
        lv = lvconn.binding()
        try:
            if dom is not None and dom.isActive():
                dom.destroy()
        except lv.libvirtError as e:
            name = domain.domain_name(inst.name)
            raise LimapyError(f"libvirt could not stop {name}: {lvconn.error_text(e)}") from None
        finally:
            conn.close()
        (inst.dir / ACTIVE).unlink(missing_ok=True)

    def suspend(self, inst: store.Instance) -> None:
        from limapy.driver import suspended

        conn, dom = self._domain(inst)
        lv = lvconn.binding()
        try:
            if dom is None or not dom.isActive():
                raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
            port = ssh.config_port(inst)
            try:
                dom.managedSave(0)
            except lv.libvirtError as e:
                raise LimapyError(f"libvirt could not save {inst.name}: {lvconn.error_text(e)}") from None
        finally:
            conn.close()
        rec = {
            "format": SUSPEND_FORMAT, "driver": self.name, "ssh_port": port,
            "config_sha256": suspended.config_digest(inst), "suspended_at": time.time(),
        }  # fmt: skip
        store.atomic_write(inst.suspend_record, (json.dumps(rec) + "\n").encode(), 0o600)

    def clone_suspended(self, src: store.Instance, new: store.Instance, final_dir: Path, say: Say) -> None:
        raise LimapyError(
            f"`{src.name}` is suspended by libvirt (managed save), which limapy cannot clone",
            hint=f"`limapy stop {src.name}` first (a clone of a stopped instance boots cold), or use the qemu driver",
        )

    def remove(self, inst: store.Instance) -> None:
        from limapy.driver.libvirt import volumes

        volumes.remove(inst)

    def screenshot(self, inst: store.Instance, out: Path) -> None:
        conn, dom = self._domain(inst)
        lv = lvconn.binding()
        try:
            if dom is None or not dom.isActive():
                raise LimapyError(f"instance `{inst.name}` is not running", hint=f"`limapy start {inst.name}`")
            stream = conn.newStream(0)
            mime = dom.screenshot(stream, 0, 0)
            chunks = []
            while data := stream.recv(1 << 18):
                if not isinstance(data, bytes):
                    break
                chunks.append(data)
            stream.finish()
        except lv.libvirtError as e:
            raise LimapyError(f"libvirt screenshot failed: {lvconn.error_text(e)}") from None
        finally:
            conn.close()
        from limapy.driver.libvirt.volumes import to_png

        store.atomic_write(out, to_png(b"".join(chunks), str(mime)), 0o644)

    def console_paths(self, inst: store.Instance) -> Mapping[str, Path]:
        return {"serial": inst.serial_log, "hostagent": inst.ha_stderr_log}

    def domains(self, connect: str | None) -> list[dict[str, Any]]:
        from limapy.driver.libvirt import inventory

        return inventory.domains(connect)

    def snapshot(self, inst: store.Instance, action: str, tag: str) -> None:
        raise LimapyError("the libvirt driver does not take snapshots yet", hint="`virsh snapshot-create-as` works")

    def snapshots(self, inst: store.Instance) -> list[Snapshot]:
        return []


DRIVER = LibvirtDriver()
