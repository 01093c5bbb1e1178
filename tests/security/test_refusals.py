"""Hardening, second round (issue 24): values the first boot would choke on are refused by `validate` with
their position (item 19), and the inputs that ended in `internal error: <PythonException>` are one clear
line each (item 20)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.security.conftest import instances, limapy, one_error, qcow2, template

# --- 19. refused by validate, with the position -----------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "line", "needle"),
    [
        ('env:\n  FOO: "a\\nb"\n', 6, "field `env.FOO` holds a newline"),
        ('env:\n  "BAD KEY": x\n', 6, "is not an environment variable name"),
        ("hostResolver:\n  enabled: false\ndns: [8.8.8.8, not-an-ip]\n", 7, "field `dns[1]` must be an IP address"),
        ("hostResolver:\n  hosts:\n    myhost: not-an-ip\n", 7, "field `hostResolver.hosts.myhost` must be an IP"),
        ('provision:\n- mode: data\n  path: /etc/x\n  owner: "root\\nx"\n  content: hi\n', 8,
         "field `provision[0].owner` holds a newline"),
    ],
    ids=["env-value", "env-key", "dns", "hosts", "owner"],
)
def test_values_the_seed_cannot_carry_are_refused_with_position(
    home: Path, tmp_path: Path, extra: str, line: int, needle: str
) -> None:
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")), extra)
    for args in (("validate", str(t)), ("create", "--name", "a", str(t))):
        cp = limapy(*args)
        assert cp.returncode == 1, cp.stderr
        err = one_error(cp)
        assert err.startswith(f"limapy: {t}:{line}:") and needle in err, err
    assert instances(home) == []


def test_valid_values_still_pass(home: Path, tmp_path: Path) -> None:
    """Lima's `docker` template maps host.docker.internal to host.lima.internal (a CNAME for Lima's DNS):
    limapy writes the host's address on the user-mode network into /etc/hosts instead."""
    from limapy.config import load_config
    from limapy.guest.linux.seed import host_entries

    extra = ('env:\n  FOO: "a\\tb"\nhostResolver:\n  enabled: false\n  hosts:\n    h.example: 10.0.0.1\n'
             "    host.docker.internal: host.lima.internal\n    alias.example: h.example\n"
             "dns: ['1.1.1.1', '::1']\n")  # fmt: skip
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")), extra)
    cp = limapy("validate", str(t))
    assert cp.returncode == 0, cp.stderr
    assert host_entries(load_config(str(t)).spec).decode().splitlines() == [
        "10.0.0.1 alias.example", "10.0.0.1 h.example", "192.168.5.2 host.docker.internal"]


# --- 20. nine inputs, nine clear lines ----------------------------------------------------------------------


@pytest.fixture
def inst(home: Path, tmp_path: Path) -> Path:
    cp = limapy("create", "--name", "a", str(template(tmp_path, str(qcow2(tmp_path / "img.qcow2")))))
    assert cp.returncode == 0, cp.stderr
    return home / "a"


def _clear(cp: object, *needles: str) -> str:
    err = one_error(cp)  # type: ignore[arg-type]
    assert "internal error" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_deeply_nested_filter(inst: Path) -> None:
    _clear(limapy("list", "-l", "(" * 3000 + ".name" + ")" * 3000), "nests deeper than 64 levels")
    cp = limapy("list", "-l", " or ".join([".name == \"x\""] * 3000) + " or .name == \"a\"", "--format", "{{.Name}}")
    assert cp.returncode == 0 and cp.stdout == "a\n", cp.stderr  # long but flat: fine


def test_go_string_escapes_in_format(inst: Path) -> None:
    cp = limapy("list", "--format", '{{"\\x00"}}|{{"\\u00e9\\t\\101"}}', "a")
    assert cp.returncode == 0 and cp.stdout == "\x00|\u00e9\tA\n", cp.stderr
    _clear(limapy("list", "--format", '{{"\\q"}}', "a"), "invalid syntax in the string")


def test_format_precheck_does_not_reject_what_rows_render(inst: Path) -> None:
    cp = limapy("list", "--format", "{{.Config.cpus}}", "a")
    assert cp.returncode == 0 and cp.stdout.strip().isdigit(), cp.stderr
    cp = limapy("list", "--format", "{{indent 2 .Name}}", "a")
    assert cp.returncode == 0 and cp.stdout == "  a\n", cp.stderr
    _clear(limapy("list", "--format", "{{.Name.x}}", "a"), "instance `a`", "can't evaluate field x")
    _clear(limapy("list", "--format", "{{indent 1 2 3}}", "a"), "indent takes [N] STRING")


def test_edit_of_the_whole_document(inst: Path) -> None:
    _clear(limapy("edit", "--set", ". = 1", "a"), "is the whole document")
    _clear(limapy("edit", "--set", "del(.)", "a"), "is the whole document")


def test_huge_number_in_set(inst: Path) -> None:
    err = _clear(limapy("edit", "--set", ".cpus = 1" + "0" * 5000, "a"), "a number of 5001 digits")
    assert "int_max_str_digits" not in err and "4300" not in err and len(err) < 400


def test_malformed_url(home: Path) -> None:
    _clear(limapy("create", "https://[::1"), "not a valid URL")
    assert instances(home) == []


def test_template_copy_into_a_missing_dir(home: Path, tmp_path: Path) -> None:
    _clear(limapy("template", "copy", "template:default", str(tmp_path / "missing" / "x.yaml")), "does not exist")


def test_prune_over_a_symlinked_cache_entry(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "data").write_text("not the cache's\n")
    entries = Path(os.environ["LIMAPY_CACHE_DIR"]) / "download" / "by-url-sha256"
    entries.mkdir(parents=True)
    (entries / ("0" * 64)).symlink_to(target)
    cp = limapy("prune")
    assert cp.returncode == 0, cp.stderr
    assert not (entries / ("0" * 64)).is_symlink()  # the link went
    assert sorted(p.name for p in target.iterdir()) == ["data"]  # its target was neither removed nor locked


def test_stop_force_with_a_tmp_directory(inst: Path) -> None:
    (inst / "notes.tmp").mkdir()
    cp = limapy("stop", "-f", "a")
    assert cp.returncode == 0, cp.stderr
    assert (inst / "notes.tmp").is_dir()


def test_warning_from_set_is_blamed_on_the_flag(home: Path, tmp_path: Path) -> None:
    t = template(tmp_path, str(qcow2(tmp_path / "img.qcow2")))
    cp = limapy("create", "--name", "a", "--set", ".foo.bar = 1", str(t))
    assert cp.returncode == 0, cp.stderr
    assert "--set '.foo.bar = 1': warning: field `foo` is unknown" in cp.stderr, cp.stderr
    assert ":1:1:" not in cp.stderr
