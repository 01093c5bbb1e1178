"""`base:` embedding follows Lima's mergeDocuments rules, and marks point into the file a value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from limapy.base.errors import ConfigError
from limapy.config import check
from limapy.config.hostinfo import HostInfo
from limapy.config.load import Document, load

HOST = HostInfo(user="alice", uid=501, full_name="", arch="x86_64", cpus=4, memory=8 << 30, timezone="UTC", os="Linux")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


def write(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def embed(tmp_path: Path, files: dict[str, str], top: str = "top.yaml") -> Document:
    write(tmp_path, files)
    return load(str(tmp_path / top))


def test_scalars_from_the_template_win(tmp_path: Path) -> None:
    doc = embed(tmp_path, {"base.yaml": "cpus: 8\nmemory: 8GiB\ndisk: 10GiB\n",
                           "top.yaml": "base: base.yaml\ncpus: 2\nmemory: null\n"})
    assert doc.data["cpus"] == 2  # template wins
    assert doc.data["memory"] == "8GiB"  # null in the template is filled by the base
    assert doc.data["disk"] == "10GiB"  # missing in the template
    assert "base" not in doc.data


def test_maps_merge_recursively(tmp_path: Path) -> None:
    doc = embed(tmp_path, {"base.yaml": "user: {name: bob, uid: 7}\nenv: {A: base, B: base}\n",
                           "top.yaml": "base: base.yaml\nuser: {name: carol}\nenv: {A: top}\n"})
    assert doc.data["user"] == {"name": "carol", "uid": 7}
    assert doc.data["env"] == {"A": "top", "B": "base"}


def test_lists_appended_provision_and_probes_prepended(tmp_path: Path) -> None:
    doc = embed(tmp_path, {
        "base.yaml": "images: [{location: /b.img}]\nprovision: [{script: base}]\nprobes: [{script: '#!base'}]\n"
                     "portForwards: [{guestPort: 1}]\n",
        "top.yaml": "base: base.yaml\nimages: [{location: /t.img}]\nprovision: [{script: top}]\n"
                    "probes: [{script: '#!top'}]\nportForwards: [{guestPort: 2}]\n",
    })
    assert [i["location"] for i in doc.data["images"]] == ["/t.img", "/b.img"]
    assert [p["script"] for p in doc.data["provision"]] == ["base", "top"]
    assert [p["script"] for p in doc.data["probes"]] == ["#!base", "#!top"]
    assert [p["guestPort"] for p in doc.data["portForwards"]] == [2, 1]


def test_dns_only_when_the_template_has_none(tmp_path: Path) -> None:
    doc = embed(tmp_path, {"base.yaml": "dns: [1.1.1.1]\n", "top.yaml": "base: base.yaml\ndns: [8.8.8.8]\n"})
    assert doc.data["dns"] == ["8.8.8.8"]
    doc = embed(tmp_path, {"base.yaml": "dns: [1.1.1.1]\n", "top.yaml": "base: base.yaml\ndns: []\n"})
    assert doc.data["dns"] == ["1.1.1.1"]
    doc = embed(tmp_path, {"base.yaml": "dns: [1.1.1.1]\n", "top.yaml": "base: base.yaml\n"})
    assert doc.data["dns"] == ["1.1.1.1"]


@pytest.mark.parametrize(("top", "base", "want"), [("1.0.0", "2.0.0", "2.0.0"), ("2.1.0", "2.0.9", "2.1.0"),
                                                    ("1.10.0", "1.9.0", "1.10.0")])
def test_minimum_lima_version_max(tmp_path: Path, top: str, base: str, want: str) -> None:
    doc = embed(tmp_path, {"base.yaml": f"minimumLimaVersion: {base}\nvmOpts: {{qemu: {{minimumVersion: 8.2.0}}}}\n",
                           "top.yaml": f"base: base.yaml\nminimumLimaVersion: {top}\n"
                                       "vmOpts: {qemu: {minimumVersion: 7.0.0}}\n"})
    assert doc.data["minimumLimaVersion"] == want
    assert doc.data["vmOpts"]["qemu"]["minimumVersion"] == "8.2.0"


def test_mount_types_unsupported_uniqued(tmp_path: Path) -> None:
    doc = embed(tmp_path, {"base.yaml": "mountTypesUnsupported: [9p, virtiofs]\n",
                           "top.yaml": "base: base.yaml\nmountTypesUnsupported: [9p]\n"})
    assert doc.data["mountTypesUnsupported"] == ["9p", "virtiofs"]


def test_mounts_combined_by_mount_point(tmp_path: Path) -> None:
    doc = embed(tmp_path, {
        "base.yaml": "mounts:\n- {location: '~', writable: false, 9p: {cache: mmap}}\n- {location: /srv}\n",
        "top.yaml": "base: base.yaml\nmounts:\n- {location: '~', writable: true}\n- {location: /data}\n",
    })
    assert [m["location"] for m in doc.data["mounts"]] == ["~", "/data", "/srv"]
    home = doc.data["mounts"][0]
    assert home["writable"] is True  # the template's entry comes first and wins
    assert home["9p"] == {"cache": "mmap"}  # fields it lacks come from the base's entry


def test_additional_disks_combined_by_name(tmp_path: Path) -> None:
    doc = embed(tmp_path, {"base.yaml": "additionalDisks: [{name: data, fsType: ext4}, other]\n",
                           "top.yaml": "base: base.yaml\nadditionalDisks: [{name: data, format: false}]\n"})
    assert doc.data["additionalDisks"] == [{"name": "data", "format": False, "fsType": "ext4"}, "other"]


def test_several_bases_in_order_and_nested(tmp_path: Path) -> None:
    doc = embed(tmp_path, {
        "inner.yaml": "cpus: 1\nmemory: 1GiB\ndisk: 1GiB\nprovision: [{script: inner}]\n",
        "sub/b1.yaml": "base: ../inner.yaml\ncpus: 2\nprovision: [{script: b1}]\n",
        "b2.yaml": "cpus: 3\nmemory: 3GiB\nprovision: [{script: b2}]\n",
        "top.yaml": "base: [sub/b1.yaml, b2.yaml]\nprovision: [{script: top}]\n",
    })
    assert doc.data["cpus"] == 2 and doc.data["memory"] == "1GiB" and doc.data["disk"] == "1GiB"
    assert [p["script"] for p in doc.data["provision"]] == ["b2", "inner", "b1", "top"]


def test_bases_are_embedded_depth_first(tmp_path: Path) -> None:
    # Lima's embed_test "Bases are embedded depth-first"
    doc = embed(tmp_path, {"base0.yaml": "base: [base1.yaml, {url: base2.yaml}]\nadditionalDisks: [disk0]\n",
                           "base1.yaml": "base: base3.yaml\nadditionalDisks: [disk1]\n",
                           "base2.yaml": "additionalDisks: [disk2]\n",
                           "base3.yaml": "additionalDisks: [disk3]\n"}, top="base0.yaml")
    assert doc.data["additionalDisks"] == ["disk0", "disk1", "disk3", "disk2"]


def test_additional_disk_wildcard_fills_earlier_entries(tmp_path: Path) -> None:
    doc = embed(tmp_path, {
        "base.yaml": "additionalDisks: [{name: disk4}, {name: '*', format: true}, {name: disk5}]\n",
        "top.yaml": "base: base.yaml\nadditionalDisks: [disk1, {name: disk3, format: false}]\n",
    })
    assert doc.data["additionalDisks"] == [
        {"name": "disk1", "format": True}, {"name": "disk3", "format": False}, {"name": "disk4", "format": True},
        {"name": "disk5"},
    ]


def test_network_wildcard_and_unnamed_entries(tmp_path: Path) -> None:
    doc = embed(tmp_path, {
        "base.yaml": "networks:\n- interface: lima2\n- metric: 250\n- {interface: lima1, metric: 100}\n"
                     "- {interface: '*', metric: 123}\n",
        "top.yaml": "base: base.yaml\nnetworks: [{interface: lima1}]\n",
    })
    assert doc.data["networks"] == [
        {"interface": "lima1", "metric": 100}, {"interface": "lima2", "metric": 123}, {"metric": 250},
    ]


def test_template_base_locator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_TEMPLATES_PATH", str(tmp_path / "tpl"))
    doc = embed(tmp_path, {"tpl/_images/img.yaml": "images: [{location: /from-template.img}]\n",
                           "top.yaml": "base: template:_images/img\ncpus: 1\n"})
    assert doc.data["images"] == [{"location": "/from-template.img"}]


def test_provision_file_is_inlined_relative_to_its_template(tmp_path: Path) -> None:
    doc = embed(tmp_path, {"lib/script.sh": "#!/bin/sh\necho hi\n",
                           "lib/base.yaml": "provision: [{file: script.sh}]\n",
                           "top.yaml": "base: lib/base.yaml\n"})
    assert doc.data["provision"] == [{"script": "#!/bin/sh\necho hi\n"}]


def _line(doc: Document, path: tuple[str | int, ...]) -> tuple[str, int]:
    src, line, _ = doc.mark(path)
    return Path(src).name, line


def test_marks_point_into_the_file_a_value_came_from(tmp_path: Path) -> None:
    doc = embed(tmp_path, {
        "base.yaml": "# base\ndisk: 10GiB\nprovision:\n- script: base\nmounts:\n- location: /b\n",
        "top.yaml": "base: base.yaml\ncpus: 2\nprovision:\n- script: top\nmounts:\n- location: /t\n",
    })
    assert _line(doc, ("cpus",)) == ("top.yaml", 2)
    assert _line(doc, ("disk",)) == ("base.yaml", 2)
    assert _line(doc, ("provision", 0, "script")) == ("base.yaml", 4)
    assert _line(doc, ("provision", 1, "script")) == ("top.yaml", 4)
    assert _line(doc, ("mounts", 0)) == ("top.yaml", 6)
    assert _line(doc, ("mounts", 1, "location")) == ("base.yaml", 6)


def test_problem_in_a_base_reports_the_base_line(tmp_path: Path) -> None:
    write(tmp_path, {
        "base.yaml": "\n\nimages: [{location: /}]\nprobes:\n- script: not-a-shebang\n",
        "top.yaml": "base: base.yaml\nprobes:\n- script: '#!/bin/sh'\n",
    })
    with pytest.raises(ConfigError) as info:
        check(load(str(tmp_path / "top.yaml")), host=HOST)
    assert info.value.problems == [
        f"{tmp_path / 'base.yaml'}:5:3: field `probe[0].script` must start with a '#!' line"
    ]


def test_schema_problem_in_a_base_reports_the_base_line(tmp_path: Path) -> None:
    write(tmp_path, {"base.yaml": "images: [{location: /}]\n\ncpus: many\n", "top.yaml": "base: base.yaml\n"})
    with pytest.raises(ConfigError) as info:
        check(load(str(tmp_path / "top.yaml")), host=HOST)
    (p,) = info.value.problems
    assert p.startswith(f"{tmp_path / 'base.yaml'}:3:1: field `cpus`")


def test_file_on_data_and_yq_entries_becomes_content_and_expression(tmp_path: Path) -> None:
    from limapy.config.load import load

    (tmp_path / "motd.txt").write_text("hello\n")
    (tmp_path / "edit.yq").write_text(".a = 1\n")
    (tmp_path / "run.sh").write_text("#!/bin/sh\ntrue\n")
    t = tmp_path / "t.yaml"
    t.write_text("provision:\n- {mode: data, path: /etc/motd, file: motd.txt}\n"
                 "- {mode: yq, path: /etc/x.yaml, file: edit.yq}\n- {mode: system, file: run.sh}\n")
    items = load(str(t)).data["provision"]
    assert items[0] == {"mode": "data", "path": "/etc/motd", "content": "hello\n"}
    assert items[1] == {"mode": "yq", "path": "/etc/x.yaml", "expression": ".a = 1\n"}
    assert items[2] == {"mode": "system", "script": "#!/bin/sh\ntrue\n"}


def test_an_image_url_is_a_template_without_a_download(tmp_path: Path) -> None:
    from limapy.config.locate import _host_arch, locate

    def no_fetch(url: str) -> Path:
        raise AssertionError(f"downloaded {url}")

    url = "https://e.x/images/debian-12-genericcloud-arm64.qcow2"
    located = locate(url, fetcher=no_fetch)
    assert located.name_hint == "debian-12-arm64"  # Lima's InstNameFromImageURL drops generic tags
    t = tmp_path / "t.yaml"
    t.write_text(f"base: {url}\ncpus: 1\n")
    doc = load(str(t), fetcher=no_fetch)
    assert doc.data["images"] == [{"location": url, "arch": "aarch64"}] and doc.data["cpus"] == 1
    plain = locate("https://e.x/disk.img.xz", fetcher=no_fetch)  # no arch in the name: the host's, with a warning
    arch = _host_arch().encode()
    assert plain.raw == (b'os: "Linux"\narch: "' + arch + b'"\nimages:\n- location: "https://e.x/disk.img.xz"\n'
                         b'  arch: "' + arch + b'"\n') and plain.name_hint == "disk" and plain.warnings
