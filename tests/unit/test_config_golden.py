"""Lima's golden validation and default cases (lima-reference.md §7, items 1-14), with Lima's messages.

Our problem lines are `FILE:LINE:COL: <Lima message>`; these tests compare the message part exactly.
Item 12 (disk shrink) is an `edit` rule (ValidateAgainstLatestConfig): limapy has no `edit` yet, so it is
not tested here. Item 15 belongs to cidata (tests/unit/test_cidata_windows.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import ConfigError
from limapy.config import Loaded, check
from limapy.config.defaults import fill, layer
from limapy.config.hostinfo import HostInfo
from limapy.config.load import load_bytes
from limapy.config.validate import validate, validate_identifier

HOST = HostInfo(
    user="alice",
    uid=501,
    full_name="Alice Example",
    arch="x86_64",
    cpus=8,
    memory=16 << 30,
    timezone="Europe/Berlin",
    os="Linux",
    machine_id="0123456789abcdef0123456789abcdef",
)
IMAGES = "images: [{location: /}]\n"
LINE_RE = re.compile(r"^test\.yaml(?::(\d+):(\d+))?: (.*)$")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


def run(yaml: str) -> Loaded:
    return check(load_bytes(yaml.encode(), "test.yaml"), host=HOST, bootable=False)  # Lima's rules alone


def messages(yaml: str) -> list[str]:
    """The Lima messages of every problem, in order (the FILE:LINE:COL: prefix checked and dropped)."""
    with pytest.raises(ConfigError) as info:
        run(yaml)
    out = []
    for line in info.value.problems:
        m = LINE_RE.match(line)
        assert m, f"not FILE:LINE:COL: message: {line!r}"
        out.append(m.group(3))
    return out


def ok(yaml: str) -> dict[str, Any]:
    return run(yaml).cfg


# 1
def test_empty_yaml_needs_images() -> None:
    assert messages("") == ["field `images` must be set"]


# 2
def test_probe_script_must_start_with_shebang() -> None:
    ok(IMAGES + "probes: [{script: '#!foo'}]")
    assert messages(IMAGES + "probes: [{script: foo}]") == ["field `probe[0].script` must start with a '#!' line"]


def test_probe_file_digest_and_script_both_reported() -> None:
    assert messages(IMAGES + "probes: [{file: {digest: decafbad}}]") == [
        "field `probe[0].file.digest` support is not yet implemented",
        "field `probe[0].script` must start with a '#!' line",
    ]


# 3
def test_provision_invalid_mode() -> None:
    assert messages(IMAGES + "provision: [{mode: invalid}]") == [
        "field `provision[0].mode` must one of `system`, `user`, `boot`, `data`, `dependency`, `ansible`, or `yq`",
        "field `provision[0].script` must not be empty",
    ]


@pytest.mark.parametrize("mode", ["boot", "user", "ansible"])
def test_provision_modes_from_lima_tests_are_valid(mode: str) -> None:
    ok(IMAGES + f'provision: [{{mode: {mode}, script: "touch /tmp/param"}}]')


# 4
def test_provision_data_needs_path() -> None:
    ok(IMAGES + "provision: [{mode: data, path: /tmp, content: hello}]")
    assert messages(IMAGES + "provision: [{mode: data, content: hello}]") == [
        "field `provision[0].path` must not be empty when mode is `data`"
    ]


def test_provision_data_permissions_must_be_octal() -> None:
    got = messages(IMAGES + "provision: [{mode: data, path: /tmp, content: hello, permissions: 9}]")
    assert len(got) == 1
    assert "provision[0].permissions` must be an octal number" in got[0]


def test_provision_yq_rules() -> None:
    param = "param: {cdi: 'true'}\n"
    ok(IMAGES + param + "provision: [{mode: yq, expression: '.features.cdi={{.Param.cdi}}', path: /tmp}]")
    got = messages(IMAGES + param + "provision: [{mode: yq, expression: '.features.cdi={{.Param.cdi}}'}]")
    assert got == ["field `provision[0].path` must not be empty when mode is `yq`"]
    got = messages(IMAGES + param + "provision: [{mode: yq, expression: '.f={{.Param.cdi}}', path: tmp}]")
    assert got == ["field `provision[0].path` must be an absolute path"]
    got = messages(IMAGES + param + "provision: [{mode: yq, path: '/{{.Param.cdi}}'}]")
    assert got == ["field `provision[0].expression` must not be empty when mode is `yq`"]


# 5
def test_additional_disk_name_must_not_be_empty() -> None:
    assert messages(IMAGES + "additionalDisks: [{name: ''}]") == [
        "field `additionalDisks[0].name is invalid`: identifier must not be empty"
    ]


def test_additional_disk_string_form_is_a_name() -> None:
    cfg = ok(IMAGES + "additionalDisks: [name, {name: disk2}]")
    assert [d["name"] for d in cfg["additionalDisks"]] == ["name", "disk2"]
    assert all("format" not in d for d in cfg["additionalDisks"])  # Lima's FillDefault leaves it unset (issue 13)


# 6
@pytest.mark.parametrize("name", ["_Name", "3Name", "Last.Name"])
def test_param_name_must_match_regex(name: str) -> None:
    script = "provision: [{script: echo $PARAM__Name $PARAM_3Name $PARAM_Last.Name}]"
    yaml = IMAGES + f'param: {{"{name}": value}}\n' + script
    got = messages(yaml)
    assert len(got) == 1 and "name does not match regex" in got[0]


@pytest.mark.parametrize("value", ["name", "NAME", "Name_123"])
def test_param_valid_names(value: str) -> None:
    ok(IMAGES + f"param: {{{value}: value}}\nprovision: [{{script: echo $PARAM_name $PARAM_NAME $PARAM_Name_123}}]")


@pytest.mark.parametrize("value", ['""', '"foo bar"', '"foo\\tbar"', '"Symbols ½ and emoji → 👀"'])
def test_param_printable_values(value: str) -> None:
    ok(IMAGES + f"param: {{name: {value}}}\nprovision: [{{script: echo $PARAM_name}}]")


@pytest.mark.parametrize("value", ['"The end.\\n"', '"\\r"'])
def test_param_unprintable_values(value: str) -> None:
    got = messages(IMAGES + f"param: {{name: {value}}}\nprovision: [{{script: echo $PARAM_name}}]")
    assert len(got) == 1 and "value contains unprintable character" in got[0]


# 7
def test_unused_param_is_a_load_error() -> None:
    assert messages("param:\n  name: value\n") == [
        "field `param` key `name` is not used in any provision, probe, copyToHost, or portForward"
    ]


USES_NAME = [
    'mounts: [{location: "/tmp/{{ .Param.name }}"}]',
    'mounts: [{location: "/tmp", mountPoint: "/tmp/{{ .Param.name }}"}]',
    'provision: [{script: "echo {{ .Param.name }}"}]',
    'provision: [{script: "echo $PARAM_name"}]',
    'probes: [{script: "echo {{ .Param.name }}"}]',
    'probes: [{script: "echo $PARAM_name"}]',
    'copyToHost: [{guest: "/tmp/{{ .Param.name }}", host: "/tmp"}]',
    'copyToHost: [{guest: "/tmp", host: "/tmp/{{ .Param.name }}"}]',
    'portForwards: [{guestSocket: "/tmp/{{ .Param.name }}", hostSocket: "/tmp"}]',
    'portForwards: [{guestSocket: "/tmp", hostSocket: "/tmp/{{ .Param.name }}"}]',
]


@pytest.mark.parametrize("use", USES_NAME)
def test_param_used_in_each_field(use: str) -> None:
    from limapy.config.validate import unused_params

    doc = load_bytes((use + "\nparam:\n  name: value\n").encode(), "test.yaml")
    assert unused_params(doc.data) == []


ROOTFUL_USES = [
    'provision: [{script: "echo {{if eq .Param.rootful \\"true\\"}}rootful{{else}}rootless{{end}}"}]',
    'portForwards: [{guestSocket: "{{if eq .Param.rootful \\"true\\"}}/var/run{{else}}/run/{{.UID}}{{end}}/d.sock",'
    ' hostSocket: "{{.Dir}}/sock/docker.sock"}]',
]


@pytest.mark.parametrize("use", ROOTFUL_USES)
def test_param_reference_is_case_sensitive(use: str) -> None:
    from limapy.config.validate import unused_params

    used = load_bytes((use + "\nparam:\n  rootful: true\n").encode(), "test.yaml")
    assert unused_params(used.data) == []
    wrong = load_bytes((use + "\nparam:\n  rootFul: true\n").encode(), "test.yaml")
    assert [p.message for p in unused_params(wrong.data)] == [
        "field `param` key `rootFul` is not used in any provision, probe, copyToHost, or portForward"
    ]


# 8
MULTIPLE_ERRORS = """
os: windows
arch: unsupported_arch
portForwards:
  - guestPort: 22
    hostPort: 2222
  - guestPort: 8080
    hostPort: 65536
provision:
  - mode: invalid_mode
    script: echo test
  - mode: data
    content: test
"""


def test_multiple_errors_with_lima_early_return() -> None:
    # The port-forward errors (guestPort 22, hostPort 65536) are not reported: Lima returns early at the
    # provision entry without a path, before it looks at portForwards.
    assert messages(MULTIPLE_ERRORS) == [
        "field `os` must be one of [`Linux` `Darwin` `FreeBSD` `Windows`]; got `windows`",
        "field `arch` must be one of [x86_64 aarch64 armv7l ppc64le riscv64 s390x]; got `unsupported_arch`",
        "field `images` must be set",
        "field `provision[0].mode` must one of `system`, `user`, `boot`, `data`, `dependency`, `ansible`, or `yq`",
        "field `provision[1].path` must not be empty when mode is `data`",
    ]


def test_multiple_errors_point_at_their_lines() -> None:
    with pytest.raises(ConfigError) as info:
        run(MULTIPLE_ERRORS)
    lines = [LINE_RE.match(p) for p in info.value.problems]
    assert [m.group(1) for m in lines if m] == ["2", "3", "1", "10", "12"]


def test_port_forward_errors_reported_without_the_early_return() -> None:
    # Lima's validatePort runs on the port and again on both ends of the filled range
    got = messages(IMAGES + "portForwards: [{guestPort: 22, hostPort: 2222}, {guestPort: 8080, hostPort: 65536}]")
    assert got == [
        "field `portForwards[0].guestPort` must not be 22",
        "field `portForwards[0].guestPortRange[0]` must not be 22",
        "field `portForwards[0].guestPortRange[1]` must not be 22",
        "field `portForwards[1].hostPort` must be < 65536",
        "field `portForwards[1].hostPortRange[0]` must be < 65536",
        "field `portForwards[1].hostPortRange[1]` must be < 65536",
    ]


# 9
WINDOWS = """
os: Windows
arch: {arch}
vmType: {vm}
images:
  - location: /
osOpts:
  Windows:
    virtioWin:
    - location: /
      arch: "x86_64"
"""


def test_windows_guest_ok() -> None:
    cfg = ok(WINDOWS.format(arch="x86_64", vm="qemu"))
    assert cfg["os"] == "Windows"
    assert cfg["user"]["shell"] == "cmd.exe"


def test_windows_guest_only_on_qemu() -> None:
    assert messages(WINDOWS.format(arch="x86_64", vm="vz")) == [
        "currently Windows guest is only supported on `qemu`; got `vz`"
    ]


def test_windows_guest_only_x86_64_and_aarch64() -> None:
    ok(WINDOWS.format(arch="aarch64", vm="qemu").replace('arch: "x86_64"', 'arch: "aarch64"'))
    assert messages(WINDOWS.format(arch="armv7l", vm="qemu")) == [
        "currently Windows guest is only supported on [`x86_64`, `aarch64`]; got `armv7l`"
    ]


def test_windows_aarch64_needs_virtio_win() -> None:
    # The template's only virtio-win entry is for x86_64: nothing for aarch64's network driver.
    (msg,) = messages(WINDOWS.format(arch="aarch64", vm="qemu"))
    assert "needs `osOpts.Windows.virtioWin` with an aarch64 entry" in msg and "NetKVM" in msg
    ok(WINDOWS.format(arch="x86_64", vm="qemu").replace('arch: "x86_64"', 'arch: "aarch64"'))  # x86_64 is inbox


def test_windows_product_key_and_msi_rules() -> None:
    base = WINDOWS.format(arch="x86_64", vm="qemu")
    ok(base + "    productKey: ABCDE-12345-FGHIJ-67890-KLMNO\n")
    (msg,) = messages(base + "    productKey: ABCDE-12345\n")
    assert "productKey` must be 25 letters or digits" in msg and "ABCDE-12345" not in msg  # never echoed
    (msg,) = messages(base + "    opensshMsi: [{location: /x.msi, arch: x86_64}]\n")
    assert "opensshMsi[0].digest` must be set" in msg
    ok(base + "    opensshMsi: {location: /x.msi, digest: 'sha256:" + "a" * 64 + "'}\n")  # one mapping: a list of one


@pytest.mark.parametrize(
    ("mode", "entry"),
    [("ansible", "{mode: ansible, playbook: ''}"), ("yq", "{mode: yq, path: /x, expression: .a}")],
)
def test_windows_refuses_provision_modes(mode: str, entry: str) -> None:
    yaml = WINDOWS.format(arch="x86_64", vm="qemu") + f"provision: [{entry}]\n"
    assert messages(yaml) == [f"provision mode `{mode}` is not supported on Windows VM"]


@pytest.mark.parametrize(
    # `boot`: Lima 2.3 refuses it on Windows (pkg/limayaml/validate.go:211, "no boot step where we can run
    # commands"); limapy runs it at every startup as SYSTEM, before the others (a limapy extension, docs/windows.md)
    "entry", ["{mode: system, script: x}", "{mode: user, script: x}", "{mode: dependency, script: x}",
              "{mode: data, path: /x, content: y}", "{mode: boot, script: x}"]
)
def test_windows_allows_provision_modes(entry: str) -> None:
    ok(WINDOWS.format(arch="x86_64", vm="qemu") + f"provision: [{entry}]\n")


def test_windows_user_shell() -> None:
    base = WINDOWS.format(arch="x86_64", vm="qemu")
    assert messages(base + "user: {shell: /bin/bash}\n") == [
        "field `user.shell` must be one of [cmd.exe powershell.exe pwsh.exe] for Windows guest, got `/bin/bash`"
    ]
    for shell in ("powershell.exe", "PWSH.EXE", "C:\\\\Windows\\\\System32\\\\cmd.exe", "/c/tools/pwsh.exe"):
        ok(base + f'user: {{shell: "{shell}"}}\n')


def test_posix_user_shell_must_be_absolute() -> None:
    assert messages(IMAGES + "user: {shell: bash}") == ["field `user.shell` must be an absolute path, got `bash`"]
    ok(IMAGES + "user: {shell: /bin/zsh}")


# 10
def _filled(yaml: str) -> dict[str, Any]:
    doc = load_bytes(yaml.encode(), "test.yaml")
    return fill(layer(None, doc.data, None), host=HOST)


def test_minimum_lima_version_against_lima_versions() -> None:
    v = "1.1.1-114-g5bf5e513"
    assert validate(_filled("minimumLimaVersion: 1.1.0\n" + IMAGES), lima_version=v) == []
    got = validate(_filled("minimumLimaVersion: 1.1.2\n" + IMAGES), lima_version=v)
    assert [p.message for p in got] == ["template requires Lima version `1.1.2`; this is only `1.1.1-114-g5bf5e513`"]
    # an unparsable current version counts as the latest
    assert validate(_filled("minimumLimaVersion: 0.8.0\n" + IMAGES), lima_version="<unknown>") == []
    got = validate(_filled("minimumLimaVersion: invalid\n" + IMAGES), lima_version=v)
    assert [p.message for p in got] == [
        "field `minimumLimaVersion` must be a semvar value, got `invalid`: invalid is not in dotted-tri format"
    ]


def test_minimum_lima_version_against_our_compat_version() -> None:
    ok("minimumLimaVersion: 2.0.0\n" + IMAGES)
    assert messages("minimumLimaVersion: 99.0.0\n" + IMAGES) == [
        "template requires Lima version `99.0.0`; this is only `2.2.0`"
    ]


# 11
UBUNTU = "https://cloud-images.ubuntu.com/releases/oracular/release-20250701/ubuntu-24.10-server-cloudimg-amd64.img"
HEX = "69f31d3208895e5f646e345fbc95190e5e311ecd1359a4d6ee2c0b6483ceca03"


def test_digest_without_algorithm() -> None:
    yaml = f'probes: [{{script: "#!foo"}}]\nimages: [{{location: "{UBUNTU}", digest: "{HEX}"}}]'
    assert messages(yaml) == [f"field `images[0].digest` is invalid: {HEX}: invalid checksum digest format"]


def test_digest_unsupported_algorithm() -> None:
    yaml = f'probes: [{{script: "#!foo"}}]\nimages: [{{location: "{UBUNTU}", digest: "sha001:{HEX}"}}]'
    assert messages(yaml) == [f"field `images[0].digest` is invalid: sha001:{HEX}: unsupported digest algorithm"]


def test_digest_sha256_ok() -> None:
    ok(f'images: [{{location: "{UBUNTU}", digest: "sha256:{HEX}"}}]')


# 13
def test_fill_port_forward_defaults() -> None:
    cfg = ok(IMAGES + "portForwards: [{}, {guestPort: 8080, hostPort: 8888}, {guestIPMustBeZero: true}]")
    empty, ports, zero = cfg["portForwards"]
    assert empty["guestIP"] == "127.0.0.1" and empty["hostIP"] == "127.0.0.1"
    assert empty["guestPortRange"] == [1, 65535] and empty["hostPortRange"] == [1, 65535]
    assert empty["proto"] == "any" and empty["guestIPMustBeZero"] is False
    assert ports["guestPortRange"] == [8080, 8080] and ports["hostPortRange"] == [8888, 8888]
    assert zero["guestIP"] == "0.0.0.0"


def test_fill_network_defaults_and_mac() -> None:
    import hashlib

    doc = load_bytes(IMAGES.encode() + b"networks: [{lima: shared}]\n", "test.yaml")
    cfg = fill(layer(None, doc.data, None), host=HOST, file_path="/inst/lima.yaml")
    net = cfg["networks"][0]
    assert net["interface"] == "lima0" and net["metric"] == 100
    digest = hashlib.sha256((HOST.machine_id + "/inst/lima.yaml#0").encode()).digest()
    assert net["macAddress"] == "52:55:55:" + ":".join(f"{b:02x}" for b in digest[:3])
    again = fill(layer(None, doc.data, None), host=HOST, instance_dir="/inst")
    assert again["networks"][0]["macAddress"] == net["macAddress"]


def test_fill_probe_description() -> None:
    cfg = ok(IMAGES + "probes: [{script: '#!/bin/sh'}]")
    assert cfg["probes"][0]["description"] == "user probe 1/1"
    assert cfg["probes"][0]["mode"] == "readiness"


@pytest.mark.parametrize(
    ("os_", "arch", "user"),
    [("Linux", "x86_64", True), ("Linux", "aarch64", True), ("Linux", "riscv64", False),
     ("FreeBSD", "x86_64", False), ("Windows", "x86_64", False)],
)
def test_fill_containerd_user(os_: str, arch: str, user: bool) -> None:
    cfg = _filled(f"os: {os_}\narch: {arch}\n" + IMAGES)
    assert cfg["containerd"]["user"] is user
    assert cfg["containerd"]["system"] is False


def test_mount_tags() -> None:
    from limapy.base.names import mount_tag

    a = mount_tag("/Users/alice", "/Users/alice")
    b = mount_tag("/Users/alice", "/mnt/alice")
    assert a.startswith("lima-") and b.startswith("lima-")
    assert len(a) <= 36 and len(b) <= 36
    assert a != b


def test_fill_builtin_defaults() -> None:
    cfg = ok(IMAGES)
    assert cfg["os"] == "Linux" and cfg["arch"] == "x86_64" and cfg["vmType"] == "qemu"
    assert cfg["cpus"] == 4 and cfg["memory"] == "4GiB" and cfg["disk"] == "100GiB"
    assert cfg["images"][0]["arch"] == "x86_64"
    assert cfg["user"] == {
        "name": "alice", "comment": "Alice Example", "uid": 501, "home": "/home/alice.guest",
        "shell": "/bin/bash", "passwordlessSudo": True,
    }
    assert cfg["mountType"] == "9p" and cfg["timezone"] == "Europe/Berlin"
    assert cfg["video"]["display"] == "none" and cfg["firmware"]["legacyBIOS"] is False
    assert cfg["hostResolver"]["enabled"] is True and cfg["propagateProxyEnv"] is True


def test_fill_mount_defaults() -> None:
    cfg = ok(IMAGES + "mounts: [{location: /srv/data}, {location: /srv/rw, writable: true}]")
    ro, rw = cfg["mounts"]
    assert ro["mountPoint"] == "/srv/data" and ro["writable"] is False
    assert ro["9p"] == {"securityModel": "none", "protocolVersion": "9p2000.L", "msize": "128KiB", "cache": "fscache"}
    assert rw["9p"]["cache"] == "mmap"
    assert ro["sshfs"] == {"cache": True, "followSymlinks": False, "sftpDriver": ""}


# 14
@pytest.mark.parametrize(
    "name", ["default", "containerd.io", "0912341234", "underscores_are_allowed", "a" * 76]
)
def test_valid_identifiers(name: str) -> None:
    assert validate_identifier(name) is None


@pytest.mark.parametrize(
    "name",
    ["", "foo..foo", "foo.-boo", "-foo.boo", "foo.boo-", "but__only_tasteful_underscores", "default--default",
     "a" * 77, "foo/foo"],
)
def test_invalid_identifiers(name: str) -> None:
    assert validate_identifier(name) is not None


def test_virtiofs_queue_size_is_left_to_the_driver() -> None:
    from limapy.config.model import Spec

    cfg = ok(IMAGES + "mounts: [{location: /tmp/x}]")
    assert cfg["mounts"][0]["virtiofs"] == {}  # Lima's QEMU driver fills it, not FillDefault
    assert Spec.from_cfg(cfg).mounts[0].virtiofs_queue_size == 1024


def test_template_variables_are_expanded_in_filled_scripts_sockets_and_copies() -> None:
    cfg = ok(IMAGES + 'param: {G: hi, S: app}\n'
             'provision:\n- {mode: system, script: "#!/bin/sh\\necho {{.Param.G}} {{.Name}}"}\n'
             '- {mode: data, path: "/etc/{{.Param.G}}", content: "{{ .Param.G }}"}\n'
             '- {mode: yq, path: /etc/x.yaml, expression: ".a = \\"{{.Param.G}}\\""}\n'
             'probes:\n- {script: "#!/bin/sh\\ntest -e /tmp/{{.Param.G}}"}\n'
             'portForwards:\n- {guestSocket: "/run/{{.Param.S}}.sock", hostSocket: "/tmp/{{.Param.S}}.sock"}\n'
             'copyToHost:\n- {guest: "/etc/{{.Param.G}}", host: "/tmp/{{.Param.G}}"}\n')  # fmt: skip
    prov = cfg["provision"]
    assert prov[0]["script"].endswith("echo hi default") and prov[1]["content"] == "hi"
    assert prov[1]["path"] == "/etc/hi" and prov[2]["expression"] == '.a = "hi"'
    assert cfg["probes"][0]["script"].endswith("/tmp/hi")
    assert (cfg["portForwards"][0]["guestSocket"], cfg["portForwards"][0]["hostSocket"]) == ("/run/app.sock",
                                                                                             "/tmp/app.sock")
    assert (cfg["copyToHost"][0]["guest"], cfg["copyToHost"][0]["host"]) == ("/etc/hi", "/tmp/hi")
