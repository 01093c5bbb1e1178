"""Lima's embedding tests (pkg/limatmpl/embed_test.go, lima-vm/lima 183a60d), translated, and the locator rules
around them (pkg/limatmpl/locator.go). Each case names the line of the Lima test or source it mirrors.

Lima's harness (RunEmbedTest, embed_test.go line 446): the bases are base0.yaml, base1.yaml, ... (base<i>.sh when
they start with `#!`) beside the template, which gets `base: base0.yaml` prepended unless base0 is a script.
Cases whose template starts with `#` compare text (comments); the others compare data.
Not translated: the three cases about `embedAll=false` (lines 196, 229, 235): limapy always embeds everything, as
`limactl create` does (embedAll=true); and the two TODO cases (lines 149, 294) Lima itself expects to fail.
"""

# ruff: noqa: E501  (Lima's test strings, verbatim)
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import ConfigError
from limapy.config.load import Document, load


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)
    monkeypatch.chdir(tmp_path)


def embed(tmp_path: Path, template: str, base: str) -> Document:
    bases = base.strip().split("---\n")
    for i, text in enumerate(bases):
        (tmp_path / f"base{i}{'.sh' if text.startswith('#!') else '.yaml'}").write_text(text)
    top = tmp_path / "tmpl.yaml"
    top.write_text(template if base.strip().startswith("#!") else "base: base0.yaml\n" + template)
    return load(str(top))


def norm(data: Any) -> Any:
    """Lima compares typed structs: a disk given by name equals {name: ...}."""
    from limapy.config.load import load_bytes

    if isinstance(data, str):
        data = load_bytes(data.encode(), "expected.yaml").data
    disks = data.get("additionalDisks")
    if isinstance(disks, list):
        data["additionalDisks"] = [{"name": d} if isinstance(d, str) else d for d in disks]
    return data


DATA_CASES = [
    ("line 42: empty template", "", "vmType: qemu", "vmType: qemu"),
    ("line 48: base doesn't override existing values", "vmType: vz", "{arch: aarch64, vmType: qemu}",
     "{arch: aarch64, vmType: vz}"),
    ("line 71: mountTypesUnsupported are concatenated and duplicates removed", "mountTypesUnsupported: [9p,reverse-sshfs]",
     "mountTypesUnsupported: [9p,virtiofs]", "mountTypesUnsupported: [9p,reverse-sshfs,virtiofs]"),
    ("line 92: vmOpts.qemu.minimumVersion is updated when the base version is higher",
     "vmOpts: {qemu: {minimumVersion: 8.2.1}}", "vmOpts: {qemu: {minimumVersion: 9.1.0}}",
     "vmOpts: {qemu: {minimumVersion: 9.1.0}}"),
    ("line 98: dns list is not appended", "dns: [1.1.1.1]", "dns: [8.8.8.8, 1.2.3.4]", "dns: [1.1.1.1]"),
    ("line 104: dns is copied from base when template has no dns", "", "dns: [1.1.1.1, 8.8.8.8]",
     "dns: [1.1.1.1, 8.8.8.8]"),
    ("line 110: dns is copied from base when template has empty list", "dns: []", "dns: [1.1.1.1, 8.8.8.8]",
     "dns: [1.1.1.1, 8.8.8.8]"),
    ("line 136: probes and provision scripts are prepended", "probes: [{script: 1}]\nprovision: [{script: One}]",
     "probes: [{script: 2}]\nprovision: [{script: Two}]",
     "probes: [{script: 2},{script: 1}]\nprovision: [{script: Two},{script: One}]"),
    ("line 142: additionalDisks append, but merge fields on shared name", "additionalDisks: [{name: disk1}]",
     "additionalDisks: [{name: disk2},{name: disk1, format: true}]",
     "additionalDisks: [{name: disk1, format: true},{name: disk2}]"),
    ("line 190: mounts append, but merge fields on shared mountPoint",
     "mounts: [{location: loc1}, {location: loc1, mountPoint: loc2}]",
     "mounts: [{location: loc1, mountPoint: loc2, writable: true, sshfs: {followSymlinks: true}}, "
     "{location: loc1, mountPoint: loc3, writable: true}]",
     "mounts: [{location: loc1}, {location: loc1, mountPoint: loc2, writable: true, sshfs: {followSymlinks: true}}, "
     "{location: loc1, mountPoint: loc3, writable: true}]"),
    ("line 246: bases are embedded depth-first", "",
     "base: [base1.yaml, {url: base2.yaml}]\nadditionalDisks: [disk0]\n---\nbase: base3.yaml\nadditionalDisks: "
     "[disk1]\n---\nadditionalDisks: [disk2]\n---\nadditionalDisks: [disk3]\n",
     "additionalDisks: [disk0, disk1, disk3, disk2]"),
    ("line 264: additionalDisks with name '*' are merged with all previous entries",
     "additionalDisks:\n- name: disk1\n- name: disk2\n- name: disk3\n  format: false\n",
     "additionalDisks:\n- name: disk4\n- name: \"*\"\n  format: true\n- name: disk5\n",
     "additionalDisks: [{name: disk1, format: true}, {name: disk2, format: true}, {name: disk3, format: false}, "
     "{name: disk4, format: true}, {name: disk5}]"),
    ("line 316: additionalDisks will be upgraded from string to map", "additionalDisks: [mine]",
     'additionalDisks: [{name: "*", format: true}]', "additionalDisks: [{name: mine, format: true}]"),
    ("line 322: networks without interface name are not merged", "networks:\n- interface: lima1\n",
     "networks:\n- interface: lima2\n- metric: 250\n- interface: lima1\n  metric: 100\n- interface: '*'\n"
     "  metric: 123\n",
     "networks: [{interface: lima1, metric: 100}, {interface: lima2, metric: 123}, {metric: 250}]"),
    ("line 392: script files are embedded even when no base property exists", "provision: [{file: base0.sh}]",
     "#! my script", 'provision: [{script: "#! my script"}]'),
    ("line 404: image URLs will be converted into a template", "",
     "base: https://example.com/lima-linux-riscv64.img",
     "{arch: riscv64, os: Linux, images: [{location: https://example.com/lima-linux-riscv64.img, arch: riscv64}]}"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "template", "base", "expected"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_embed_data(tmp_path: Path, case: str, template: str, base: str, expected: str) -> None:
    assert norm(embed(tmp_path, template, base).data) == norm(expected), case


def test_embed_minimum_lima_version_with_its_comment(tmp_path: Path) -> None:
    """embed_test.go line 77 (text compare): the base's higher version wins, its comments with it."""
    from limapy.config import comments

    doc = embed(tmp_path, "# Works with Lima 0.8.0 and later\nminimumLimaVersion: 0.8.0 # needs 0.8.0\n",
                "\n# Requires at least 1.0.2\nminimumLimaVersion: 1.0.2    # or later\n")
    assert doc.data == {"minimumLimaVersion": "1.0.2"}
    text = comments.dump(doc.data, doc.marks, doc.texts, doc.source)
    assert "minimumLimaVersion: 1.0.2" in text


@pytest.mark.parametrize(
    ("case", "template", "base", "error"),
    [("line 217: each template must only be embedded once", "arch: aarch64\n",
      "base: base0.yaml\nvmType: qemu\n", "base template loop detected: template `base0.yaml` already included"),
     ("line 398: base digest is not yet implemented", "", "base: [{url: base.yaml, digest: deafbad}]",
      "has specified a digest; digest support is not yet implemented")],
)  # fmt: skip
def test_embed_errors(tmp_path: Path, case: str, template: str, base: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        embed(tmp_path, template, base)
    assert error in info.value.problems[0], case


def test_embedding_twice_through_two_paths_is_refused(tmp_path: Path) -> None:
    # Lima's `seen` is shared by the whole embedding (embed.go lines 36 and 91): a diamond is refused too
    (tmp_path / "shared.yaml").write_text("cpus: 1\n")
    (tmp_path / "a.yaml").write_text("base: shared.yaml\n")
    (tmp_path / "b.yaml").write_text("base: shared.yaml\n")
    (tmp_path / "top.yaml").write_text("base: [a.yaml, b.yaml]\n")
    with pytest.raises(ConfigError, match="already included"):
        load(str(tmp_path / "top.yaml"))


def test_comments_are_copied_over(tmp_path: Path) -> None:
    """embed_test.go line 54 (text compare)."""
    from limapy.config import comments

    doc = embed(tmp_path, "# VM Type is QEMU\nvmType: qemu # QEMU\n", "\n# Arch is x86_64\narch: x86_64 # X86\n")
    text = comments.dump(doc.data, doc.marks, doc.texts, doc.source)
    # Lima's yamlfmt puts two spaces before a line comment; ruamel aligns them in a column: compare the rest
    assert re.sub(r" +#", "  #", text) == "# VM Type is QEMU\nvmType: qemu  # QEMU\n# Arch is x86_64\narch: x86_64  # X86\n"


def test_list_comments_are_updated(tmp_path: Path) -> None:
    """embed_test.go line 116: a list the template has gets the base's comments and items with theirs."""
    from limapy.config import comments

    doc = embed(tmp_path, "additionalDisks:\n- name: disk1 # One\n",
                "\n# Mount additional disks\nadditionalDisks: # comment\n# This is disk2\n- name: disk2 # Two\n")
    text = re.sub(r" +#", "  #", comments.dump(doc.data, doc.marks, doc.texts, doc.source))
    assert "- name: disk1  # One\n# This is disk2\n- name: disk2  # Two\n" in text


def test_scripts_are_embedded_with_comments_moved(tmp_path: Path) -> None:
    """embed_test.go line 348: `file:` becomes `script:`/`content:`/`expression:` and its comments move along
    (embed.go updateScript, line 612). ruamel cannot write a comment after `|`, so a moved line comment stands
    above its key."""
    from limapy.config import comments

    template = ("# Hi There!\nprovision:\n# This script will be merged from an external file\n"
                "- file: base1.sh # This comment will move to the \"script\" key\n# This is just a data file\n"
                "- mode: data\n  file: base1.sh # This comment will move to the \"content\" key\n  path: /tmp/data\n"
                "- mode: yq\n  file: base1.sh # This comment will move to the \"expression\" key\n  path: /tmp/yq\n")
    doc = embed(tmp_path, template, "# base0.yaml is ignored\n---\n#!/usr/bin/env bash\necho \"This is base1.sh\"\n")
    script = '#!/usr/bin/env bash\necho "This is base1.sh"'  # the harness trims the files (TrimSpace)
    assert doc.data["provision"] == [{"script": script}, {"mode": "data", "content": script, "path": "/tmp/data"},
                                     {"mode": "yq", "expression": script, "path": "/tmp/yq"}]  # fmt: skip
    text = comments.dump(doc.data, doc.marks, doc.texts, doc.source)
    assert text.startswith("# Hi There!\nprovision:\n# This script will be merged from an external file\n")
    for key in ("script", "content", "expression"):
        comment = f'# This comment will move to the "{key}" key'
        assert comment in text
        assert text.index(comment) < text.index(f"{key}: |"), key
    from limapy.config.load import load_bytes

    assert load_bytes(text.encode(), "out.yaml").data == doc.data  # the bytes survive


def test_binary_files_are_base64(tmp_path: Path) -> None:
    """embed_test.go line 410: a binary data file is `!!binary` (limapy keeps the bytes, Lima too)."""
    from limapy.config import comments
    from limapy.config.load import load_bytes

    doc = embed(tmp_path, "provision:\n- mode: data\n  file: base1.sh\n  path: /tmp/data\n",
                "# base0.yaml is ignored\n---\n#!\a1234567890")
    text = comments.dump(doc.data, doc.marks, doc.texts, doc.source)
    assert load_bytes(text.encode(), "out.yaml").data["provision"][0]["content"] == "#!\a1234567890"


# -- locator.go -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name", "arch", "os_"),
    [("https://example.com/lima-linux-riscv64.img", "lima-riscv64", "riscv64", "Linux"),
     ("https://cloud.debian.org/images/cloud/bookworm/20250428-2096/debian-12-genericcloud-arm64-20250428-2096.qcow2",
      "debian-12-arm64", "aarch64", "Linux"),
     ("https://download.freebsd.org/releases/VM-IMAGES/14.3-RELEASE/amd64/Latest/FreeBSD-14.3-RELEASE-amd64-BASIC-"
      "CLOUDINIT-ufs.qcow2.xz", "freebsd-14.3-amd64-ufs", "x86_64", "FreeBSD")],
)  # fmt: skip
def test_image_url_templates(url: str, name: str, arch: str, os_: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """locator.go imageTemplate (line 180) and InstNameFromImageURL (line 240), on an aarch64 host."""
    from limapy.config import locate

    monkeypatch.setattr(locate, "_host_arch", lambda: "aarch64")
    located = locate.image_template(url)
    assert located.name_hint == name
    text = located.raw.decode()
    assert f'os: "{os_}"' in text and f'arch: "{arch}"' in text and f"location: \"{url}\"" in text


@pytest.mark.parametrize("bad", ["bad name.yaml", "two__underscores.yaml", "-lead.yaml"])
def test_a_template_file_name_must_be_an_instance_name(tmp_path: Path, bad: str) -> None:
    """locator.go InstNameFromYAMLPath (line 326): the name a file gives the instance is checked, for the
    template and for every base; not when --name names the instance."""
    (tmp_path / bad).write_text("images: [{location: /x.img}]\n")
    with pytest.raises(ConfigError, match=r"filename `.*` is invalid: identifier"):
        load(str(tmp_path / bad), check_name=True)
    load(str(tmp_path / bad))  # create --name NAME: the file's name names nothing
    (tmp_path / "top.yaml").write_text(f"base: '{bad}'\n")
    with pytest.raises(ConfigError, match="is invalid"):
        load(str(tmp_path / "top.yaml"))
