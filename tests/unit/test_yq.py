"""limapy's yq: the expression subset (limapy.expr.yqlite), the file formats, the command line (`limapy yq`), and the
copy of them the seed carries for `mode: yq` steps, run here with the system's Python and PyYAML as a guest runs
them (no ruamel.yaml there).

Lima's references: the yq provision loop of pkg/cidata/cidata.TEMPLATE.d/boot.sh (lines 108-176), the
lima.env entries (cidata.TEMPLATE.d/lima.env lines 29-33), yq's precedences (mikefarah/yq
pkg/yqlib/operation.go lines 39-70) and its INI codec (pkg/yqlib/encoder_ini.go, go-ini file.go line 336)."""

from __future__ import annotations

import ast
import copy
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from limapy.expr import yqcli, yqformats, yqlite

DOCKER = ".features.cdi = true |\n.features.containerd-snapshotter = true\n"  # Lima's templates/docker.yaml


@pytest.mark.parametrize(
    ("expr", "doc", "want"),
    [
        (DOCKER, None, {"features": {"cdi": True, "containerd-snapshotter": True}}),
        (DOCKER, {"features": {"x": 1}, "y": 2}, {"features": {"x": 1, "cdi": True, "containerd-snapshotter": True},
                                                  "y": 2}),
        ('.Socket.SocketUser="alice"', None, {"Socket": {"SocketUser": "alice"}}),  # docker-rootful.yaml
        # editflags.go: --image-variant, --dns, --network
        ('.images = [.images[] | select(.variant == "minimal")]',
         {"images": [{"l": 1, "variant": "minimal"}, {"l": 2}]},
         {"images": [{"l": 1, "variant": "minimal"}]}),
        ('.dns += ["1.1.1.1"] | .dns |= unique', {"dns": ["1.1.1.1"]}, {"dns": ["1.1.1.1"]}),
        ('.networks += [{"lima": "shared"}] | .networks |= unique_by(.lima)', {"networks": [{"lima": "shared"}]},
         {"networks": [{"lima": "shared"}]}),
        (".a += [3]", {"a": [1]}, {"a": [1, 3]}),
        (".n |= . + 1", {"n": 1}, {"n": 2}),
        (".x = .y", {"y": 5}, {"y": 5, "x": 5}),  # `=` evaluates its right side against the input
        ("del(.a, .b)", {"a": 1, "b": 2, "c": 3}, {"c": 3}),
        ("del(.l[] | select(. > 1))", {"l": [1, 2, 3]}, {"l": [1]}),
        (".a.b[1] = 7", None, {"a": {"b": [None, 7]}}),
        ('. * {"a": {"b": 2}}', {"a": {"c": 1}}, {"a": {"c": 1, "b": 2}}),
        ('.a // "d"', {}, "d"),
        ('{"k": .a, v: 2}', {"a": 1}, {"k": 1, "v": 2}),
        ("to_entries | map(.key) | join(\",\")", {"b": 1, "a": 2}, "b,a"),
        (".l | sort_by(.n) | .[0].n", {"l": [{"n": 2}, {"n": 1}]}, 1),
        ("# a comment\n.a # and another\n", {"a": 1}, 1),
    ],
)
def test_expressions(expr: str, doc: Any, want: Any) -> None:
    assert yqlite.run(expr, copy.deepcopy(doc))[0] == want


def test_yqs_precedence() -> None:
    # operation.go: union 10 < or/and 20 < pipe 30 < assignments and comparisons 40 < + - * / // 42; equal
    # precedences bind to the right (the postfix conversion pops only strictly higher ones)
    assert yqlite.run(".a = 1 | .b = 2", None) == [{"a": 1, "b": 2}]
    assert yqlite.run("true or false and false", None) == [True]  # true or (false and false)
    assert yqlite.run("1 - 2 + 3", None) == [-4]  # 1 - (2 + 3), as yq computes it
    assert yqlite.run(".a, .b | . + 1", {"a": 1, "b": 2}) == [1, 3]  # .a, (.b | . + 1)


@pytest.mark.parametrize("expr", ["env(HOME)", 'load("/etc/passwd")', 'system("id")', ".a =~ 1", "..", ".[0:2]",
                                  "", ".a |", "eval(.x)"])  # fmt: skip
def test_refusals(expr: str) -> None:
    with pytest.raises(yqlite.YqError):
        yqlite.parse(expr)


def test_ini_is_yqs_reading_and_go_inis_writing() -> None:
    text = "top = 1\n[Unit]\nDescription=x\n\n[Socket]\nListenStream=/run/docker.sock # comment\nSocketMode: 0660\n"
    doc = yqformats.ini_load(text)
    assert doc == {"top": "1", "Unit": {"Description": "x"},
                   "Socket": {"ListenStream": "/run/docker.sock", "SocketMode": "0660"}}  # fmt: skip
    yqlite.run('.Socket.SocketUser = "alice"', doc)
    assert yqformats.ini_dump(doc) == (
        "top = 1\n\n[Unit]\nDescription = x\n\n"
        "[Socket]\nListenStream = /run/docker.sock\nSocketMode   = 0660\nSocketUser   = alice\n"
    )
    assert yqformats.ini_dump({"S": {"k": "a # b", "e": " sp "}}) == '[S]\nk = `a # b`\ne = " sp "\n'


@pytest.mark.parametrize(("fmt", "path", "want"), [("auto", "/x/daemon.json", "json"), ("auto", "/x/o.conf", "yaml"),
                                                   ("ini", "/x/o.conf", "ini"), ("y", None, "yaml")])  # fmt: skip
def test_formats_resolve(fmt: str, path: str | None, want: str) -> None:
    assert yqformats.resolve(fmt, path) == want


@pytest.mark.parametrize(("fmt", "path"), [("toml", "/x"), ("auto", "/x/c.toml"), ("xml", "/x")])
def test_unsupported_formats_say_so(fmt: str, path: str) -> None:
    with pytest.raises(yqformats.FormatError, match="not supported by limapy's yq"):
        yqformats.resolve(fmt, path)


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = yqcli.main(list(args), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_as_boot_sh_runs_it(tmp_path: Path) -> None:
    expr = tmp_path / "00000002"
    expr.write_text(DOCKER)
    rc, out, _ = cli("--null-input", "--from-file", str(expr), "--output-format", "json")
    assert (rc, out) == (0, '{\n  "features": {\n    "cdi": true,\n    "containerd-snapshotter": true\n  }\n}\n')
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-level": "warn"}\n')
    daemon.chmod(0o640)
    rc, out, _ = cli("--inplace", "--from-file", str(expr), "--input-format", "auto", "--output-format", "auto",
                     str(daemon))  # fmt: skip
    assert (rc, out) == (0, "")
    assert daemon.read_text().startswith('{\n  "log-level": "warn",\n  "features"')
    assert daemon.stat().st_mode & 0o777 == 0o640  # yq's in-place write keeps the file's mode (and owner)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_yaml_keeps_comments_on_the_host(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("# top\na: 1 # one\n")
    assert cli("-i", ".b = 2", str(f))[0] == 0
    assert f.read_text() == "# top\na: 1 # one\nb: 2\n"
    assert cli(".a", str(f))[1] == "1\n"
    assert cli("-o", "json", "-I", "0", ".", str(f))[1] == '{"a":1,"b":2}\n'


def test_cli_errors_exit_1_with_one_line(tmp_path: Path) -> None:
    assert cli("-e", ".nope", "-n")[0] == 1  # --exit-status: null is a failure
    rc, _, err = cli("env(HOME)", "-n")
    assert rc == 1 and err.startswith("Error: env(...) is not supported") and err.count("\n") == 1
    rc, _, err = cli(".a", str(tmp_path / "missing.yaml"))
    assert rc == 1 and "No such file" in err
    assert cli("--bogus", ".a")[0] == 1 and cli("-h")[1].startswith("Usage: limapy yq")


# -- the guest's copy ---------------------------------------------------------------------------------------


def test_shipped_modules_run_on_python_3_7() -> None:
    from limapy.guest.linux.seed import yq_tool

    for name, data in yq_tool().items():
        if name.endswith(".py") or name.endswith("limapy-yq"):
            ast.parse(data.decode(), filename=name, feature_version=(3, 7))


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no system Python")
def test_seed_tool_with_the_guests_python(tmp_path: Path) -> None:
    """The seed's util/ as the guest mounts it, run by a Python without ruamel (PyYAML, as cloud-init has)."""
    from limapy.guest.linux.seed import yq_tool

    for name, data in yq_tool().items():
        dest = tmp_path / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    probe = subprocess.run(["/usr/bin/python3", "-c", "import ruamel.yaml"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system Python has ruamel.yaml: not a guest's Python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    conf = tmp_path / "override.conf"
    run = ["/usr/bin/python3", "-B", "-s", str(tmp_path / "util" / "limapy-yq")]
    cp = subprocess.run([*run, "-n", '.Socket.SocketUser="alice"', "-o", "ini"], capture_output=True, text=True,
                        env=env)  # fmt: skip
    assert (cp.returncode, cp.stdout) == (0, "[Socket]\nSocketUser = alice\n"), cp.stderr
    conf.write_text("a: 1\nl: [x]\n")
    cp = subprocess.run([*run, "-i", '.l += ["y"]', str(conf), "-p", "yaml", "-o", "yaml"], capture_output=True,
                        text=True, env=env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert conf.read_text() == "a: 1\nl:\n- x\n- y\n"  # PyYAML's style: the guest keeps no comments
