"""schemas/lima.schema.json: a valid 2020-12 schema that accepts every shipped and upstream template."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "schemas" / "lima.schema.json"
TEMPLATES = REPO / "templates"
# Lima's own templates, a read-only corpus beside the repository (../shared); absent in some checkouts.
LIMA_TEMPLATES = Path(__file__).resolve().parents[3] / "shared" / "lima-templates"
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/lima.schema.json"


@cache
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


@cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def errors(doc: Any) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator().iter_errors(doc)
    ]


def yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def is_link_stub(path: Path) -> bool:
    """Upstream symlinks (ubuntu.yaml -> ubuntu-26.04.yaml) may be copied as one-line files naming the target.

    The target is validated in its own right, so such a stub is left out of the corpus.
    """
    text = path.read_text(encoding="utf-8").strip()
    return "\n" not in text and text.endswith((".yaml", ".yml")) and (path.parent / text).is_file()


def test_schema_is_valid_draft_2020_12() -> None:
    s = schema()
    Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"] == "https://limapy.invalid/lima.schema.json"
    assert s["title"] and s["description"]


def test_schema_declares_the_fields_other_modules_rely_on() -> None:
    props = schema()["properties"]
    for key in (
        "os",
        "arch",
        "vmType",
        "images",
        "cpus",
        "memory",
        "disk",
        "mounts",
        "mountType",
        "portForwards",
        "provision",
        "probes",
        "user",
        "ssh",
        "firmware",
        "video",
        "tpm",
        "plain",
        "osOpts",
        "vmOpts",
        "base",
        "additionalDisks",
        "param",
        "env",
        "networks",
        "containerd",
    ):
        assert key in props, key
    windows = props["osOpts"]["properties"]["Windows"]["properties"]
    assert set(windows) >= {"virtioWin", "edition", "imageIndex", "opensshMsi"}
    for name in (
        "File",
        "Kernel",
        "Initrd",
        "Image",
        "Mount",
        "Provision",
        "Probe",
        "PortForward",
        "CopyToHost",
        "Network",
        "Disk",
    ):
        assert name in schema()["$defs"], name


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Yield (path, schema) for every named property anywhere in the schema."""
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{path}.{name}", sub
        for key, value in node.items():
            if key == "properties":
                for name, sub in value.items():
                    yield from _walk(sub, f"{path}.{name}")
            else:
                yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{path}[{i}]")


def test_every_property_has_a_description() -> None:
    props = list(_walk(schema(), "$"))
    assert len(props) > 150  # the walk really reaches nested objects and $defs
    missing = [p for p, sub in props if not (isinstance(sub, dict) and sub.get("description"))]
    assert missing == []
    undocumented_defs = [n for n, d in schema()["$defs"].items() if not d.get("description")]
    assert undocumented_defs == []


def test_every_top_level_field_accepts_null() -> None:
    doc = {name: None for name in schema()["properties"]}
    assert errors(doc) == []


def test_nested_fields_accept_null() -> None:
    doc = {
        "images": [{"location": "/x.qcow2", "arch": None, "digest": None, "kernel": None, "initrd": None}],
        "ssh": {"localPort": None, "loadDotSSHPubKeys": None},
        "user": {"name": None, "uid": None, "passwordlessSudo": None},
        "osOpts": {"Windows": {"virtioWin": None, "edition": None, "imageIndex": None, "opensshMsi": None}},
        "mounts": [{"location": "~", "mountPoint": None, "9p": {"msize": None}}],
        "portForwards": [{"guestPort": None, "guestIP": None, "static": None}],
    }
    assert errors(doc) == []


SHIPPED = yaml_files(TEMPLATES)


def test_templates_exist() -> None:
    names = {p.relative_to(TEMPLATES).as_posix() for p in SHIPPED}
    assert {"default.yaml", "debian.yaml", "ubuntu.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(TEMPLATES).as_posix())
def test_shipped_template_validates(path: Path) -> None:
    doc = load_yaml(path)
    assert isinstance(doc, dict)
    assert errors(doc) == []
    depth = len(path.relative_to(TEMPLATES).parts) - 1
    expected = SCHEMA_LINE.replace("../", "../" * (depth + 1))
    assert expected in path.read_text(encoding="utf-8").splitlines()[:5]


@pytest.mark.parametrize("name", ["default.yaml", "debian.yaml"])
def test_debian_templates_boot_bookworm_genericcloud(name: str) -> None:
    doc = load_yaml(TEMPLATES / name)
    by_arch = {img["arch"]: img["location"] for img in doc["images"]}
    base = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-"
    assert by_arch == {"x86_64": base + "amd64.qcow2", "aarch64": base + "arm64.qcow2"}
    assert doc["mounts"] == LIMA_DEFAULT_MOUNTS
    assert doc["mountTypesUnsupported"] == ["9p"]  # Debian's cloud kernel: reverse-sshfs by default


#: Lima's default mounts (templates/_default/mounts.yaml): home read-only, /tmp/lima writable.
LIMA_DEFAULT_MOUNTS = [{"location": "~"}, {"location": "{{.GlobalTempDir}}/lima", "writable": True}]


def test_ubuntu_template_boots_noble() -> None:
    doc = load_yaml(TEMPLATES / "ubuntu.yaml")
    by_arch = {img["arch"]: img["location"] for img in doc["images"]}
    base = "https://cloud-images.ubuntu.com/releases/noble/release/ubuntu-24.04-server-cloudimg-"
    assert by_arch == {"x86_64": base + "amd64.img", "aarch64": base + "arm64.img"}
    assert doc["mounts"] == LIMA_DEFAULT_MOUNTS


def test_default_template_mentions_every_top_level_field() -> None:
    text = (TEMPLATES / "default.yaml").read_text(encoding="utf-8")
    missing = [name for name in schema()["properties"] if f"{name}:" not in text and f"`{name}`" not in text]
    assert missing == []
    doc = load_yaml(TEMPLATES / "default.yaml")
    assert doc.get("plain") is None  # no guest agent: only static port forwards, but plain stays default


needs_corpus = pytest.mark.skipif(
    not LIMA_TEMPLATES.is_dir(), reason=f"Lima template corpus not present at {LIMA_TEMPLATES}"
)


def _upstream() -> list[Path]:
    if not LIMA_TEMPLATES.is_dir():
        return []
    return [p for p in yaml_files(LIMA_TEMPLATES) if not is_link_stub(p)]


@needs_corpus
def test_upstream_corpus_is_not_empty() -> None:
    assert len(_upstream()) > 50


@needs_corpus
@pytest.mark.parametrize("path", _upstream(), ids=lambda p: p.relative_to(LIMA_TEMPLATES).as_posix())
def test_upstream_template_validates_raw(path: Path) -> None:
    doc = load_yaml(path)
    assert isinstance(doc, dict)
    assert errors(doc) == []


def minimal() -> dict[str, Any]:
    return {"images": [{"location": "https://example.invalid/disk.qcow2", "arch": "x86_64"}]}


def with_(key: str, value: Any) -> dict[str, Any]:
    doc = minimal()
    doc[key] = value
    return doc


def test_minimal_document_validates() -> None:
    assert errors(minimal()) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("os", "windows"),
        ("os", "linux"),
        ("arch", "x86"),
        ("arch", "amd64"),
        ("vmType", "QEMU"),
        ("mountType", "sshfs"),
        ("cpus", "four"),
        ("cpus", "4"),
        ("cpus", 1.5),
        ("tpm", "yes"),
        ("plain", 1),
        ("images", {"location": "x"}),
        ("mounts", [{"writable": True}]),
        ("images", [{"arch": "x86_64"}]),
        ("ssh", "22"),
        ("ssh", {"localPort": "60022"}),
        ("user", {"uid": -1}),
        ("portForwards", [{"guestPort": "80"}]),
        ("portForwards", [{"guestPortRange": [1, 2, 3]}]),
        ("osOpts", {"Windows": {"imageIndex": 0}}),
        ("osOpts", {"Windows": {"imageIndex": "6"}}),
        ("osOpts", {"Windows": {"virtioWin": {"location": "x"}}}),
        ("osOpts", {"Windows": {"opensshMsi": "x.msi"}}),
        ("base", {"url": "x"}),
        ("base", [{"digest": "sha256:00"}]),
        ("provision", [{"mode": "system", "file": {"digest": "x"}}]),
        ("additionalDisks", [{"format": True}]),
        ("env", ["A=1"]),
        ("dns", "1.1.1.1"),
    ],
)
def test_wrong_values_fail(key: str, value: Any) -> None:
    assert errors(with_(key, value)) != []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("os", "Windows"),
        ("os", "FreeBSD"),
        ("arch", "aarch64"),
        ("arch", "default"),
        ("vmType", "krunkit"),
        ("mountType", "reverse-sshfs"),
        ("cpus", 4),
        ("memory", "4GiB"),
        ("disk", "100GiB"),
        ("base", "template:debian"),
        ("base", ["template:debian", {"url": "./base.yaml", "digest": "decafbad"}]),
        ("additionalDisks", ["data", {"name": "scratch", "format": False, "fsType": "xfs"}]),
        (
            "provision",
            [
                {"mode": "user", "file": "user.sh"},
                {"mode": "data", "path": "/x", "content": "y", "permissions": 644},
            ],
        ),
        ("probes", [{"file": {"url": "probe.sh", "digest": "x"}}]),
        ("param", {"containerdSnapshotter": True, "Port": 8080, "name": "x"}),
        ("portForwards", [{"guestPortRange": [4000, 4999], "hostIP": "0.0.0.0", "static": True}]),
        (
            "osOpts",
            {
                "Windows": {
                    "virtioWin": [{"location": "~/virtio-win.iso", "arch": "x86_64"}],
                    "edition": "Windows 11 Pro",
                    "imageIndex": 6,
                    "opensshMsi": {"location": "~/OpenSSH-Win64.msi", "arch": "x86_64"},
                }
            },
        ),
        ("vmOpts", {"qemu": {"cpuType": {"x86_64": "qemu64,+ssse3"}}, "krunkit": {"anything": 1}}),
        (
            "images",
            [
                {
                    "location": "/vmlinuz-image",
                    "kernel": {"location": "/vmlinuz", "cmdline": "quiet"},
                    "initrd": {"location": "/initrd"},
                }
            ],
        ),
    ],
)
def test_right_values_pass(key: str, value: Any) -> None:
    assert errors(with_(key, value)) == []


def test_unknown_keys_do_not_fail() -> None:
    doc = minimal()
    doc["noSuchField"] = {"anything": [1, 2]}
    doc["images"][0]["colour"] = "blue"
    doc["ssh"] = {"localPort": 60022, "address": "127.0.0.1"}
    doc["mounts"] = [{"location": "~", "sshfs": {"unknown": True}}]
    assert errors(doc) == []


def test_schema_is_not_mutated_by_validation() -> None:
    before = copy.deepcopy(schema())
    errors(with_("os", "windows"))
    assert schema() == before
