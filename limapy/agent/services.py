"""The guest services of one running instance, started by the host agent once the guest is ready and stopped
before it powers the guest down: host folders (as the guest OS mounts them: limapy.guest.GuestOS.host_folders)
and port forwards (limapy.agent.forwards, on the guest OS's listener query). `plain: true` has neither (static
forwards are QEMU's); a guest OS that has no way yet (Windows) has neither either."""

from __future__ import annotations

import logging
import threading
from typing import Any

from limapy import guest as guests
from limapy.agent import forwards, sftpjail
from limapy.config.model import Spec
from limapy.instance import store

log = logging.getLogger("limapy.agent.services")


class Services:
    def __init__(self, inst: store.Instance, spec: Spec, guest: Any, *, ssh_port: int, emit: forwards.Emit) -> None:
        self.inst = inst
        self.spec = spec
        self.guest = guest
        self.ssh_port = ssh_port
        self.emit = emit
        self.os = guests.for_spec(spec)
        self.folders = self.os.host_folders()
        self.live: list[Any] = []
        self.forwarder: forwards.Forwarder | None = None
        self.watcher: Any = None
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.query: guests.ListenerQuery | None = None
        self.preparing: threading.Thread | None = None
        self.master_error: RuntimeError | None = None

    def warn(self, text: str) -> None:
        log.warning("%s", text)
        self.emit(message=f"warning: {text}")

    def prepare(self) -> None:
        """Begin what needs only SSH, not the boot scripts: the forwards' ControlMaster (an SSH handshake, seconds
        in an emulated guest), in the background while the host agent waits for the boot scripts; `start`
        finishes it. Called once SSH answers; calling `start` alone works too."""
        query = self.os.listeners()
        if self.spec.plain or query is None or self.preparing is not None:
            return
        self.query = query
        self.forwarder = fw = forwards.Forwarder(self.inst, self.spec, ssh_port=self.ssh_port, emit=self.emit)

        def master() -> None:
            try:
                fw.start_master()
            except RuntimeError as e:
                self.master_error = e

        self.preparing = threading.Thread(target=master, name="forwards master", daemon=True)
        self.preparing.start()

    def start(self) -> None:
        spec = self.spec
        self.prepare()
        if spec.shared_mounts and self.folders is not None:
            self.live = self.folders.mount(self.guest, spec, self.warn, sftpjail.serve)
            for rm in self.live:
                self.emit(message=f"mounted {rm.mount.location} at {rm.mount.mount_point} (reverse-sshfs)")
        if self.preparing is None:
            return
        self.preparing.join()
        fw = self.forwarder
        assert fw is not None
        if self.master_error is not None:
            self.warn(f"{self.master_error}: automatic port forwards are off")
            return
        fw.socket_forwards()
        # Its own connection: the watcher's channel stays busy for the instance's whole life.
        from limapy import remote

        # SSH is known up: a slow answer (a guest just resumed, a loaded host) is worth waiting for
        self.watcher = remote.Guest(
            self.guest.port, self.guest.user, self.guest.key, connect_timeout=30.0, gateway=self.guest.gateway
        )
        self.thread = threading.Thread(target=self._watch, name="port watcher", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        assert self.forwarder is not None and self.query is not None
        try:
            self.forwarder.watch(self.watcher, self.stop_event, self.query)
        except Exception as e:  # the guest went away; the main loop notices QEMU's exit
            log.info("port watcher ended: %s", e)

    def stop(self) -> None:
        self.stop_event.set()
        if self.preparing is not None and self.preparing.is_alive():
            self.preparing.join(25)  # a master being started is then closed below, not left behind
        if self.watcher is not None:
            self.watcher.close()  # ends the watcher's read at once (it would notice stop_event within a second)
        if self.thread is not None:
            self.thread.join(5)
        if self.forwarder is not None:
            self.forwarder.close()
        if self.folders is not None:
            self.folders.unmount(self.guest, self.live)
        self.live = []
