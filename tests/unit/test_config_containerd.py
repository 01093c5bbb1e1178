"""`containerd` filled as Lima's FillDefault fills it (archives included), though limapy installs none."""

from __future__ import annotations

from pathlib import Path

import pytest

from limapy.base.errors import ConfigError
from limapy.cli import main
from limapy.config import check
from limapy.config.defaults import CONTAINERD_ARCHIVES
from limapy.config.hostinfo import HostInfo
from limapy.config.load import load_bytes

HOST = HostInfo(user="alice", uid=501, full_name="", arch="x86_64", cpus=4, memory=8 << 30, timezone="UTC", os="Linux")
IMAGES = "images: [{location: /tmp/x.img}]\n"
NERDCTL = "https://github.com/containerd/nerdctl/releases/download/v2.3.5/nerdctl-full-2.3.5-linux-"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


def _check(yaml: str) -> tuple[dict[str, object], list[str]]:
    loaded = check(load_bytes(yaml.encode(), "t.yaml"), host=HOST)
    return loaded.cfg, loaded.warnings


def test_empty_archives_get_limas_list_for_every_arch() -> None:
    # Lima's pkg/limayaml/containerd.yaml: one nerdctl-full archive per arch, pinned by digest
    for yaml in (IMAGES, IMAGES + "containerd: {archives: []}\n", "arch: aarch64\n" + IMAGES):
        cfg, _ = _check(yaml)
        assert cfg["containerd"]["archives"] == [  # type: ignore[index]
            {"location": NERDCTL + "amd64.tar.gz", "arch": "x86_64",
             "digest": "sha256:b697295c623639734aaab737523c808fd3cc8d3046039fd94fff1744e4c317aa"},
            {"location": NERDCTL + "arm64.tar.gz", "arch": "aarch64",
             "digest": "sha256:6e4b687f1d138e750a3c8372abc0f81d3d7490b6359c48c0562fc7dfe98859b2"},
        ]  # fmt: skip


def test_filled_archives_are_copies() -> None:
    cfg, _ = _check(IMAGES)
    cfg["containerd"]["archives"][0]["arch"] = "riscv64"  # type: ignore[index]
    assert CONTAINERD_ARCHIVES[0]["arch"] == "x86_64"


def test_given_archives_replace_the_default_and_get_the_instance_arch() -> None:
    cfg, _ = _check("arch: aarch64\n" + IMAGES + "containerd: {archives: [{location: /tmp/n.tgz}]}\n")
    assert cfg["containerd"]["archives"] == [{"location": "/tmp/n.tgz", "arch": "aarch64"}]  # type: ignore[index]


def test_plain_and_windows_still_fill_the_archives() -> None:
    for yaml in ("plain: true\n" + IMAGES, "os: Windows\n" + IMAGES):
        cfg, _ = _check(yaml)
        c = cfg["containerd"]
        assert c["user"] is False and c["system"] is False  # type: ignore[index]
        assert [a["arch"] for a in c["archives"]] == ["x86_64", "aarch64"]  # type: ignore[index]


def test_bad_archive_is_lima_error_only_when_containerd_is_wanted() -> None:
    bad = "containerd: {user: %s, archives: [{location: /tmp/n.tgz, digest: 'sha256:nothex'}]}\n"
    _check(IMAGES + bad % "false")  # Lima checks the archives only when containerd is enabled
    with pytest.raises(ConfigError) as info:
        _check(IMAGES + bad % "true")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("t.yaml:")
    assert "field `containerd.archives[0].digest` is invalid" in info.value.problems[0]


def test_asking_for_containerd_warns_that_none_is_installed() -> None:
    _, warnings = _check(IMAGES)  # Lima's default user: true is no request: no warning
    assert warnings == []
    _, warnings = _check(IMAGES + "containerd:\n  system: true\n  user: false\n")
    assert warnings == ["t.yaml:3:3: warning: field `containerd.system` is true, but limapy does not install "
                        "containerd (the field is filled as Lima fills it, and ignored)"]  # fmt: skip
    _, warnings = _check("plain: true\n" + IMAGES + "containerd: {user: true}\n")
    assert warnings == []  # plain mode turns it off, as in Lima


def test_validate_fill_prints_the_archives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(IMAGES)
    assert main(["validate", "--fill", str(f)]) == 0
    out = capsys.readouterr().out
    assert ("containerd:\n  system: false\n  user: true\n  archives:\n"
            f"  - location: {NERDCTL}amd64.tar.gz\n    arch: x86_64\n"
            "    digest: sha256:b697295c623639734aaab737523c808fd3cc8d3046039fd94fff1744e4c317aa\n"
            f"  - location: {NERDCTL}arm64.tar.gz\n    arch: aarch64\n") in out  # fmt: skip
