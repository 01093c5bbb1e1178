"""`limapy list --connect URI` (limapy.driver.libvirt.inventory): only domains carrying limapy's metadata are
listed, with their state, and `here` says whether this machine's limapy has the instance. A fake libvirt
connection stands in for libvirtd (tests/e2e/test_libvirt.py lists a real one)."""

from __future__ import annotations

import json
import os
import types
from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import UsageError
from limapy.driver.libvirt import conn as lvconn
from limapy.driver.libvirt import domain, inventory
from limapy.ops import list as list_ops

LV = types.SimpleNamespace(VIR_DOMAIN_RUNNING=1, VIR_DOMAIN_BLOCKED=2, VIR_DOMAIN_PAUSED=3, VIR_DOMAIN_SHUTOFF=5,
                           libvirtError=RuntimeError)  # fmt: skip


class FakeDomain:
    def __init__(self, name: str, state: int, meta: dict[str, str] | None, saved: bool = False) -> None:
        self._name, self._state, self._meta, self._saved = name, state, meta, saved

    def name(self) -> str:
        return self._name

    def state(self) -> list[int]:
        return [self._state, 0]

    def hasManagedSaveImage(self, flags: int) -> bool:
        return self._saved

    def XMLDesc(self, flags: int) -> str:
        meta = ""
        if self._meta is not None:
            attrs = " ".join(f'{k}="{v}"' for k, v in self._meta.items())
            meta = f'<metadata><limapy:instance xmlns:limapy="{domain.LIMAPY_NS}" {attrs}/></metadata>'
        return f"<domain type='qemu'><name>{self._name}</name>{meta}</domain>"


class FakeConn:
    def __init__(self, doms: list[FakeDomain]) -> None:
        self.doms, self.closed = doms, False

    def getURI(self) -> str:
        return "qemu:///system"

    def listAllDomains(self, flags: int) -> list[FakeDomain]:
        return self.doms

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def _serve(monkeypatch: pytest.MonkeyPatch, doms: list[FakeDomain]) -> FakeConn:
    conn = FakeConn(doms)
    monkeypatch.setattr(lvconn, "binding", lambda: LV)
    monkeypatch.setattr(lvconn, "connect", lambda uri: conn)
    return conn


def test_only_limapy_domains_with_their_state_and_whether_this_machine_has_them(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = os.uname().nodename
    mine = home / "mine"
    mine.mkdir(mode=0o700)
    (mine / "driver.uri").write_text("qemu:///system\n")
    gone = str(home / "gone")  # its instance dir was deleted by hand: an orphan domain
    conn = _serve(monkeypatch, [
        FakeDomain("limapy-mine", LV.VIR_DOMAIN_RUNNING, {"name": "mine", "dir": str(mine), "host": node}),
        FakeDomain("someone-elses-vm", LV.VIR_DOMAIN_RUNNING, None),
        FakeDomain("limapy-gone", LV.VIR_DOMAIN_SHUTOFF, {"name": "gone", "dir": gone, "host": node}, saved=True),
        FakeDomain("limapy-ci", LV.VIR_DOMAIN_PAUSED, {"name": "ci", "dir": "/home/ci/.limapy/ci", "host": "ci-7"}),
    ])  # fmt: skip
    rows = inventory.domains("qemu:///system")
    assert conn.closed
    assert [(r["name"], r["status"], r["domain"], r["here"]) for r in rows] == [
        ("ci", "Paused", "limapy-ci", False),
        ("gone", "Suspended", "limapy-gone", False),
        ("mine", "Running", "limapy-mine", True),
    ]
    assert rows[0]["host"] == "ci-7" and rows[1]["dir"] == gone


def test_an_instance_of_the_same_name_on_another_libvirt_host_is_not_here(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = home / "mine"
    mine.mkdir(mode=0o700)
    (mine / "driver.uri").write_text("qemu+ssh://root@kvm.example/system\n")
    meta = {"name": "mine", "dir": str(mine), "host": os.uname().nodename}
    _serve(monkeypatch, [FakeDomain("limapy-mine", LV.VIR_DOMAIN_SHUTOFF, meta)])
    (row,) = inventory.domains("qemu:///system")
    assert (row["status"], row["here"]) == ("Stopped", False)


def test_list_connect_prints_a_table_json_or_names(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = {"name": "ci", "dir": "/d", "host": "ci-7"}
    _serve(monkeypatch, [FakeDomain("limapy-ci", LV.VIR_DOMAIN_RUNNING, meta)])
    assert list_ops.run(list_ops.Request(connect="qemu:///system"), say=print) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == list(list_ops.DOMAIN_COLUMNS)
    assert lines[1].split() == ["ci", "Running", "limapy-ci", "ci-7", "no", "/d"]
    assert list_ops.run(list_ops.Request(connect="qemu:///system", json=True), say=print) == 0
    assert json.loads(capsys.readouterr().out) == {
        "name": "ci",
        "status": "Running",
        "domain": "limapy-ci",
        "host": "ci-7",
        "here": False,
        "dir": "/d",
    }
    assert list_ops.run(list_ops.Request(connect="qemu:///system", quiet=True), say=print) == 0
    assert capsys.readouterr().out == "limapy-ci\n"


@pytest.mark.parametrize("req", [
    list_ops.Request(connect="qemu:///system", format="yaml"),
    list_ops.Request(connect="qemu:///system", names=("ci",)),
    list_ops.Request(connect="qemu:///system", filters=(".cpus > 1",)),
])  # fmt: skip
def test_list_connect_refuses_what_it_cannot_apply(req: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _serve(monkeypatch, [])
    with pytest.raises(UsageError, match="--connect"):
        list_ops.run(req, say=print)
