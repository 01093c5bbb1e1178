"""Bad input never crashes: every failure is a ConfigError, one line per problem, FILE:LINE where known."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limapy.base.errors import ConfigError, LimapyError
from limapy.config import check, load_config
from limapy.config.hostinfo import HostInfo
from limapy.config.load import load_bytes

HOST = HostInfo(user="alice", uid=501, full_name="", arch="x86_64", cpus=4, memory=8 << 30, timezone="UTC", os="Linux")
POSITIONED = re.compile(r"^test\.yaml:(\d+):(\d+): \S")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


def problems(raw: bytes) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(load_bytes(raw, "test.yaml"), host=HOST)
    lines = info.value.problems
    assert lines, "a ConfigError names at least one problem"
    for line in lines:
        assert "\n" not in line, "one line per problem"
        assert line.startswith("test.yaml"), line
    return lines


def line_of(problem: str) -> int:
    m = POSITIONED.match(problem)
    assert m, f"expected FILE:LINE:COL: in {problem!r}"
    return int(m.group(1))


def test_syntax_error_has_a_line() -> None:
    (p,) = problems(b"cpus: 2\nimages: [\n")
    assert line_of(p) == 3


def test_tab_indentation() -> None:
    (p,) = problems(b"images:\n\t- location: /\n")
    assert line_of(p) == 2 and "\\t" in p


def test_wrong_types_are_all_reported() -> None:
    lines = problems(b"cpus: four\nmemory: [1]\nimages: [{location: /}]\nmounts: {a: 1}\n")
    assert [line_of(p) for p in lines] == [1, 2, 4]
    assert "field `cpus`" in lines[0] and "field `memory`" in lines[1] and "field `mounts`" in lines[2]


def test_duplicate_keys() -> None:
    (p,) = problems(b"images: [{location: /}]\ncpus: 1\ncpus: 2\n")
    assert line_of(p) == 3 and "duplicate key" in p and "cpus" in p


def test_empty_file_is_only_missing_images() -> None:
    assert [p.split(": ", 1)[1] for p in problems(b"")] == ["field `images` must be set"]
    assert [p.split(": ", 1)[1] for p in problems(b"# just a comment\n")] == ["field `images` must be set"]


def test_several_documents() -> None:
    (p,) = problems(b"images: [{location: /}]\n---\ncpus: 2\n")
    assert "several YAML documents" in p


@pytest.mark.parametrize(("raw", "kind"), [(b"42\n", "scalar"), (b"- a\n- b\n", "list"), (b"hello\n", "scalar")])
def test_document_must_be_a_mapping(raw: bytes, kind: str) -> None:
    (p,) = problems(raw)
    assert line_of(p) == 1 and f"is a {kind}" in p


def test_non_utf8() -> None:
    (p,) = problems(b"cpus: 2\nimages: [{location: \"\xff\xfe\"}]\n")
    assert line_of(p) == 2 and "UTF-8" in p


def test_nul_byte() -> None:
    (p,) = problems(b"cpus: 2\n\x00\n")
    assert line_of(p) == 2


@pytest.mark.parametrize("raw", [b'{base: "\\ud800\\udc00"}', b'images: [{location: /}]\nmessage: "\\udc00"\n'])
def test_surrogate_escapes(raw: bytes) -> None:
    (p,) = problems(raw)
    assert line_of(p) == 1 or line_of(p) == 2


def test_nul_in_a_base_locator() -> None:
    (p,) = problems(b'base: "a\\0b"\n')
    assert line_of(p) == 1 and "not a usable file name" in p


def test_utf8_bom_is_accepted() -> None:
    check(load_bytes(b"\xef\xbb\xbfimages: [{location: /}]\n", "test.yaml"), host=HOST)


def billion_laughs(levels: int = 10) -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\nimages: [{location: /}]\n").encode()


def test_alias_bomb_is_refused() -> None:
    (p,) = problems(billion_laughs())
    assert "alias" in p


def test_small_aliases_are_fine() -> None:
    raw = b"x-img: &img {location: /a.img, arch: x86_64}\nimages: [*img, {location: /b.img, arch: aarch64}]\n"
    loaded = check(load_bytes(raw, "test.yaml"), host=HOST)
    assert loaded.cfg["images"][0]["location"] == "/a.img"


def test_recursive_alias_does_not_hang() -> None:
    (p,) = problems(b"images: &a [*a]\n")
    assert "field `images[0]`" in p


@pytest.mark.parametrize(
    "raw",
    [
        b"x: " + b"[" * 20000 + b"]" * 20000 + b"\n",
        b"x: " + b"{a: " * 20000 + b"1" + b"}" * 20000 + b"\n",
        b"x:\n" + b"- " * 20000 + b"a\n",
        b"x:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 400)) + b"  " * 400 + b"a\n",
    ],
    ids=["flow-seq", "flow-map", "block-seq-inline", "block-seq-indented"],
)
def test_deep_nesting_is_refused(raw: bytes) -> None:
    (p,) = problems(raw)
    assert "nests deeper than" in p


def test_moderate_nesting_is_a_schema_error_not_a_crash() -> None:
    lines = problems(b"images: [{location: /}]\nenv: " + b"[" * 60 + b"]" * 60 + b"\n")
    assert all("field `env`" in p for p in lines)


def test_five_megabyte_value() -> None:
    (p,) = problems(b'message: "' + b"a" * (5 << 20) + b'"\n')
    assert "MiB" in p


def test_big_but_allowed_value_is_fine() -> None:
    raw = b"images: [{location: /}]\nmessage: " + b"b" * (1 << 20) + b"\n"
    assert len(check(load_bytes(raw, "test.yaml"), host=HOST).cfg["message"]) == 1 << 20


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert info.value.problems == [f"{tmp_path}: is a directory, not a lima.yaml file"]


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "nope.yaml"))
    assert info.value.problems == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_base_loop(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\nimages: [{location: /}]\n")
    (tmp_path / "b.yaml").write_text("cpus: 1\nbase: [a.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "a.yaml"))
    (p,) = info.value.problems
    assert p.startswith(f"{tmp_path / 'b.yaml'}:2:") and "base template loop" in p


def test_base_self_loop(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("images: [{location: /}]\nbase: a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "a.yaml"))
    (p,) = info.value.problems
    assert p.startswith(f"{tmp_path / 'a.yaml'}:2:") and "loop" in p


def test_missing_base(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("images: [{location: /}]\nbase:\n- template:default\n- nothere.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "a.yaml"))
    (p,) = info.value.problems
    assert p.startswith(f"{tmp_path / 'a.yaml'}:4:") and "nothere.yaml" in p and "no such file" in p


def test_bad_yaml_in_a_base_names_the_base(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("cpus: 1\nmemory: [\n")
    (tmp_path / "a.yaml").write_text("base: base.yaml\nimages: [{location: /}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "a.yaml"))
    (p,) = info.value.problems
    assert str(tmp_path / "base.yaml") in p


@pytest.mark.parametrize("base", ["base: 42", "base: [{}]", "base: {url: ''}", "base: [[a]]"])
def test_malformed_base(base: str) -> None:
    problems(f"{base}\nimages: [{{location: /}}]\n".encode())


@pytest.mark.parametrize(
    "raw",
    [
        b"images: {location: /}\n",
        b"images: [42]\n",
        b"images: [{location: /}]\nprovision: 5\n",
        b"images: [{location: /}]\nprovision: [5, null, {mode: 7}]\n",
        b"images: [{location: /}]\nportForwards: [{guestPortRange: [1]}, {guestPort: x}]\n",
        b"images: [{location: /}]\nnetworks: [7]\n",
        b"images: [{location: /}]\nmounts: [null, {location: 3}]\n",
        b"images: [{location: /}]\nuser: [a]\n",
        b"images: [{location: /}]\nparam: [a]\n",
        b"images: [{location: /}]\nadditionalDisks: [3, [x]]\n",
        b"images: [{location: /}]\nprobes: [{file: 3}]\n",
        b"images: [{location: /}]\ncpus: !custom 3\n",
        b"images: [{location: /}]\ncpus: 1e400\n",
        b"images: [{location: /}]\ntimezone: 2001-13-45\n",
    ],
)
def test_odd_shapes_are_config_errors(raw: bytes) -> None:
    problems(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"images: [{location: /}]\n? [a, b]\n: c\n",
        b"images: [{location: /}]\n2001-01-01: x\n",
        b"images: [{location: /}]\nmessage: !!binary aGVsbG8=\n",
        b"images: [{location: /}]\nx-anchors: &a [*a]\n",
    ],
)
def test_odd_but_readable_documents_load_with_warnings(raw: bytes) -> None:
    loaded = check(load_bytes(raw, "test.yaml"), host=HOST)
    assert any("unknown" in w for w in loaded.warnings) or "message" in loaded.doc.data


def _assert_only_our_errors(raw: bytes) -> None:
    try:
        check(load_bytes(raw, "fuzz.yaml"), host=HOST)
    except LimapyError as e:
        assert e.message
        for line in e.message.splitlines():
            assert line.startswith("fuzz.yaml"), line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_bytes(raw: bytes) -> None:
    _assert_only_our_errors(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("abc: -[]{},'\"&*!|>#?%@`\t\n0123.~\\=")), max_size=200))
def test_fuzz_yaml_punctuation(text: str) -> None:
    _assert_only_our_errors(text.encode())


KEYS = ["images", "cpus", "memory", "disk", "mounts", "provision", "probes", "portForwards", "networks", "os",
        "arch", "user", "param", "base", "additionalDisks", "minimumLimaVersion", "env", "dns", "vmOpts", "osOpts"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(["/", "~", "/tmp", "#!/bin/sh", "data", "yq", "Windows", "x86_64"]),
)


def _to_yaml(value: object) -> str:
    import json

    return json.dumps(value, default=str)  # JSON is YAML (flow style)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(KEYS),
        st.recursive(
            SCALARS,
            lambda inner: st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from([*KEYS, "location", "mode", "script", "path", "guestPort", "name"]),
                              inner, max_size=3),
            max_leaves=12,
        ),
        max_size=6,
    )
)
def test_fuzz_structured_documents(doc: dict[str, object]) -> None:
    try:
        text = _to_yaml(doc)
    except ValueError:
        return
    _assert_only_our_errors(text.encode())


def test_empty_windows_shell_is_refused_with_limas_message() -> None:
    raw = b"os: Windows\nimages: [{location: /w.iso, arch: x86_64}]\nuser: {shell: ''}\n"
    assert problems(raw) == [
        "test.yaml:3:8: field `user.shell` must be one of [cmd.exe powershell.exe pwsh.exe] for Windows guest, got ``"]


@pytest.mark.parametrize("name", ["Administrators", "users", "Remote Desktop Users", "SYSTEM", "Everyone"])
def test_windows_user_named_like_a_builtin_group_is_refused_at_validate(name: str) -> None:
    """Issue 23, item 10: an account cannot share a name with a built-in group (Setup fails to create it)."""
    raw = f"os: Windows\nimages: [{{location: /w.iso, arch: x86_64}}]\nuser: {{name: '{name}'}}\n".encode()
    (problem,) = problems(raw)
    assert problem.startswith("test.yaml:3:"), problem
    assert f"field `user.name` {name!r} cannot be a Windows account name" in problem
    assert "built-in group" in problem


def test_windows_locale_and_openssh_source_are_checked() -> None:
    base = "os: Windows\nimages: [{location: /w.iso, arch: x86_64}]\nosOpts:\n  Windows:\n"
    (problem,) = problems((base + "    locale: klingon\n").encode())
    assert problem.startswith("test.yaml:5:5: field `osOpts.Windows.locale` `klingon` is not a Windows"), problem
    (problem,) = problems((base + "    opensshSource: winget\n").encode())
    assert problem.startswith("test.yaml:5:") and "opensshSource" in problem, problem
    check(load_bytes((base + "    locale: de-CH\n    opensshSource: capability\n").encode(), "ok.yaml"), host=HOST)
