"""`limapy watch [NAME...] [--json] [--history] [--verbose]`: the instances' events as they happen.

Lima 2.1's `limactl watch` (cmd/limactl/watch.go): it follows each instance's host-agent event log
(ha.stdout.log, JSON lines; a new start truncates it and is followed again), skips events from before it began
unless --history, and prints `{"instance": NAME, "event": EVENT}` per line with --json, else Lima's
human-readable lines (`TIME NAME | running`, `... | exiting`, `... | forwarding tcp A to B`). With no name it
watches every instance, and ones created while it runs. --verbose also shows the host agents' logs
(ha.stderr.log) on stderr. It runs until interrupted (Ctrl-C ends it with status 0, as in Lima).

limapy's events carry Lima's `status` object and two more keys, `phase` and `message` (the host agent's
progress): the JSON passes them on as they are, the human-readable form prints the message.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from limapy.base.errors import LimapyError, NotFoundError
from limapy.instance import store

if TYPE_CHECKING:
    from limapy.base.records import Event

POLL = 0.2


class Tail:
    """New complete lines of a file that may not exist yet, be truncated or be replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.buf = b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self.inode or st.st_size < self.offset:  # a new start: a new (or truncated) log
                    self.inode, self.offset, self.buf = st.st_ino, 0, b""
                f.seek(self.offset)
                data = f.read(1 << 20)
        except OSError:
            return []
        self.offset += len(data)
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        return [ln.decode(errors="replace") for ln in done if ln.strip()]


def _event_time(ev: Event) -> datetime.datetime | None:
    try:
        t = datetime.datetime.fromisoformat(str(ev.get("time")))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


def human(name: str, ev: Event) -> list[str]:
    """watch.go printHumanReadableEvent (line 244), and limapy's progress message."""
    t = _event_time(ev)
    stamp = t.strftime("%Y-%m-%d %H:%M:%S") if t else str(ev.get("time"))
    st = ev.get("status") or {}
    out = []
    if st.get("running"):
        out.append("running (degraded)" if st.get("degraded") else "running")
    if st.get("exiting"):
        out.append("exiting")
    if st.get("sshLocalPort"):
        out.append(f"ssh available on port {st['sshLocalPort']}")
    out += [f"error: {e}" for e in st.get("errors") or []]
    ci = st.get("cloudInitProgress") or {}
    if ci.get("completed"):
        out.append("cloud-init completed")
    elif ci.get("logLine"):
        out.append(f"cloud-init: {ci['logLine']}")
    pf = st.get("portForward") or {}
    if pf:
        proto, guest = pf.get("protocol"), pf.get("guestAddr")
        what = {"forwarding": f"forwarding {proto} {guest} to {pf.get('hostAddr')}",
                "not-forwarding": f"not forwarding {proto} {guest}", "stopping": f"stopping forwarding {proto} {guest}",
                "failed": f"failed to forward {proto} {guest}: {pf.get('error')}"}  # fmt: skip
        if pf.get("type") in what:
            out.append(what[str(pf["type"])])
    if ev.get("message"):
        out.append(f"[{ev.get('phase') or ''}] {ev['message']}")
    return [f"{stamp} {name} | {msg}" for msg in out]


class Watcher:
    """The instances watched, each with its event log (and host-agent log) followed."""

    def __init__(self, names: Sequence[str], *, history: bool, verbose: bool) -> None:
        self.all = not names
        self.begin = None if history else datetime.datetime.now(datetime.UTC)
        self.verbose = verbose
        self.tails: dict[str, tuple[Tail, Tail]] = {}
        for n in names:
            try:
                inst = store.resolve(n)
            except NotFoundError as e:
                raise LimapyError(e.message, hint="`limapy list` shows the instances") from None
            self._add(inst)

    def _add(self, inst: store.Instance) -> None:
        if inst.name not in self.tails:
            self.tails[inst.name] = (Tail(inst.ha_stdout_log), Tail(inst.ha_stderr_log))

    def discover(self) -> list[str]:
        """Instances that appeared since the last call (watching all of them only)."""
        if not self.all:
            return []
        new = [n for n in store.list_instances() if n not in self.tails]
        for n in new:
            self._add(store.Instance(n, store.instance_dir(n)))
        return new

    def poll(self) -> tuple[list[tuple[str, Event]], list[str]]:
        """(events, host-agent log lines) since the last call."""
        events, logs = [], []
        for name, (out, err) in self.tails.items():
            for line in out.lines():
                try:
                    ev: Event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(ev, dict):
                    continue
                t = _event_time(ev)
                if self.begin is not None and t is not None and t < self.begin:
                    continue
                events.append((name, ev))
            if self.verbose:
                logs += [f"[hostagent] {name}: {line}" for line in err.lines()]
        return events, logs


def status(err: TextIO, msg: str) -> None:
    print(f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=err, flush=True)


def watch(names: Sequence[str], *, as_json: bool, history: bool, verbose: bool, out: TextIO | None = None,
          err: TextIO | None = None, stop: Callable[[], bool] = lambda: False) -> int:  # fmt: skip
    """Follow until `stop()` (or an interrupt, which the CLI turns into status 0)."""
    out, err = out or sys.stdout, err or sys.stderr
    w = Watcher(names, history=history, verbose=verbose)
    if w.all and not w.discover():
        status(err, "No instances found")
    status(err, "Watching for events...")

    def emit() -> None:
        for name in w.discover():
            status(err, f"New instance detected: {name}")
        events, logs = w.poll()
        for line in logs:
            print(line, file=err, flush=True)
        for name, ev in events:
            if as_json:
                out.write(json.dumps({"instance": name, "event": ev}, separators=(",", ":")) + "\n")
            else:
                out.writelines(line + "\n" for line in human(name, ev))
        out.flush()

    try:
        while not stop():
            emit()
            time.sleep(POLL)
    except BaseException:
        # Ended by an interrupt: what the logs already hold is printed first, so a watch ended just after an
        # instance stopped still shows its last event (the poll interval is no window in which events are lost).
        with contextlib.suppress(BaseException):
            emit()
        raise
    emit()
    return 0
