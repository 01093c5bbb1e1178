"""A small synchronous QMP client on qemu.qmp (imported lazily: it is not needed on the CLI start-up path).

Each `QMP` owns a private asyncio event loop, so it works from plain synchronous code and does not
disturb a loop the caller may run elsewhere. One connection can be kept open for QEMU's events
(`next_event`), which is how the host agent learns of a shutdown, a reset or a stop without polling.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from limapy.base.errors import LimapyError

if TYPE_CHECKING:
    from limapy.base.records import MigrateInfo, QMPEvent


class QMPError(LimapyError):
    """QMP could not be reached, or a command failed."""


class QMP:
    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._client = client
        self._loop = loop
        self.timeout = timeout

    @classmethod
    def connect(cls, sock: Path | str, timeout: float = 5.0) -> QMP:
        from qemu.qmp import QMPClient

        loop = asyncio.new_event_loop()
        client = QMPClient("limapy")
        try:
            loop.run_until_complete(asyncio.wait_for(client.connect(str(sock)), timeout))
        except Exception as e:  # qemu.qmp raises ConnectError, OSError or a timeout
            loop.close()
            raise QMPError(f"cannot connect to QMP at {sock}: {e}") from e
        return cls(client, loop, timeout)

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._loop.run_until_complete(asyncio.wait_for(self._client.disconnect(), self.timeout))
        except Exception:  # noqa: S110 - closing a dead connection must not fail the caller
            pass
        finally:
            self._loop.close()

    def execute(self, cmd: str, args: Mapping[str, object] | None = None) -> Any:
        """Run one QMP command and return its `return` value."""
        from qemu.qmp import ExecuteError

        try:
            return self._loop.run_until_complete(asyncio.wait_for(self._client.execute(cmd, args), self.timeout))
        except ExecuteError as e:
            raise QMPError(f"QMP {cmd} failed: {e}") from e
        except TimeoutError as e:
            raise QMPError(f"QMP {cmd}: no answer within {self.timeout} s") from e
        except Exception as e:  # disconnected, protocol error
            raise QMPError(f"QMP {cmd}: {e.__class__.__name__}: {e}") from e

    def next_event(self, timeout: float) -> QMPEvent | None:
        """The next QMP event (SHUTDOWN, RESET, STOP, ...) within `timeout` seconds, or None.

        Events queue up on the connection while nothing reads them; this waits on the socket instead of
        polling QEMU's status."""
        if self._loop.is_closed():
            return None
        try:
            msg = self._loop.run_until_complete(asyncio.wait_for(self._client.events.get(), max(timeout, 0.001)))
        except TimeoutError:
            return None
        except Exception as e:  # the connection went away (QEMU exited)
            raise QMPError(f"QMP events: {e.__class__.__name__}: {e}") from e
        event: QMPEvent = dict(msg)  # type: ignore[assignment]  # qemu.qmp's Message: QMP's event object
        return event

    def events(self) -> list[QMPEvent]:
        """Every event queued so far, without waiting."""
        out = []
        while (ev := self.next_event(0.001)) is not None:
            out.append(ev)
        return out

    def send_fd(self, fd: int, name: str) -> None:
        """Hand QEMU an open file descriptor (SCM_RIGHTS) under `name`, for `fd:NAME` URIs (no path, no shell)."""
        try:
            self._client.send_fd_scm(fd)
        except Exception as e:
            raise QMPError(f"cannot pass a file descriptor over QMP: {e}") from e
        self.execute("getfd", {"fdname": name})

    def query_migrate(self) -> MigrateInfo:
        """`status` (setup, active, completed, failed, ...) and, on failure, `error-desc`."""
        info: MigrateInfo = dict(self.execute("query-migrate"))  # type: ignore[assignment]  # QMP's MigrationInfo
        return info

    def query_status(self) -> str:
        """`running`, `paused`, `shutdown`, `internal-error`, ..."""
        return str(self.execute("query-status")["status"])

    def system_powerdown(self) -> None:
        self.execute("system_powerdown")

    def quit(self) -> None:
        try:
            self.execute("quit")
        except QMPError:
            pass  # QEMU may close the socket before the answer arrives

    def send_key(self, key: str = "ret") -> None:
        events = [
            {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": key}}} for down in (True, False)
        ]
        self.execute("input-send-event", {"events": events})

    def hmp(self, command_line: str) -> str:
        return str(self.execute("human-monitor-command", {"command-line": command_line}))

    def query_pci(self) -> Any:
        return self.execute("query-pci")

    def query_block(self) -> Any:
        return self.execute("query-block")

    def query_tpm(self) -> Any:
        return self.execute("query-tpm")

    def screendump(self, path: Path) -> None:
        """Write a PNG of the guest display to `path` (via PPM on QEMUs without format=png)."""
        path = Path(path).resolve()
        try:
            self.execute("screendump", {"filename": str(path), "format": "png"})
            return
        except QMPError:
            pass
        ppm = path.with_suffix(".ppm")
        self.execute("screendump", {"filename": str(ppm)})
        try:
            path.write_bytes(ppm_to_png(ppm.read_bytes()))
        finally:
            ppm.unlink(missing_ok=True)


def _ppm_tokens(data: bytes, count: int) -> tuple[list[int], int]:
    values: list[int] = []
    i = 2
    while len(values) < count:
        while data[i : i + 1].isspace():
            i += 1
        if data[i : i + 1] == b"#":
            i = data.index(b"\n", i) + 1
            continue
        start = i
        while not data[i : i + 1].isspace():
            i += 1
        values.append(int(data[start:i]))
    return values, i + 1


def ppm_to_png(data: bytes) -> bytes:
    """Convert a binary PPM (P6, maxval 255) into a PNG, stdlib only."""
    if not data.startswith(b"P6"):
        raise QMPError("screendump did not produce a binary PPM")
    (width, height, maxval), offset = _ppm_tokens(data, 3)
    if maxval != 255:
        raise QMPError(f"unsupported PPM maxval {maxval}")
    stride = width * 3
    pixels = data[offset : offset + stride * height]
    raw = b"".join(b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
