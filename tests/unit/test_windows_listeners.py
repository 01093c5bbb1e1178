"""Automatic port forwards of a Windows guest (issue 26, item 2): the listener query limapy runs in the guest
(PowerShell, checked with its grammar), its parser on the recordings of tests/fixtures/netstat/ (README.md there
names the source of each), the forwarder's rules on what it reads (the same as Linux's, plus RDP left to
`limapy rdp`), and the Windows stand-in's answer to the query (hack/build-windows-standin.sh), run here against
this host's sockets."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from limapy import guest
from limapy.agent import forwards
from limapy.config.model import Spec
from limapy.guest.listeners import INTERVAL, Listener
from limapy.guest.windows import listeners
from limapy.instance import store
from tests import psgrammar

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "netstat"
STANDIN = Path(__file__).resolve().parents[2] / "hack" / "build-windows-standin.sh"


def recording(name: str) -> set[Listener]:
    return listeners.QUERY.parse((FIXTURES / name).read_text().splitlines())


# --------------------------------------------------------------------------- the query


def test_the_query_is_one_powershell_loop_the_grammar_accepts() -> None:
    script = listeners.WATCH_POWERSHELL
    assert psgrammar.errors(script) == []
    assert psgrammar.commands(script) == [
        "Get-NetTCPConnection", "Sort-Object", "Select-Object", "ConvertTo-Json", "Start-Sleep"]  # fmt: skip
    assert script.count("Get-NetTCPConnection") == 1  # one call per poll
    assert "-State Listen" in script and "[string]$_.State" in script  # the enum by name, not its number
    assert "-InputObject $rows" in script and "@(Get-NetTCPConnection" in script  # always an array, `[]` if none
    assert f"Start-Sleep -Seconds {INTERVAL}" in script  # Linux's interval


def test_the_command_carries_the_script_encoded_past_cmd_exe() -> None:
    cmd = listeners.WATCH_COMMAND
    m = re.fullmatch(r"PowerShell\.exe -NoProfile -NonInteractive -EncodedCommand ([A-Za-z0-9+/=]+)", cmd)
    assert m is not None, cmd
    assert base64.b64decode(m.group(1)).decode("utf-16-le") == listeners.WATCH_POWERSHELL
    assert len(cmd) < 8191  # cmd.exe's line limit (sshd runs it through the DefaultShell)
    query = guest.load("Windows").listeners()
    assert query is listeners.QUERY and query.script == cmd and query.ignored == {3389}


# --------------------------------------------------------------------------- the parser, on the recordings


def test_full_objects_state_as_a_number() -> None:
    assert recording("full-objects.json") == {
        Listener("0.0.0.0", 135), Listener("::", 22), Listener("0.0.0.0", 22), Listener("0.0.0.0", 3389),
        Listener("::", 5985), Listener("0.0.0.0", 8000), Listener("::", 8000), Listener("0.0.0.0", 49664),
    }  # fmt: skip


def test_our_query_ipv4_ipv6_loopback_only_mapped_and_zones() -> None:
    assert recording("query.txt") == {
        Listener("0.0.0.0", 8000), Listener("::", 8000), Listener("127.0.0.1", 5432), Listener("::1", 6379),
        Listener("127.0.0.1", 9000),  # ::ffff:127.0.0.1 is the IPv4 address, as on Linux
        Listener("fe80::5efe:a00:20f%4", 7000), Listener("10.0.2.15", 8443),
    }  # fmt: skip


def test_a_single_object_and_empty_output() -> None:
    assert recording("single-object.json") == {Listener("127.0.0.1", 5432)}
    assert recording("empty.txt") == set()
    assert listeners.parse_json("[]") == set()
    assert listeners.parse_json("\ufeff[]\r\n") == set()


def test_ports_held_by_system_are_listeners() -> None:
    assert recording("system.json") == {
        Listener("::", 445), Listener("::", 5985), Listener("::", 47001), Listener("0.0.0.0", 8080)}  # fmt: skip


def test_only_listen_rows_count() -> None:
    assert recording("other-states.json") == {Listener("0.0.0.0", 8000)}


@pytest.mark.parametrize(
    "row",
    [{"LocalAddress": "nonsense", "LocalPort": 80}, {"LocalAddress": "0.0.0.0", "LocalPort": 0},
     {"LocalAddress": "0.0.0.0", "LocalPort": 70000}, {"LocalAddress": "0.0.0.0", "LocalPort": True},
     {"LocalAddress": None, "LocalPort": 80}, {"LocalAddress": "0.0.0.0", "LocalPort": 80, "State": True},
     "0.0.0.0:80", 80, None],
)  # fmt: skip
def test_rows_that_are_not_listeners_are_skipped(row: Any) -> None:
    good = {"LocalAddress": "::", "LocalPort": 9999, "State": 2}
    assert listeners.parse_json(json.dumps([row, good])) == {Listener("::", 9999)}


def test_what_is_not_json_is_an_error_not_an_empty_set() -> None:
    with pytest.raises(ValueError):
        listeners.QUERY.parse(["Get-NetTCPConnection : The term is not recognized", "At line:1 char:1"])


# --------------------------------------------------------------------------- the rules: exactly Linux's


def spec(*rules: dict[str, object]) -> Spec:
    from limapy.config.defaults import _fill_port_forward

    filled = [_fill_port_forward(dict(r), {}, {}, "/inst") for r in rules]
    return Spec.from_cfg({"arch": "x86_64", "os": "Windows", "portForwards": filled})


def forwarded(s: Spec, found: set[Listener]) -> dict[Listener, int]:
    rule_list = forwards.rules(s, listeners.QUERY.ignored)
    out = {}
    for lst in found:
        port = forwards.decide(rule_list, lst, reserved={60022}).host_port
        if port is not None:
            out[lst] = port
    return out


def test_default_rules_on_a_windows_guest() -> None:
    """Wildcards and loopback to the same host port; sshd (22), RDP (3389, `limapy rdp`'s) and privileged ports
    (135, 445) not; a specific address needs a rule (as for Linux)."""
    assert forwarded(spec(), recording("full-objects.json")) == {
        Listener("::", 5985): 5985, Listener("0.0.0.0", 8000): 8000, Listener("::", 8000): 8000,
        Listener("0.0.0.0", 49664): 49664,
    }  # fmt: skip
    got = forwarded(spec(), recording("query.txt"))
    assert got == {Listener("0.0.0.0", 8000): 8000, Listener("::", 8000): 8000, Listener("127.0.0.1", 5432): 5432,
                   Listener("::1", 6379): 6379, Listener("127.0.0.1", 9000): 9000}  # fmt: skip
    assert forwarded(spec(), recording("system.json")) == {Listener("::", 5985): 5985, Listener("::", 47001): 47001,
                                                           Listener("0.0.0.0", 8080): 8080}  # fmt: skip


def test_ignore_static_and_guest_ip_must_be_zero_apply_as_for_linux() -> None:
    s = spec(
        {"guestPort": 5985, "ignore": True},
        {"guestPortRange": [49152, 65535], "ignore": True},
        {"guestPort": 8000, "hostPort": 18000, "guestIPMustBeZero": True},
        {"guestPort": 5432, "hostPort": 15432, "static": True},
        {"guestPort": 8443, "guestIP": "10.0.2.15", "hostPort": 18443},
    )
    got = forwarded(s, recording("query.txt") | recording("full-objects.json"))
    assert got == {
        Listener("0.0.0.0", 8000): 18000, Listener("::", 8000): 18000,  # only wildcards take the zero-IP rule
        Listener("::1", 6379): 6379, Listener("127.0.0.1", 9000): 9000, Listener("10.0.2.15", 8443): 18443,
    }  # fmt: skip
    # a user's rule cannot forward RDP automatically either: `limapy rdp` has it
    assert forwarded(spec({"guestPort": 3389, "hostPort": 13389}), {Listener("0.0.0.0", 3389)}) == {}


class Recorded(forwards.Forwarder):
    def __init__(self, inst: store.Instance) -> None:
        self.events: list[dict[str, Any]] = []
        super().__init__(
            inst, spec(), ssh_port=60022, emit=lambda **ev: self.events.append(ev), ignored=listeners.QUERY.ignored
        )
        self.requests: list[tuple[str, ...]] = []

    def _ssh(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        self.requests.append(args)
        return subprocess.CompletedProcess(["ssh", *args], 0, b"", b"")


class Channel:
    def __init__(self, chunks: list[bytes], fw: Recorded, seen: list[dict[Listener, int]]) -> None:
        self.chunks, self.fw, self.seen = chunks, fw, seen

    def settimeout(self, _t: float) -> None:
        pass

    def recv(self, _n: int) -> bytes:
        self.seen.append(dict(self.fw.active))
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        pass


def test_the_host_agent_opens_and_releases_on_windows_snapshots(tmp_path: Path) -> None:
    """CRLF lines, a snapshot split across reads, a line PowerShell wrote that is not JSON (ignored: the forwards
    stay), then `[]` (released), exactly as the watcher reads Linux's."""
    fw = Recorded(store.Instance("win", tmp_path))
    seen: list[dict[Listener, int]] = []
    one = b'[{"LocalAddress":"::","LocalPort":8000,"OwningProcess":5312,"State":"Listen"},'
    two = b'{"LocalAddress":"0.0.0.0","LocalPort":3389,"OwningProcess":1228,"State":"Listen"}]\r\n--\r\n'
    chunks = [one, two, b"ConvertTo-Json : something went wrong\r\n--\r\n", b"[]\r\n--\r\n"]

    class Guest:
        def exec_channel(self, script: str) -> Channel:
            assert script == listeners.WATCH_COMMAND
            return Channel(chunks, fw, seen)

    fw.watch(Guest(), threading.Event(), listeners.QUERY)
    assert seen == [{}, {}, {Listener("::", 8000): 8000}, {Listener("::", 8000): 8000}, {}]
    assert fw.requests == [("-O", "forward", "-L", "127.0.0.1:8000:[::1]:8000"),
                           ("-O", "cancel", "-L", "127.0.0.1:8000:[::1]:8000")]  # fmt: skip
    assert json.loads(fw.inst.forwards_file.read_text()) == []


# --------------------------------------------------------------------------- the stand-in's answer


def _heredoc(name: str) -> str:
    text = STANDIN.read_text()
    m = re.search(r'cat >"\$root/usr/local/(?:s?bin)/' + re.escape(name) + r"\" <<'EOF'\n(.*?)\nEOF\n", text, re.S)
    assert m is not None, name
    return m.group(1) + "\n"


def test_the_standins_powershell_answers_the_query_from_real_sockets(tmp_path: Path) -> None:
    """The stand-in's PowerShell.exe, given the command the host agent sends, runs its ss-based loop; its first
    snapshot, parsed as a Windows guest's, holds a socket this test listens on (so the e2e's forward follows a
    real listener)."""
    import shutil

    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) not installed")
    loop = tmp_path / "limapy-listeners"
    loop.write_text(_heredoc("limapy-listeners"))
    shim = tmp_path / "PowerShell.exe"
    shim.write_text(_heredoc("PowerShell.exe").replace("/usr/local/sbin/limapy-listeners", f"sh {loop}"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        argv = ["sh", str(shim), *listeners.WATCH_COMMAND.split()[1:]]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert p.stdout is not None
            lines = []
            for line in p.stdout:
                if line.strip() == "--":
                    break
                lines.append(line)
        finally:
            p.kill()
            _, err = p.communicate()
    assert lines, err
    assert Listener("127.0.0.1", port) in listeners.QUERY.parse(lines)


# --------------------------------------------------------------------------- plain: true


@pytest.mark.parametrize("plain", [False, True])
def test_plain_turns_a_windows_guests_forwards_off(
    plain: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host agent's guest services start the forwarder for a Windows guest as for Linux, on Windows' query,
    unless `plain: true` (then nothing is asked of the guest or of ssh)."""
    from limapy.agent import services

    def no_master(self: forwards.Forwarder) -> None:
        raise RuntimeError("no ControlMaster here")

    monkeypatch.setattr(forwards.Forwarder, "start_master", no_master)
    events: list[dict[str, Any]] = []
    s = Spec.from_cfg({"arch": "x86_64", "os": "Windows", "plain": plain})
    svc = services.Services(store.Instance("win", tmp_path), s, object(), ssh_port=60022,
                            emit=lambda **ev: events.append(ev))  # fmt: skip
    svc.start()
    if plain:
        assert svc.forwarder is None and svc.query is None and events == []
    else:
        assert svc.query is listeners.QUERY and svc.forwarder is not None
        assert forwards.decide(svc.forwarder.rules, Listener("0.0.0.0", 3389)).reason == "ignored"
        assert forwards.decide(svc.forwarder.rules, Listener("0.0.0.0", 8000)).host_port == 8000
        assert events == [{"message": "warning: no ControlMaster here: automatic port forwards are off"}]
