"""A stub engine for the guest-OS seam's tests: it boots no machine, but plans, materializes and launches through
the seams as QEMU's driver does (the guest OS gives the files, the first-boot media and the readiness rule), and
its "machine" is a directory in the instance dir that it serves over SSH (paramiko, on 127.0.0.1, limapy's own key
only), running each command there with /bin/sh. It runs the first-boot media as the machine's boot: the media
must be a /bin/sh script (tests/toyguest.py writes one).

Registered with LIMAPY_DRIVER_MODULES=stub=tests.stubengine (and chosen with LIMAPY_DRIVER=stub). The server
lives in the host agent that launched it; `limapy shell` reaches it with the real OpenSSH client.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paramiko

from limapy import guest, ssh
from limapy.base import netutil
from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.driver import Fetched, Say, Snapshot, media
from limapy.driver.plan import READY_GUEST, BootPlan
from limapy.instance import pids, store

PID = "stub.pid"
ROOT = "stubroot"


class _Server(paramiko.ServerInterface):
    def __init__(self, authorized: str, root: Path) -> None:
        self.authorized = authorized
        self.root = root

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = f"{key.get_name()} {key.get_base64()}" == self.authorized
        return paramiko.common.AUTH_SUCCESSFUL if ok else paramiko.common.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        ok = kind == "session"
        return paramiko.common.OPEN_SUCCEEDED if ok else paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        threading.Thread(target=_run, args=(channel, command.decode(), self.root), daemon=True).start()
        return True


def _run(channel: Any, command: str, root: Path) -> None:
    """One command in the machine: /bin/sh in its root (no stdin), its output and exit status back."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
    p = subprocess.Popen(["/bin/sh", "-c", command], cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)  # fmt: skip
    out, err = p.communicate()
    channel.sendall(out)
    channel.sendall_stderr(err)
    channel.send_exit_status(p.returncode)
    channel.close()


class StubMachine:
    def __init__(self, inst: store.Instance, port: int, boot: Path | None) -> None:
        self.inst = inst
        self.boot = boot
        self.pid = os.getpid()
        self.root = inst.dir / ROOT
        self.root.mkdir(exist_ok=True)
        _, pub = store.ensure_user_key()
        self.authorized = " ".join(pub.split()[:2])
        self.host_key = paramiko.ECDSAKey.generate()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.running = True
        threading.Thread(target=self._boot, daemon=True).start()
        threading.Thread(target=self._serve, daemon=True).start()
        (inst.dir / PID).write_text(f"{self.pid}\n")

    def _boot(self) -> None:
        time.sleep(1.0)  # the probe finds no marker at first, as in a booting guest
        if self.boot is not None:
            subprocess.run(["/bin/sh", str(self.boot)], cwd=self.root, check=True)

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            try:
                t.start_server(server=_Server(self.authorized, self.root))
            except (paramiko.SSHException, EOFError):
                continue
            threading.Thread(target=self._accept_channels, args=(t,), daemon=True).start()

    def _accept_channels(self, t: paramiko.Transport) -> None:
        open_channels = []  # paramiko's transport holds channels weakly: one nobody holds is closed
        while t.is_active():
            chan = t.accept(1.0)
            if chan is not None:
                open_channels.append(chan)
            open_channels = [c for c in open_channels if not c.closed]

    def alive(self) -> bool:
        return self.running

    def check(self) -> None:
        pass

    def wait_exit(self, timeout: float) -> bool:
        time.sleep(min(timeout, 0.2))
        return not self.running

    def failure(self) -> str:
        return ""

    def disk_allocated(self) -> int:
        return 0

    def send_key(self, key: str) -> None:
        pass

    def reset(self) -> None:
        pass

    def request_powerdown(self) -> None:
        pass

    def shutdown(self, timeout: float) -> bool:
        self.running = False
        self.sock.close()
        (self.inst.dir / PID).unlink(missing_ok=True)
        return True


class StubEngine:
    name = "stub"

    def check(self, spec: Spec, connect: str | None = None) -> None:
        pass

    def adapt(self, spec: Spec) -> Spec:
        return spec

    def remove(self, inst: store.Instance) -> None:
        pass

    def create(self, tmp: Path, spec: Spec, fetched: Fetched, say: Say) -> None:
        if fetched.base is None:
            raise LimapyError("the stub engine runs images only")

    def plan(self, inst: store.Instance, spec: Spec) -> BootPlan:
        os_ = guest.for_spec(spec)  # as QEMU's planner asks it
        files = os_.boot_files(inst, spec)
        iid = f"iid-{int(time.time())}"
        port = netutil.free_port()
        return BootPlan(driver=self.name, argv=("stub-machine", inst.name), ssh_port=port, user=spec.user.name,
                        readiness=READY_GUEST, iid=iid, stage=files.stage,
                        media=os_.first_boot_media(inst, spec, files, iid=iid, mac=netutil.mac_address(inst.dir)),
                        devices=os_.devices(spec, files.stage))  # fmt: skip

    def materialize(self, inst: store.Instance, spec: Spec, plan: BootPlan) -> None:
        if plan.media is not None:
            media.write(inst, spec, plan.media)
        key, _ = store.ensure_user_key()
        ssh.write_ssh_config(inst, spec, key, plan.ssh_port)

    def launch(self, inst: store.Instance, plan: BootPlan) -> StubMachine:
        return StubMachine(inst, plan.ssh_port, plan.media.path if plan.media is not None else None)

    def emulated(self, spec: Spec) -> bool:
        return False

    def pid(self, inst: store.Instance) -> int | None:
        return pids.live(inst.dir / PID, pids.hostagent_marks(inst.name, inst.dir))

    def stop(self, inst: store.Instance, timeout: float) -> bool:
        (inst.dir / PID).unlink(missing_ok=True)
        return True

    def force_stop(self, inst: store.Instance) -> None:
        (inst.dir / PID).unlink(missing_ok=True)

    def suspend(self, inst: store.Instance) -> None:
        raise LimapyError("the stub engine cannot suspend")

    def screenshot(self, inst: store.Instance, out: Path) -> None:
        raise LimapyError("the stub engine has no screen")

    def console_paths(self, inst: store.Instance) -> Mapping[str, Path]:
        return {}

    def snapshot(self, inst: store.Instance, action: str, tag: str) -> None:
        raise LimapyError("the stub engine takes no snapshots")

    def snapshots(self, inst: store.Instance) -> list[Snapshot]:
        return []


DRIVER = StubEngine()
