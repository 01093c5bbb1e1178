"""The guest services of one running instance, started by the host agent once the guest is ready and stopped
before it powers the guest down: host folders (as the guest OS mounts them: limapy.guest.GuestOS.host_folders)
and port forwards (limapy.agent.forwards, on the guest OS's listener query). `plain: true` has neither (static
forwards are QEMU's); a guest OS without a way to list its listeners or mount folders has none of them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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
        self.booted = threading.Event()  # the boot scripts are done (`start`)
        self.sockets_done = threading.Event()
        self.watcher_lock = threading.Lock()

    def warn(self, text: str) -> None:
        log.warning("%s", text)
        self.emit(message=f"warning: {text}")

    def prepare(self) -> None:
        """Begin the forwards once SSH answers, while the host agent still waits for the boot scripts: their
        ControlMaster (an SSH handshake: seconds in an emulated guest) starts now, in the forwards' own thread,
        which then waits for `start` (the boot scripts done) to forward the sockets, as Lima does after its final
        requirements, and goes on watching the guest's listeners. Calling `start` alone works too."""
        query = self.os.listeners()
        if self.spec.plain or query is None or self.thread is not None:
            return
        self.query = query
        self.forwarder = forwards.Forwarder(self.inst, self.spec, ssh_port=self.ssh_port, emit=self.emit,
                                            ignored=query.ignored)
        self.thread = threading.Thread(target=self._forwards, name="port forwards", daemon=True)
        self.thread.start()

    def start(self) -> None:
        """Once the boot scripts are done: the host folders, then the socket forwards (waited for when there are
        any, so that READY means they are there; the guest's ports are forwarded as they appear, as in Lima)."""
        spec = self.spec
        self.prepare()
        self.booted.set()
        if spec.shared_mounts and self.folders is not None:
            self.live = self.folders.mount(self.guest, spec, self.warn, sftpjail.serve, self.inst)
            for rm in self.live:
                self.emit(message=f"mounted {rm.mount.location} at {rm.how}")
        if self.thread is not None and any(r.guest_socket and r.host_socket for r in spec.port_forwards):
            self.sockets_done.wait(60)

    def _forwards(self) -> None:
        fw = self.forwarder
        assert fw is not None
        try:
            try:
                fw.start_master()
            except RuntimeError as e:
                if not self.stop_event.is_set():  # a stop that powers the guest down ends a master being started
                    self.warn(f"{e}: automatic port forwards are off")
                return
            self.booted.wait()
            if self.stop_event.is_set():
                return
            fw.socket_forwards()
        finally:
            self.sockets_done.set()
        from limapy import remote

        # Its own connection: the watcher's channel stays busy for the instance's whole life. SSH is known up:
        # a slow answer (a guest just resumed, a loaded host) is worth waiting for.
        watcher = remote.Guest(
            self.guest.port, self.guest.user, self.guest.key, connect_timeout=30.0, gateway=self.guest.gateway
        )
        with self.watcher_lock:
            if self.stop_event.is_set():
                watcher.close()
                return
            self.watcher = watcher
        self._watch()

    def _watch(self) -> None:
        assert self.forwarder is not None and self.query is not None
        try:
            self.forwarder.watch(self.watcher, self.stop_event, self.query)
        except Exception as e:  # the guest went away; the main loop notices QEMU's exit
            log.info("port watcher ended: %s", e)

    def stop(self, then: Callable[[], None] = lambda: None) -> None:
        """Stop them; `then` runs as soon as nothing needs the guest any more (after the folders are unmounted in
        it: the host agent asks it to power down there, and the rest of the tidying overlaps its shutdown)."""
        self.stop_event.set()
        self.booted.set()  # a forwards thread still waiting for the boot scripts ends
        with self.watcher_lock:
            if self.watcher is not None:
                self.watcher.close()  # ends the watcher's read at once (it would notice stop_event within a second)
        if self.thread is not None:
            self.thread.join(25)  # a master still being started is closed below, not left behind
        if self.folders is not None:
            self.folders.unmount(self.guest, self.live)
        self.live = []
        then()
        if self.forwarder is not None:
            self.forwarder.close()
