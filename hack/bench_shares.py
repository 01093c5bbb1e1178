"""hack/bench.py's shares rows, on the test image: reading a file through each mount type against reading it
on the host, and how soon an automatic port forward answers against a static one (QEMU's hostfwd, which
needs no detection) opened the same way.

- mount.<type>: `dd` of a 64 MiB host file in the guest through the mount (second read, so both sides read
  from the host's page cache) / the same `dd` on the host. 9p is measured only when the guest kernel has it.
- forward.latency: from the return of the `limapy shell` that opens a guest listener to the first answer on
  the host's 127.0.0.1 port / the same for a port QEMU forwards statically.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import TYPE_CHECKING

from bench_boot import test_image_template
from benchlib import BOOT_TIMEOUT, Row, check, median, say

if TYPE_CHECKING:
    from bench import Bench

FILE_MIB = 64
KINDS = ("virtiofs", "reverse-sshfs", "9p")


def _dd_seconds(text: str) -> float:
    """The seconds figure of GNU dd's last line ("... copied, 0.123 s, 545 MB/s")."""
    for part in reversed(text.replace(",", "\n").splitlines()):
        part = part.strip()
        if part.endswith(" s"):
            return float(part[:-2])
    raise RuntimeError(f"no time in dd's output: {text!r}")


def host_read(path: str) -> float:
    """Milliseconds of the second `dd` of `path` on the host (page cache, as the guest's reads are)."""
    subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], capture_output=True, check=True)
    cp = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], capture_output=True, text=True, check=True)
    return _dd_seconds(cp.stderr) * 1000


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(2)
            return s.recv(8).startswith(b"hi")
    except OSError:
        return False


def _latency(self: Bench, name: str, port: int) -> float:
    _, cp = self.lp("shell", name, "--", "sh", "-c",
                    f"nohup timeout 20 socat TCP-LISTEN:{port},fork,reuseaddr SYSTEM:'echo hi' >/dev/null 2>&1 &")
    check(cp, "a guest listener")
    t0 = time.perf_counter()
    while not _answers(port):
        if time.perf_counter() - t0 > 15:
            raise RuntimeError(f"port {port} never answered on the host")
        time.sleep(0.02)
    dt = time.perf_counter() - t0
    time.sleep(21)  # the listener ends; its forward with it
    return dt


def bench_shares(self: Bench) -> None:
    from limapy.base.netutil import free_port

    tmpl = self.template or test_image_template()
    share = self.work / "share"
    share.mkdir(exist_ok=True)
    data = share / "data.bin"
    with open(data, "wb") as f:
        f.write(os.urandom(FILE_MIB << 20))
    floor = host_read(str(data))
    static_port = free_port()
    for kind in KINDS:
        name = f"m-{kind.replace('-', '')}"
        sets = ["--set", f'.mountType = "{kind}"', "--set", f'.mounts = [{{location: "{share}"}}]',
                "--set", ".mountTypesUnsupported = []"]  # fmt: skip
        if kind == "reverse-sshfs":
            sets += ["--set", f".portForwards = [{{guestPort: {static_port}, hostPort: {static_port}, static: true}}]"]
        _, cp = self.lp("create", "--name", name, *sets, tmpl, timeout=600)
        check(cp, f"limapy create ({kind})")
        _, cp = self.lp("start", name, timeout=BOOT_TIMEOUT + 30)
        check(cp, f"limapy start ({kind})")
        try:
            if kind != "reverse-sshfs" and "mounting it with reverse-sshfs instead" in cp.stderr.decode():
                say(f"{kind}: the guest kernel lacks it; not measured")
                self.rows.append(Row(f"mount.{kind}", "shares", f"read {FILE_MIB} MiB through {kind}", "ms", None,
                                     floor, "the same dd on the host",
                                     note="not measured: the test image's kernel lacks it"))  # fmt: skip
                continue
            script = f"dd if={share}/data.bin of=/dev/null bs=1M 2>/dev/null; dd if={share}/data.bin of=/dev/null bs=1M"
            samples = []
            for _ in range(max(1, min(self.repeat, 3))):
                _, cp = self.lp("shell", name, "--", "sh", "-c", script, timeout=600)
                check(cp, f"dd through {kind}")
                samples.append(_dd_seconds((cp.stderr + cp.stdout).decode()) * 1000)
            self.rows.append(Row(f"mount.{kind}", "shares", f"read {FILE_MIB} MiB through {kind}", "ms",
                                 median(samples), floor, "the same dd on the host", samples=samples,
                                 floor_samples=[floor]))  # fmt: skip
            if kind == "reverse-sshfs":
                auto = [_latency(self, name, free_port()) for _ in range(2)]
                fixed = [_latency(self, name, static_port) for _ in range(2)]
                self.rows.append(Row("forward.latency", "shares", "automatic port forward: listener to answer", "s",
                                     median(auto), median(fixed), "a static forward (QEMU hostfwd)",
                                     target="value<3", samples=auto, floor_samples=fixed))  # fmt: skip
        finally:
            self.lp("stop", "-f", name, timeout=120)
