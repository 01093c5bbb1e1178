"""`$LIMAPY_HOME/_config/default.yaml` < instance < `override.yaml` (lima-reference §2.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import ConfigError
from limapy.config import check
from limapy.config.defaults import layer
from limapy.config.hostinfo import HostInfo
from limapy.config.load import load_bytes

HOST = HostInfo(user="alice", uid=501, full_name="", arch="x86_64", cpus=4, memory=8 << 30, timezone="UTC", os="Linux")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)
    config = tmp_path / "home" / "_config"
    config.mkdir(parents=True)
    return config


def filled(home: Path, y: str, d: str | None = None, o: str | None = None) -> dict[str, Any]:
    if d is not None:
        (home / "default.yaml").write_text(d)
    if o is not None:
        (home / "override.yaml").write_text(o)
    return check(load_bytes(y.encode(), "test.yaml"), host=HOST).cfg


def test_scalars(home: Path) -> None:
    cfg = filled(home, "images: [{location: /}]\ncpus: 2\nmemory: 2GiB\n",
                 d="cpus: 6\nmemory: 6GiB\ndisk: 60GiB\n", o="memory: 9GiB\n")
    assert cfg["cpus"] == 2  # instance beats default.yaml
    assert cfg["disk"] == "60GiB"  # default.yaml beats the builtin
    assert cfg["memory"] == "9GiB"  # override.yaml beats everything
    assert cfg["arch"] == "x86_64"  # builtin when nobody sets it


def test_nested_scalars(home: Path) -> None:
    cfg = filled(home, "images: [{location: /}]\nssh: {localPort: 2222}\n",
                 d="ssh: {localPort: 3333, forwardAgent: true}\n", o="ssh: {loadDotSSHPubKeys: true}\n")
    assert cfg["ssh"]["localPort"] == 2222
    assert cfg["ssh"]["forwardAgent"] is True
    assert cfg["ssh"]["loadDotSSHPubKeys"] is True


def test_lists_concat_override_instance_default(home: Path) -> None:
    cfg = filled(
        home,
        "images: [{location: /y.img}]\nprovision: [{script: y}]\nportForwards: [{guestPort: 2}]\n",
        d="images: [{location: /d.img}]\nprovision: [{script: d}]\nportForwards: [{guestPort: 3}]\n",
        o="images: [{location: /o.img}]\nprovision: [{script: o}]\nportForwards: [{guestPort: 1}]\n",
    )
    assert [i["location"] for i in cfg["images"]] == ["/o.img", "/y.img", "/d.img"]
    assert [p["script"] for p in cfg["provision"]] == ["o", "y", "d"]
    assert [p["guestPort"] for p in cfg["portForwards"]] == [1, 2, 3]  # first matching rule wins: override first


def test_mounts_merged_by_mount_point(home: Path) -> None:
    cfg = filled(
        home,
        "images: [{location: /}]\nmounts: [{location: /srv, writable: true}, {location: /y}]\n",
        d="mounts: [{location: /srv, writable: false, 9p: {msize: 256KiB}}, {location: /d}]\n",
        o="mounts: [{location: /srv, mountPoint: /srv}, {location: /o}]\n",
    )
    assert [m["location"] for m in cfg["mounts"]] == ["/srv", "/d", "/y", "/o"]  # d, y, o order
    srv = cfg["mounts"][0]
    assert srv["writable"] is True and srv["9p"]["msize"] == "256KiB"


def test_maps_merged(home: Path) -> None:
    cfg = filled(
        home,
        "images: [{location: /}]\nenv: {A: y, B: y}\nparam: {P: y}\nprovision: [{script: $PARAM_P $PARAM_Q}]\n",
        d="env: {A: d, C: d}\nparam: {Q: d}\n",
        o="env: {B: o}\n",
    )
    assert cfg["env"] == {"A": "y", "B": "o", "C": "d"}
    assert cfg["param"] == {"P": "y", "Q": "d"}


def test_dns_highest_priority_non_empty(home: Path) -> None:
    y = "images: [{location: /}]\nhostResolver: {enabled: false}\n"
    assert filled(home, y + "dns: [1.1.1.1]\n", d="dns: [9.9.9.9]\n")["dns"] == ["1.1.1.1"]
    assert filled(home, y + "dns: []\n", d="dns: [9.9.9.9]\n")["dns"] == ["9.9.9.9"]
    assert filled(home, y + "dns: [1.1.1.1]\n", o="dns: [8.8.8.8]\n")["dns"] == ["8.8.8.8"]


def test_ca_certs_unique_concat(home: Path) -> None:
    cfg = filled(home, "images: [{location: /}]\ncaCerts: {files: [/b, /a]}\n",
                 d="caCerts: {files: [/a, /d]}\n", o="caCerts: {files: [/o, /b]}\n")
    assert cfg["caCerts"]["files"] == ["/a", "/d", "/b", "/o"]


def test_without_config_files(home: Path) -> None:
    assert filled(home, "images: [{location: /}]\n")["cpus"] == 4


def test_broken_default_yaml_is_reported(home: Path) -> None:
    (home / "default.yaml").write_text("cpus: [\n")
    with pytest.raises(ConfigError) as info:
        filled(home, "images: [{location: /}]\n")
    (p,) = info.value.problems
    assert p.startswith(str(home / "default.yaml"))


def test_layer_is_pure() -> None:
    d = {"cpus": 1, "provision": [{"script": "d"}], "env": {"A": "d"}}
    y = {"provision": [{"script": "y"}], "env": {"B": "y"}}
    o = {"env": {"A": "o"}}
    out = layer(d, y, o)
    assert out == {"provision": [{"script": "y"}, {"script": "d"}], "env": {"B": "y", "A": "o"}, "cpus": 1}
    out["provision"][0]["script"] = "changed"
    assert y["provision"][0]["script"] == "y"
