"""Every shipped template and every upstream Lima template (except `_default/`) validates: Lima's rules for
Lima's templates, and limapy's rules for what its `start` boots too (issue 27: docker.yaml and docker-rootful.yaml
with their `mode: yq` steps included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from limapy.config import check, load_config
from limapy.config.hostinfo import HostInfo
from limapy.config.load import load

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "templates"
# Lima's own templates, a read-only corpus beside the repository; absent in some checkouts.
LIMA_TEMPLATES = REPO.parent / "shared" / "lima-templates"
HOST = HostInfo(user="alice", uid=501, full_name="", arch="x86_64", cpus=4, memory=8 << 30, timezone="UTC", os="Linux")


def _yamls(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.yaml") if "_default" not in p.relative_to(root).parts)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


@pytest.mark.parametrize("path", _yamls(SHIPPED), ids=lambda p: str(p.relative_to(SHIPPED)))
def test_shipped_template_validates(path: Path) -> None:
    loaded = check(load(str(path)), host=HOST)
    assert loaded.cfg["images"], "a shipped template must name its images"


LIMA = _yamls(LIMA_TEMPLATES)


@pytest.mark.skipif(not LIMA, reason=f"{LIMA_TEMPLATES} not present")
@pytest.mark.parametrize("path", LIMA, ids=lambda p: str(p.relative_to(LIMA_TEMPLATES)))
def test_lima_template_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_TEMPLATES_PATH", str(LIMA_TEMPLATES))
    doc = load(str(path))
    loaded = check(doc, host=HOST, bootable=False)
    assert "base" not in loaded.doc.data
    check(load(str(path)), host=HOST)  # what `limapy validate` and `create` check
    if not doc.incomplete:  # a base behind a URL plugin (fedora-rawhide:) cannot be embedded offline
        assert loaded.cfg["images"]


@pytest.mark.skipif(not LIMA, reason=f"{LIMA_TEMPLATES} not present")
def test_lima_template_corpus_is_complete() -> None:
    # guards against the walk silently finding nothing (e.g. the symlinks not followed)
    names = {str(p.relative_to(LIMA_TEMPLATES)) for p in LIMA}
    assert {"default.yaml", "ubuntu.yaml", "windows.yaml", "docker.yaml"} <= names
    assert len(names) > 50


@pytest.mark.parametrize("name", ["windows", "experimental/windows", "default", "debian", "ubuntu"])
def test_template_locators_resolve_to_shipped(name: str) -> None:
    loaded = load_config(f"template:{name}")
    assert loaded.doc.name_hint == name.rsplit("/", 1)[-1]
    assert loaded.cfg["images"]


def test_template_windows_is_a_windows_guest() -> None:
    for name in ("windows", "experimental/windows"):
        cfg = load_config(f"template:{name}").cfg
        assert cfg["os"] == "Windows"
        assert {img["arch"] for img in cfg["images"]} >= {"x86_64", "aarch64"}


def test_legacy_template_scheme_warns() -> None:
    loaded = load_config("template://default")
    assert any("template:default" in w for w in loaded.warnings)


def test_templates_path_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "mine"
    own.mkdir()
    (own / "default.yaml").write_text("images: [{location: /mine.img}]\ncpus: 1\n")
    monkeypatch.setenv("LIMAPY_TEMPLATES_PATH", f"{tmp_path / 'missing'}:{own}")
    cfg = load_config("template:default").cfg
    assert cfg["images"][0]["location"] == "/mine.img" and cfg["cpus"] == 1


def test_user_templates_dir_before_shipped(tmp_path: Path) -> None:
    user = tmp_path / "home" / "_templates"
    user.mkdir(parents=True)
    (user / "ubuntu-24.04.yaml").write_text("images: [{location: /u.img}]\n")
    assert load_config("template:ubuntu-24.04").cfg["images"][0]["location"] == "/u.img"


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "", "nonexistent-template"])
def test_bad_template_names(name: str) -> None:
    from limapy.base.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(f"template:{name}")
    assert len(info.value.problems) == 1


@pytest.mark.parametrize("path", [*_yamls(SHIPPED), *LIMA], ids=lambda p: p.name)
def test_lima_yaml_with_comments_reads_back_the_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lima.yaml is written with the templates' comments (config.comments): it must read back to the same data."""
    from limapy.config import comments
    from limapy.config.load import load_bytes

    if LIMA and path.is_relative_to(LIMA_TEMPLATES):
        monkeypatch.setenv("LIMAPY_TEMPLATES_PATH", str(LIMA_TEMPLATES))
    doc = load(str(path))
    text = comments.dump(doc.data, doc.marks, doc.texts, doc.source)
    assert load_bytes(text.encode(), "lima.yaml").data == doc.data
