"""Lima's tests of validation, defaults and loading (pkg/limayaml/{validate,validate_unix,defaults,load}_test.go,
lima-vm/lima 183a60d), translated where tests/unit/test_config_golden.py does not already hold them, and the
differences issue 27 found in users' lima.yaml files. Each case names the Lima line it mirrors.

Lima's Validate runs on a filled config; here `check(..., bootable=False)` does the same (Lima's rules alone).
"""

# ruff: noqa: E501  (Lima's test strings, verbatim)
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import ConfigError
from limapy.config import check
from limapy.config.defaults import fill, layer
from limapy.config.hostinfo import HostInfo
from limapy.config.load import load_bytes

HOST = HostInfo(user="alice", uid=501, full_name="Alice Example", arch="x86_64", cpus=8, memory=16 << 30,
                timezone="Europe/Berlin", os="Linux", machine_id="0123456789abcdef0123456789abcdef")  # fmt: skip
IMAGES = 'images: [{"location": "/"}]\n'


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)


def ok(yaml: str, **kw: Any) -> dict[str, Any]:
    return check(load_bytes(yaml.encode(), "lima.yaml"), host=HOST, bootable=False, **kw).cfg


def problems(yaml: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        ok(yaml)
    return [p.split(": ", 1)[1] for p in info.value.problems]


def filled(y: str, d: str | None = None, o: str | None = None) -> dict[str, Any]:
    data = [load_bytes(t.encode(), "x.yaml").data if t is not None else None for t in (d, y, o)]
    return fill(layer(data[0], data[1] or {}, data[2]), host=HOST, name="instance", instance_dir="/lima/instance")


# -- validate_test.go -------------------------------------------------------------------------------------------


def test_ansible_without_script_is_refused_on_windows_only_for_windows() -> None:
    """validate_test.go line 162: `{mode: ansible}` on Windows says only that Windows lacks it."""
    windows = ("os: Windows\narch: x86_64\nvmType: qemu\nimages:\n  - location: /\nosOpts:\n  Windows:\n"
               "    virtioWin:\n    - location: /\n      arch: x86_64\n")  # fmt: skip
    assert problems(windows + "provision: [{mode: ansible}]") == ["provision mode `ansible` is not supported on Windows VM"]
    ok(IMAGES + "provision: [{mode: ansible, script: touch /tmp/param-$PARAM_DEPENDENCY}]")  # line 133


def test_yq_permissions_must_be_octal() -> None:
    """validate_test.go line 273."""
    yaml = IMAGES + 'param: {"cdi": "true"}\nprovision: [{mode: yq, expression: ".features.cdi={{.Param.cdi}}", ' \
                    "path: /tmp, permissions: 9}]"  # fmt: skip
    (msg,) = problems(yaml)
    assert "provision[0].permissions` must be an octal number" in msg


ROOTFUL = [
    'mounts: [{"location": "/tmp/{{if eq .Param.rootful \\"true\\"}}rootful{{else}}rootless{{end}}", "mountPoint": "/tmp"}]',
    'mounts: [{"location": "/tmp", "mountPoint": "/tmp/{{if eq .Param.rootful \\"true\\"}}rootful{{else}}rootless{{end}}"}]',
    'copyToHost: [{"guest": "/tmp/{{if eq .Param.rootful \\"true\\"}}rootful{{else}}rootless{{end}}", "host": "/tmp"}]',
    'portForwards: [{"guestSocket": "/var/run/docker.sock", "hostSocket": "{{.Dir}}/sock/docker-{{if eq .Param.rootful '
    '\\"true\\"}}rootful{{else}}rootless{{end}}.sock"}]',
]  # fmt: skip


@pytest.mark.parametrize("use", ROOTFUL)
def test_go_template_conditions_render_as_lima_renders_them(use: str) -> None:
    """validate_test.go line 388: the `{{if eq .Param.rootful "true"}}` forms load (and, here, render: YAML's
    `true` is the Go string "true")."""
    cfg = filled(IMAGES + use + "\nparam:\n  rootful: true\n")  # Lima's test loads (fills) only
    assert "rootful" in str(cfg) and "{{" not in str(cfg.get("mounts")) + str(cfg.get("copyToHost"))


def test_mounts() -> None:
    """validate_unix_test.go line 14: `~/foo` is valid, `.` is not absolute."""
    ok('images: [{"location": "/dummy"}]\nmounts: [{location: "/foo", writable: false}, {location: "~/foo", writable: true}]')
    (msg,) = problems('images: [{"location": "/dummy"}]\nmounts: [{location: ".", writable: false}]')
    assert "must be an absolute path" in msg


# -- defaults_test.go -----------------------------------------------------------------------------------------------


def test_fill_default_builtin() -> None:
    """defaults_test.go lines 180-300 (TestFillDefault, the builtin part)."""
    y = ("hostResolver: {hosts: {MY.Host: host.lima.internal}}\n"
         "mounts: [{location: /tmp}, {location: '{{.Dir}}/{{.Param.ONE}}', mountPoint: '/mnt/{{.Param.ONE}}'}]\n"
         "mountType: 9p\nprovision: [{script: '#!/bin/true # {{.Param.ONE}}'}]\n"
         "probes: [{script: '#!/bin/false # {{.Param.ONE}}'}]\nnetworks: [{lima: shared}]\ndns: [1.0.1.0]\n"
         "portForwards: [{}, {guestPort: 80}, {guestPort: 8080, hostPort: 8888},\n"
         "  {guestSocket: '{{.Home}} | {{.UID}} | {{.User}} | {{.Param.ONE}}',\n"
         "   hostSocket: '{{.Home}} | {{.Dir}} | {{.Name}} | {{.UID}} | {{.User}} | {{.Param.ONE}}'}]\n"
         "copyToHost: [{guest: '{{.Home}} | {{.UID}} | {{.User}} | {{.Param.ONE}}',\n"
         "              host: '{{.Home}} | {{.Dir}} | {{.Name}} | {{.UID}} | {{.User}} | {{.Param.ONE}}'}]\n"
         "env: {ONE: Eins}\nparam: {ONE: Eins}\ntimezone: Antarctica/Troll\n")  # fmt: skip
    c = filled(y)
    home = "/home/alice.guest"
    assert c["user"] == {"name": "alice", "comment": "Alice Example", "home": home, "shell": "/bin/bash", "uid": 501,
                         "passwordlessSudo": True}  # fmt: skip
    assert c["mounts"][1]["location"] == "/lima/instance/Eins" and c["mounts"][1]["mountPoint"] == "/mnt/Eins"
    assert c["mounts"][0]["mountPoint"] == "/tmp" and c["mounts"][0]["9p"]["cache"] == "fscache"
    assert c["provision"][0] == {"script": "#!/bin/true # Eins", "mode": "system"}
    assert c["probes"][0]["script"] == "#!/bin/false # Eins" and c["probes"][0]["description"] == "user probe 1/1"
    default = {"guestIP": "127.0.0.1", "guestIPMustBeZero": False, "guestPortRange": [1, 65535], "hostIP": "127.0.0.1",
               "hostPortRange": [1, 65535], "proto": "any"}  # fmt: skip
    assert c["portForwards"][0] == default  # no reverse/ignore/static: Lima leaves them false (omitted)
    assert c["portForwards"][1] == {**default, "guestPort": 80, "guestPortRange": [80, 80], "hostPortRange": [80, 80]}
    assert c["portForwards"][2]["hostPortRange"] == [8888, 8888]
    assert c["portForwards"][3]["guestSocket"] == f"{home} | 501 | alice | Eins"
    assert c["portForwards"][3]["hostSocket"] == f"{Path.home()} | /lima/instance | instance | {HOST.uid} | " \
        f"{HOST.user} | Eins"  # fmt: skip
    assert "hostPortRange" not in c["portForwards"][3]  # a socket forward has none (Lima: [0, 0], omitted)
    assert c["copyToHost"][0]["guest"] == f"{home} | 501 | alice | Eins"
    assert c["networks"][0]["interface"] == "lima0" and c["networks"][0]["metric"] == 100
    assert c["audio"] == {"device": "", "interface": ""} and c["timezone"] == "Antarctica/Troll"
    assert c["hostResolver"]["hosts"] == {"MY.Host": "host.lima.internal"} and c["param"] == {"ONE": "Eins"}


@pytest.mark.parametrize(
    ("d", "y", "o", "want"),
    [(None, "", None, True), ("user: {passwordlessSudo: false}", "", None, False),
     ("user: {passwordlessSudo: true}", "user: {passwordlessSudo: false}", None, False),
     (None, "user: {passwordlessSudo: true}", "user: {passwordlessSudo: false}", False)],
)  # fmt: skip
def test_fill_default_passwordless_sudo(d: str | None, y: str, o: str | None, want: bool) -> None:
    """defaults_test.go line 1045: fallback, default.yaml, lima.yaml over it, override.yaml over both."""
    assert filled("os: Linux\narch: x86_64\n" + y, d, o)["user"]["passwordlessSudo"] is want


def test_passwordless_sudo_false_requires_plain() -> None:
    """defaults_test.go line 1077 (validate.go line 442, GHSA-2j9v-p4xj-cjw2); macOS exempt (line 1097)."""
    yaml = "images: [{location: https://example.com/dummy.img, arch: x86_64}]\nuser: {passwordlessSudo: false}\n"
    assert problems(yaml) == ["`user.passwordlessSudo: false` requires `plain: true`"]
    ok(yaml + "plain: true\n")
    assert problems("os: Darwin\narch: aarch64\nimages: [{location: https://e.x/d.img, arch: aarch64}]\n"
                    "user: {passwordlessSudo: true}\n") == ["`user.passwordlessSudo: true` is not supported on macOS guests"]
    ok("os: Darwin\narch: aarch64\nimages: [{location: https://e.x/d.img, arch: aarch64}]\n")


def test_static_port_forwards_in_plain_mode() -> None:
    """defaults_test.go line 775: plain mode keeps only the static forwards."""
    c = filled("plain: true\nportForwards: [{guestPort: 8080, hostPort: 8080, static: true}, "
               "{guestPort: 9000, hostPort: 9000, static: false}, {guestPort: 8081, hostPort: 8081}]\n")  # fmt: skip
    assert [p["guestPort"] for p in c["portForwards"]] == [8080]


def test_containerd_user_explicitly_true_on_darwin() -> None:
    """defaults_test.go line 973."""
    assert filled("os: Darwin\narch: aarch64\ncontainerd: {user: true}\n")["containerd"]["user"] is True


# -- load_test.go ---------------------------------------------------------------------------------------------------


def test_load_error_is_refused_with_its_position() -> None:
    """load_test.go line 17: a `script:` line missing. goccy says "map key-value is pre-defined"; limapy's
    reader (ruamel.yaml) says what it found, at the line and column: the rule is the same, the words the parser's."""
    bad = ("provision:\n- mode: system\n  script: |\n    #!/bin/sh\n    echo one\n- mode: system\n    #!/bin/sh\n"
           "    echo two\n- mode: system\n  script: |\n    #!/bin/sh\n    echo three\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_bytes(bad.encode(), "error.yaml")
    assert info.value.problems[0].startswith("error.yaml:8:")


def test_load_disk_string_and_struct() -> None:
    """load_test.go lines 37 and 51."""
    assert ok(IMAGES + "additionalDisks:\n- name\n")["additionalDisks"] == [{"name": "name"}]
    disk = ok(IMAGES + 'additionalDisks:\n- name: "name"\n  format: false\n  fsType: "xfs"\n  fsArgs: ["-i","size=512"]\n')
    assert disk["additionalDisks"] == [{"name": "name", "format": False, "fsType": "xfs", "fsArgs": ["-i", "size=512"]}]


# -- issue 27: what users' lima.yaml files showed --------------------------------------------------------------------


def test_an_unset_param_renders_no_value_and_the_location_is_then_refused() -> None:
    """defaults.go executeHostTemplate (line 958) renders a missing map key as `<no value>` (Go's text/template);
    validate.go line 125 then refuses the location, which is no longer absolute."""
    assert problems(IMAGES + 'mounts: [{location: "{{.Param.dir}}/data"}]') == [
        "field `mounts[0].location` must be an absolute path, got `<no value>/data`"]
    cfg = ok(IMAGES + "param: {n: null}\nprovision: [{script: 'echo [{{.Param.n}}] {{.Param.nope}}'}]")
    assert cfg["provision"][0]["script"] == "echo [] <no value>"  # null is the empty Go string
    assert cfg["param"] == {"n": ""}


def test_a_templated_mount_location_is_checked_after_rendering(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert problems(IMAGES + f'param: {{d: "{tmp_path}"}}\nmounts: [{{location: "{{{{.Param.d}}}}/file"}}]') == [
        f"field `mounts[0].location` refers to a non-directory path: `{tmp_path}/file`"]


def test_guest_ip_must_be_zero_follows_guest_ip() -> None:
    """defaults.go line 1003: filled from guestIP (true for 0.0.0.0), not always false."""
    cfg = ok(IMAGES + "portForwards: [{guestIP: 0.0.0.0, guestPort: 80, hostPort: 8080}, {guestPort: 81, hostPort: 8081}]")
    assert [p["guestIPMustBeZero"] for p in cfg["portForwards"]] == [True, False]


def test_tilde_in_mounts() -> None:
    """validate.go line 154: only a mount point *starting* with `~` is refused; localpathutil.Expand (used at line
    130) refuses `~user/...` locations instead of expanding them."""
    ok(IMAGES + "mounts: [{location: /tmp, mountPoint: /mnt/a~b}]")
    assert problems(IMAGES + "mounts: [{location: /tmp, mountPoint: '~/x'}]") == [
        "field `mounts[0].mountPoint` must not start with `~`"]
    assert "refers to an unexpandable path: `~root/x`" in problems(IMAGES + "mounts: [{location: '~root/x', "
                                                                            "mountPoint: /mnt/x}]")[0]  # fmt: skip
    assert ok(IMAGES + "mounts: [{location: '~/src'}]")["mounts"][0]["location"] == str(Path.home() / "src")


def test_lima_messages() -> None:
    """validate.go lines 148, 151, 173, 177, 399, 464."""
    assert problems(IMAGES + "mounts: [{location: /tmp, mountPoint: /etc}]") == [
        "field `mounts[0].mountPoint` must not be a system path such as /etc or /usr"]
    assert problems(IMAGES + "mounts: [{location: /tmp, mountPoint: /home/alice.guest}]") == [
        "field `mounts[0].mountPoint` is the reserved internal home directory `/home/alice.guest`"]
    assert problems(IMAGES + "mountType: 9p\nmountTypesUnsupported: [9p]") == [
        "field `mountType` must not be one of [9p] (`mountTypesUnsupported`), got `9p`"]
    assert problems(IMAGES + "copyToHost: [{guest: /etc/x, host: rel}]") == [
        "field `CopyToHost[0].host` must be an absolute path, but is `rel`"]
    assert problems("arch: s390x\ntpm: true\nimages: [{location: /, arch: s390x}]") == [
        "field `tpm` is not supported on architecture `s390x`"]
