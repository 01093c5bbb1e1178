"""The guest-OS seam's registry and hooks (limapy.guest): an OS is found by lima.yaml's `os`, one line registers
another (its rules too, for the configuration's layer), an OS limapy has no package for is one clear line, and the
commands reach the hooks (copy's guest paths, shell --sync, rdp) instead of asking which OS it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limapy import guest
from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest import rules
from limapy.guest.boot import CD_DRIVERS, CD_ISO, CD_SEED, INSTALL, INSTALLED, SETUP
from limapy.instance import store


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_GUEST_MODULES", raising=False)
    return tmp_path / "home"


def spec(os_: str, arch: str = "x86_64", **over: Any) -> Spec:
    return Spec.from_cfg({"os": os_, "arch": arch, "images": [{"location": "/x.img", "arch": arch}], **over})


def test_the_built_in_guests_by_their_os(home: Path) -> None:
    assert guest.load("Linux").name == "Linux" and guest.for_spec(spec("Linux")) is guest.load("Linux")
    assert guest.for_spec(spec("Windows")).name == "Windows"
    with pytest.raises(LimapyError) as e:
        guest.load("FreeBSD")
    assert e.value.message == "limapy cannot run `os: FreeBSD` guests" and e.value.hint == "it runs: Linux, Windows"
    assert rules.for_os("FreeBSD") is rules.LIMA_ONLY["FreeBSD"]  # Lima's defaults still fill its lima.yaml
    assert rules.for_os("Plan9").name == ""  # an `os` Lima does not know: Lima's own rule reports it


def test_one_line_registers_a_guest_and_its_rules(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_GUEST_MODULES", "FreeBSD=tests.toyguest")
    from tests import toyguest

    assert guest.load("FreeBSD") is toyguest.GUEST
    assert rules.for_os("FreeBSD") is toyguest.RULES
    assert spec("FreeBSD").user.shell == ""  # nothing filled: the toy's rules imply no shell
    assert guest.load("Linux").name == "Linux"  # the built-in ones stay


def test_windows_devices_follow_the_install_stage() -> None:
    win = spec("Windows", osOpts={"Windows": {"virtioWin": [{"location": "/v.iso", "arch": "x86_64"}]}})
    os_ = guest.for_spec(win)
    first = os_.devices(win, INSTALL)
    assert [(c.media, c.bootindex) for c in first.cds] == [(CD_ISO, 0), (CD_DRIVERS, None), (CD_SEED, None)]
    assert first.disk_bootindex == 1 and first.disk_bus == "virtio" and first.nic == "virtio"
    assert [c.bootindex for c in os_.devices(win, SETUP).cds] == [None, None, None]
    assert os_.devices(win, SETUP).disk_bootindex == 0
    assert os_.devices(win, INSTALLED).cds == () and os_.devices(win, None).cds == ()
    with pytest.raises(ValueError, match="install stage 'later'"):
        os_.devices(win, "later")
    inbox = guest.for_spec(spec("Windows")).devices(spec("Windows"), INSTALL)
    assert (inbox.disk_bus, inbox.nic, inbox.rng, inbox.cd_bus) == ("sata", "e1000e", False, "sata")
    linux = guest.for_spec(spec("Linux")).devices(spec("Linux"), None)
    assert (linux.disk_bus, linux.cd_bus, linux.usb, linux.video_always) == ("virtio", "scsi", False, False)


def test_capabilities_not_os_names(home: Path) -> None:
    """`shell --sync` asks for rsync, `rdp` for Remote Desktop: the messages name the OS the guest says it is."""
    from limapy.ops import shell, shellsync

    win = store.create_instance_dir("w", {"lima.yaml": b"os: Windows\nimages: [{location: /x.iso}]\n"})
    from limapy import config

    with pytest.raises(LimapyError, match="cannot use `--sync` with a Windows guest: it has no rsync"):
        shellsync.check(win, config.instance_spec(win), shell.Request(sync="/a/b/c/d"))
    assert guest.load("Linux").rsync and not guest.load("Windows").rsync
    assert guest.load("Windows").remote_desktop and not guest.load("Linux").remote_desktop


def test_copy_gives_scp_the_guest_path_its_os_makes(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26 fills Windows' path rules in here (drive letters): `copy` already asks the guest OS."""
    from limapy import driver
    from limapy.base import proc
    from limapy.guest.linux import LinuxGuest
    from limapy.ops import copy

    store.create_instance_dir("web", {"lima.yaml": b"images: [{location: /x.img}]\n"})
    monkeypatch.setattr(driver, "status", lambda _inst: store.RUNNING)
    monkeypatch.setattr(LinuxGuest, "copy_path", lambda self, path: path.upper())
    ran: list[list[str]] = []
    monkeypatch.setattr(proc, "call", lambda argv, **_kw: ran.append(list(argv)) or 0)
    assert copy.copy(["./f", "web:/tmp/x"], backend="scp") == 0
    assert ran[0][-2:] == ["./f", "lima-web:/TMP/X"]
