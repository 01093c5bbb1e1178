"""The templates limapy ships (issue 15): each listed name validates through `limapy validate template:NAME`;
every downloaded image of a pinned template has a digest of the right form, and the few moving ones say in
the file why they have none; the distributions and versions people start from are there, for x86_64 and
aarch64 where published; the docker and podman templates forward their engine's socket into the instance
dir and tell the user the DOCKER_HOST; `create --list-templates` and `info` list the same names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from limapy.cli import main
from limapy.config import load_config
from limapy.config.templates import list_templates

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"

#: Templates whose URLs always name the newest build (the distribution replaces the file in place), so no
#: digest can be pinned. Each says so in a comment.
MOVING = {"default", "debian", "ubuntu", "opensuse-leap-16", "opensuse-leap", "opensuse"}
DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")

#: What a Lima user types (issue 15), and the aliases Lima has for them.
EXPECTED = {
    "ubuntu-24.04", "ubuntu-22.04", "ubuntu-25.10", "ubuntu-lts", "ubuntu", "debian-12", "debian-13", "debian",
    "fedora", "alpine", "archlinux", "opensuse-leap", "opensuse", "rocky", "almalinux", "centos-stream",
    "docker", "podman", "default", "windows",
}  # fmt: skip
ALIASES = {"ubuntu-lts": "ubuntu-24.04", "fedora": "fedora-44", "alpine": "alpine-3.23", "rocky": "rocky-10",
           "almalinux": "almalinux-10", "centos-stream": "centos-stream-10", "opensuse": "opensuse-leap-16"}
ONE_ARCH = {"archlinux": "Arch publishes no aarch64 cloud image"}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


NAMES = [t.name for t in list_templates()]


def test_the_templates_people_start_from_are_there() -> None:
    assert set(NAMES) >= EXPECTED
    assert not [n for n in NAMES if n.startswith("_") or "/_" in n]  # bases are not listed


def test_every_listed_template_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *(f"template:{n}" for n in NAMES)]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [f"template:{n}: OK" for n in NAMES]


def _images(name: str) -> list[dict[str, object]]:
    return list(load_config(f"template:{name}").cfg["images"])


def _chain_text(name: str) -> str:
    """The template's file and the files of its bases (`_images/...`), where a comment explains its images."""
    path = TEMPLATES / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    for base in re.findall(r"template:([\w./-]+)", text):
        if (TEMPLATES / f"{base}.yaml").is_file() and base != name:
            text += _chain_text(base)
    return text


@pytest.mark.parametrize("name", NAMES)
def test_downloaded_images_are_pinned_by_digest(name: str) -> None:
    remote = [img for img in _images(name) if str(img["location"]).startswith(("http://", "https://"))]
    if name in MOVING:
        assert remote and all(not img.get("digest") for img in remote)
        assert re.search(r"^#.*no digest", _chain_text(name), re.M | re.I), f"{name}: say why there is no digest"
        return
    for img in remote:
        assert DIGEST.fullmatch(str(img.get("digest") or "")), f"{name}: {img['location']} has no valid digest"


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("windows", "windows-11", "experimental/windows")])
def test_x86_64_and_aarch64_where_published(name: str) -> None:
    arches = {img["arch"] for img in _images(name)}
    if name in ONE_ARCH:
        assert arches == {"x86_64"}, ONE_ARCH[name]
    else:
        assert {"x86_64", "aarch64"} <= arches


@pytest.mark.parametrize(("alias", "target"), sorted(ALIASES.items()))
def test_aliases_are_their_target(alias: str, target: str) -> None:
    assert _images(alias) == _images(target)
    assert load_config(f"template:{alias}").doc.name_hint == alias  # the instance is named as typed


@pytest.mark.parametrize(("name", "sock", "env"), [("docker", "docker.sock", "DOCKER_HOST"),
                                                   ("podman", "podman.sock", "CONTAINER_HOST")])  # fmt: skip
def test_engine_templates_forward_their_socket(name: str, sock: str, env: str) -> None:
    cfg = YAML(typ="safe").load((TEMPLATES / f"{name}.yaml").read_text(encoding="utf-8"))
    assert load_config(f"template:{name}").cfg["portForwards"]
    forwards = [f for f in cfg["portForwards"] if f.get("guestSocket")]
    assert [f["hostSocket"] for f in forwards] == [f"{{{{.Dir}}}}/sock/{sock}"]
    assert f"{env}=unix://{{{{.Dir}}}}/sock/{sock}" in cfg["message"]
    assert "DOCKER_HOST=unix://" in cfg["message"]
    scripts = "\n".join(p.get("script") or "" for p in cfg["provision"])
    assert "apt-get install" in scripts  # the distribution's own packages, no curl | sh
    assert "curl" not in scripts and "get.docker.com" not in scripts


def test_default_stays_debian() -> None:
    assert _images("default") == _images("debian")
    assert all("cloud.debian.org" in str(img["location"]) for img in _images("default"))


def test_list_templates_and_info_agree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "--list-templates"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed == NAMES
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in info["templates"]] == NAMES
    assert all(Path(t["location"]).is_file() for t in info["templates"])


def test_user_templates_shadow_shipped_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    (mine / "_images").mkdir(parents=True)
    (mine / "fedora.yaml").write_text("images: [{location: /tmp/f.qcow2, arch: x86_64}]\n")
    (mine / "_images" / "hidden.yaml").write_text("images: []\n")
    monkeypatch.setenv("LIMAPY_TEMPLATES_PATH", str(mine))
    found = {t.name: t.location for t in list_templates()}
    assert found["fedora"] == mine / "fedora.yaml" and "_images/hidden" not in found
    assert found["debian"] == TEMPLATES / "debian.yaml"


def test_engine_message_names_the_instance_socket(tmp_path: Path) -> None:
    from limapy.config.defaults import fill
    from limapy.config.hostinfo import HostInfo

    host = HostInfo(user="alice", uid=501, full_name="", arch="x86_64", cpus=4, memory=8 << 30, timezone="UTC",
                    os="Linux")  # fmt: skip
    raw = YAML(typ="safe").load((TEMPLATES / "docker.yaml").read_text(encoding="utf-8"))
    inst = tmp_path / "docker"
    cfg = fill({"message": raw["message"], "images": [{"location": "/x.img"}]}, host=host, name="docker",
               instance_dir=str(inst))  # fmt: skip
    assert f"export DOCKER_HOST=unix://{inst}/sock/docker.sock\n" in cfg["message"]
    assert "docker context create limapy-docker " in cfg["message"]
