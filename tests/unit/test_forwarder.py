"""The Forwarder's bookkeeping around OpenSSH's multiplexing: what it opens it cancels with the same
forward spec, when the guest stops listening (a snapshot without the listener, or an empty one), with a
`stopping` event in Lima's portForward shape and the forward gone from forwards.json (`list --json`).

OpenSSH itself is replaced by a recorder of the `ssh -O ...` requests (the e2e test in
tests/e2e/test_shares.py checks the host port really is released)."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from limapy.agent import forwards
from limapy.config.model import Spec
from limapy.guest.linux import listeners
from limapy.guest.listeners import Listener
from limapy.instance import store

WILD = Listener("0.0.0.0", 18080)
WILD6 = Listener("::", 18080)
LOOP = Listener("127.0.0.1", 18081)


class Recorded(forwards.Forwarder):
    """A Forwarder whose `ssh -O` requests are recorded; `refuse` names forward specs OpenSSH would refuse."""

    def __init__(self, inst: store.Instance) -> None:
        self.events: list[dict[str, Any]] = []
        super().__init__(inst, Spec.from_cfg({"arch": "x86_64"}), ssh_port=60022, emit=self._emit)
        self.requests: list[tuple[str, ...]] = []
        self.refuse: set[str] = set()

    def _emit(self, **ev: Any) -> None:
        self.events.append(ev)

    def _ssh(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        self.requests.append(args)
        code = 255 if args[-1] in self.refuse else 0
        return subprocess.CompletedProcess(
            ["ssh", *args], code, b"", b"bind: Address already in use\n" if code else b""
        )

    def recorded(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.inst.forwards_file.read_text())
        return data


@pytest.fixture
def fw(tmp_path: Path) -> Recorded:
    return Recorded(store.Instance("vm", tmp_path))


def stopping(fw: Recorded) -> list[dict[str, str]]:
    return [e["portForward"] for e in fw.events if e.get("portForward", {}).get("type") == "stopping"]


def test_a_listener_that_goes_is_cancelled_with_the_spec_it_was_opened_with(fw: Recorded) -> None:
    fw.apply({WILD, LOOP})
    assert fw.requests == [("-O", "forward", "-L", "127.0.0.1:18080:127.0.0.1:18080"),
                           ("-O", "forward", "-L", "127.0.0.1:18081:127.0.0.1:18081")]  # fmt: skip
    assert {f["hostAddr"] for f in fw.recorded()} == {"127.0.0.1:18080", "127.0.0.1:18081"}
    fw.requests.clear()

    fw.apply({LOOP})
    assert fw.requests == [("-O", "cancel", "-L", "127.0.0.1:18080:127.0.0.1:18080")]
    assert stopping(fw) == [{"type": "stopping", "protocol": "tcp", "guestAddr": "0.0.0.0:18080",
                             "hostAddr": "127.0.0.1:18080"}]  # fmt: skip
    assert [f["hostAddr"] for f in fw.recorded()] == ["127.0.0.1:18081"]
    assert fw.active == {LOOP: 18081}

    fw.apply({LOOP})  # nothing changed: nothing asked of ssh, no second event
    fw.apply(set())
    assert fw.requests[1:] == [("-O", "cancel", "-L", "127.0.0.1:18081:127.0.0.1:18081")]
    assert len(stopping(fw)) == 2 and fw.recorded() == [] and fw.active == {}


def test_the_record_never_lists_a_closed_port(fw: Recorded) -> None:
    """forwards.json (what `list --json` shows) drops a forward before `ssh -O cancel` closes its port, and
    lists it as soon as `ssh -O forward` opened it: whoever finds the host port closed finds it unlisted (the
    e2e test in test_shares.py once read the record between the two)."""
    seen: list[tuple[str, set[str]]] = []
    ssh = fw._ssh

    def watching(*args: str) -> subprocess.CompletedProcess[bytes]:
        hosts = {f["hostAddr"] for f in fw.recorded()} if fw.inst.forwards_file.exists() else set()
        seen.append((args[1], hosts))
        return ssh(*args)

    fw._ssh = watching  # type: ignore[method-assign]
    fw.apply({WILD, LOOP})
    assert seen[1] == ("forward", {"127.0.0.1:18080"})  # the first open is recorded before the next request
    fw.apply({LOOP})
    assert seen[2] == ("cancel", {"127.0.0.1:18081"})


def test_a_port_that_comes_back_is_forwarded_again(fw: Recorded) -> None:
    fw.apply({WILD})
    fw.apply(set())
    fw.apply({WILD})
    assert [r[1] for r in fw.requests] == ["forward", "cancel", "forward"]
    assert fw.active == {WILD: 18080}


def test_the_same_port_on_the_other_family_takes_over_the_host_port(fw: Recorded) -> None:
    """0.0.0.0 and :: on one port share the host port; when the forwarded one goes, it is cancelled
    first and the other one forwarded in the same pass (the host port is free again by then)."""
    fw.apply({WILD, WILD6})
    assert fw.active == {WILD: 18080}  # sorted: "0.0.0.0" < "::"; one forward serves both
    fw.apply({WILD6})
    assert fw.requests[1:] == [
        ("-O", "cancel", "-L", "127.0.0.1:18080:127.0.0.1:18080"),
        ("-O", "forward", "-L", "127.0.0.1:18080:[::1]:18080"),
    ]
    assert fw.active == {WILD6: 18080}
    assert [f["guestAddr"] for f in fw.recorded()] == [":::18080"]


def test_a_forward_ssh_refused_is_not_cancelled_and_is_warned_once(fw: Recorded) -> None:
    fw.refuse.add("127.0.0.1:18080:127.0.0.1:18080")
    fw.apply({WILD})
    fw.apply({WILD})
    warnings = [e["message"] for e in fw.events if "message" in e]
    assert len(warnings) == 1 and "cannot forward guest 0.0.0.0:18080" in warnings[0]
    fw.apply(set())
    assert all(r[1] == "forward" for r in fw.requests) and stopping(fw) == []


def test_cancel_lets_a_port_warn_again(fw: Recorded) -> None:
    """A port's warning is once per life of its forward: after the cancel, a new failure is reported."""
    fw.apply({WILD})
    fw.warned.add(("tcp", 18080))
    fw.apply(set())
    assert ("tcp", 18080) not in fw.warned


class Channel:
    """The watcher's exec channel: hands out the guest's output in the chunks given, then EOF."""

    def __init__(self, chunks: list[bytes], fw: Recorded, seen: list[dict[Listener, int]]) -> None:
        self.chunks, self.fw, self.seen = chunks, fw, seen
        self.closed = False

    def settimeout(self, _t: float) -> None:
        pass

    def recv(self, _n: int) -> bytes:
        self.seen.append(dict(self.fw.active))
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed = True


def test_watch_cancels_on_an_empty_snapshot(fw: Recorded) -> None:
    """The guest loop prints an empty snapshot (a blank line, then `--`) when the last listener closes."""
    seen: list[dict[Listener, int]] = []
    chan = Channel([b"00000000:46", b"A0\n--\n", b"\n--\n"], fw, seen)

    class Guest:
        def exec_channel(self, _script: str) -> Channel:
            return chan

    fw.watch(Guest(), threading.Event(), listeners.QUERY)
    assert seen == [{}, {}, {WILD: 18080}, {}]  # forwarded after the split snapshot, cancelled after the empty one
    assert [r[1] for r in fw.requests] == ["forward", "cancel"] and chan.closed
    assert fw.recorded() == []
