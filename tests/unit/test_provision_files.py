"""`file:` on provision entries as Lima embeds it: a `data` file into `content` (a binary one as `!!binary`
base64, reaching the guest byte for byte), a `yq` file into `expression`, anything else into `script`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pycdlib
import pytest

from limapy.base.errors import ConfigError
from limapy.config import check, load_config
from limapy.config.hostinfo import HostInfo
from limapy.config.load import load, load_bytes, stored_yaml
from limapy.guest.linux.seed import write_seed_iso
from limapy.guest.windows.answer import build_answer_files
from limapy.instance.summary import Summary, json_default

HOST = HostInfo(user="alice", uid=501, full_name="", arch="x86_64", cpus=4, memory=8 << 30, timezone="UTC", os="Linux")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden limapy-test"
#: every byte value, invalid UTF-8, a NUL, CR LF, and a `{{.Name}}` that must not be templated
BLOB = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"{{.Name}}\xff"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


def _template(tmp_path: Path, provision: str, **files: bytes) -> Path:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    t = tmp_path / "t.yaml"
    t.write_text(f"images: [{{location: /tmp/x.img}}]\nprovision:\n{provision}")
    return t


def _iso_file(iso_path: Path, path: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, rr_path=path)
        return buf.getvalue()
    finally:
        iso.close()


def test_binary_data_file_reaches_the_seed_byte_for_byte(tmp_path: Path) -> None:
    entry = "- mode: data\n  file: blob.bin\n  path: /etc/blob\n  permissions: '600'\n"
    t = _template(tmp_path, entry, **{"blob.bin": BLOB})
    doc = load(str(t))
    assert doc.data["provision"][0] == {"mode": "data", "content": BLOB, "path": "/etc/blob", "permissions": "600"}
    text, _ = stored_yaml(doc.data)  # what create writes as the instance's lima.yaml
    assert "  content: !!binary |\n" in text  # Lima's form: base64 in lines of at most 76 characters
    lines = text.split("content: !!binary |\n", 1)[1].split("  path:", 1)[0].splitlines()
    assert lines and all(line.startswith("    ") and len(line) <= 4 + 76 for line in lines)
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "lima.yaml").write_text(text)
    spec = load_config(str(inst / "lima.yaml"), name="b", instance_dir=inst).spec  # as start reads it
    assert spec.provision[0].content == BLOB
    iso = tmp_path / "cidata.iso"
    write_seed_iso(iso, spec, name="b", iid="iid-1", ssh_pubkeys=[KEY], mac="52:55:55:12:34:56")
    assert _iso_file(iso, "/provision.data/00000000") == BLOB
    env = _iso_file(iso, "/lima.env").decode()
    assert "LIMA_CIDATA_DATAFILE_00000000_PATH=/etc/blob\n" in env
    assert "LIMA_CIDATA_DATAFILE_00000000_PERMISSIONS=600\n" in env


def test_text_data_file_stays_text_and_keeps_the_key_position(tmp_path: Path) -> None:
    t = _template(tmp_path, "- mode: data\n  file: a.conf\n  path: /etc/a\n", **{"a.conf": "x=1\n\tü\n".encode()})
    entry = load(str(t)).data["provision"][0]
    assert entry == {"mode": "data", "content": "x=1\n\tü\n", "path": "/etc/a"}
    assert list(entry) == ["mode", "content", "path"]


def test_lima_binary_content_reads_back() -> None:
    # Lima's embed test: a file with a bell character becomes `content: !!binary |` in 76-column lines
    lima = ("images: [{location: /tmp/x.img}]\nprovision:\n- mode: data\n  content: !!binary |\n"
            "    IyEHMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0\n"
            "    NTY3ODkw\n  path: /tmp/data\n")  # fmt: skip
    cfg = check(load_bytes(lima.encode(), "t.yaml"), host=HOST).cfg
    assert cfg["provision"][0]["content"] == "#!\a" + "1234567890" * 6  # UTF-8: text, as Lima's string
    binary = lima.replace("IyEHMTIz", "/4EHMTIz")  # \xff\x81: not UTF-8, stays bytes
    cfg = check(load_bytes(binary.encode(), "t.yaml"), host=HOST).cfg
    assert cfg["provision"][0]["content"][:3] == b"\xff\x81\x07"


def test_binary_is_refused_outside_data_content(tmp_path: Path) -> None:
    t = _template(tmp_path, "- mode: system\n  file: s.sh\n", **{"s.sh": b"#!/bin/sh\necho \xff\n"})
    with pytest.raises(ConfigError) as info:
        load(str(t))
    assert info.value.problems == [f"{t}:4:3: `s.sh` is not UTF-8 text"]
    assert "only a `mode: data` file may be binary" in (info.value.hint or "")
    doc = load_bytes(b"images: [{location: /tmp/x.img}]\nuser:\n  name: !!binary /w==\n", "t.yaml")
    with pytest.raises(ConfigError) as info:
        check(doc, host=HOST)
    assert info.value.problems == ["t.yaml:3:3: field `user.name` holds binary data; it must be UTF-8 text "
                                   "(only a provision's `content` may be binary)"]  # fmt: skip
    doc = load_bytes(b"images: [{location: /tmp/x.img}]\nprovision:\n- mode: system\n  script: '#!/bin/sh'\n"
                     b"  content: !!binary /w==\n", "t.yaml")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        check(doc, host=HOST)
    assert info.value.problems == ["t.yaml:5:3: field `provision[0].content` can only be set when mode is `data`"]


def test_yq_file_goes_into_expression(tmp_path: Path) -> None:
    t = _template(tmp_path, "- mode: yq\n  file: e.yq\n  path: /etc/x.yaml\n", **{"e.yq": b".a.b = \"c\"\n"})
    loaded = check(load(str(t)), host=HOST, bootable=False)  # Lima reads it; limapy cannot boot it
    entry = loaded.doc.data["provision"][0]
    assert entry == {"mode": "yq", "expression": '.a.b = "c"\n', "path": "/etc/x.yaml"}
    assert "script" not in loaded.cfg["provision"][0] and loaded.cfg["provision"][0]["format"] == "auto"


def test_json_shows_binary_content_as_go_does() -> None:
    # Lima's list --json marshals the string holding the bytes: UTF-8, invalid bytes as U+FFFD
    assert json_default(b"a\xffb") == "a\ufffdb"
    s = Summary({"provision": [{"mode": "data", "content": b"\x00\xfe"}]})
    assert s.json_cfg == {"provision": [{"mode": "data", "content": "\x00\ufffd"}]}
    assert s.spec.provision[0].content == b"\x00\xfe"  # a full read's summary keeps the bytes for start
    assert json.loads(json.dumps(s.json_cfg)) == s.json_cfg


def test_windows_answer_media_carry_binary_data_as_is() -> None:
    from limapy.config.model import Spec

    cfg = {"os": "Windows", "arch": "x86_64", "firmware": {"legacyBIOS": False}, "param": {},
           "user": {"name": "alice", "comment": "", "uid": 1000, "home": "/home/alice.guest", "shell": "cmd.exe"},
           "provision": [{"mode": "data", "content": BLOB, "path": "C:\\blob.bin"}]}  # fmt: skip
    files = build_answer_files(Spec.from_cfg(cfg), name="w", arch="x86_64", password="Test-Passw0rd.Fixed",
                               ssh_pubkeys=[KEY], image_index=None, image_name=None, is_server=False)
    assert files["provision/data/00000000"] == BLOB


def test_lima_yaml_too_big_once_embedded_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import limapy.config.load as load_mod

    monkeypatch.setattr(load_mod, "MAX_BYTES", 1 << 10)
    with pytest.raises(ConfigError) as info:
        stored_yaml({"provision": [{"mode": "data", "content": bytes(900), "path": "/x"}]})
    assert info.value.problems == ["lima.yaml with its provision files embedded would be 1.306KiB; "
                                   "limapy reads at most 1KiB"]  # fmt: skip
