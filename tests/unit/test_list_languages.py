"""The small languages of `list` (Go templates, a yq subset) and `shell --preserve-env`'s patterns."""

from __future__ import annotations

import pytest

from limapy.expr import gotmpl, shellenv, yqlite

ROW = {"name": "web", "status": "Running", "cpus": 4, "memory": 4294967296, "sshLocalPort": 60022,
       "config": {"images": [{"location": "https://x/a.img"}], "cpus": 4}, "protected": False,
       "param": {"A": "1"}, "network": [{"lima": "shared"}]}  # fmt: skip
ALIASES = {"Networks": "network"}


@pytest.mark.parametrize(
    ("template", "out"),
    [("{{.Name}}", "web"), ("{{.Name}} {{.CPUs}} {{.SSHLocalPort}}", "web 4 60022"), ("{{.Memory}}", "4294967296"),
     ("{{.Config.Images}}", "[map[location:https://x/a.img]]"), ("{{.Nope}}", "<no value>"),
     ("{{json .Param}}", '{"A":"1"}'), ("{{.Param | json}}", '{"A":"1"}'), ("{{.Protected}}", "false"),
     ("{{missing .Nope}}", "<missing>"), ('{{missing "-" .Nope}}', "-"), ('{{missing "-" .Name}}', "web"),
     ("{{indent 4 .Name}}", "    web"), ("a  {{- .Name -}}  b", "awebb"), ("{{json .Networks}}", '[{"lima":"shared"}]'),
     ("{{`raw`}} {{\"q\"}} {{7}}", "raw q 7"), ("plain", "plain")],
)
def test_go_templates(template: str, out: str) -> None:
    assert gotmpl.render(template, ROW, ALIASES) == out


@pytest.mark.parametrize(
    ("template", "out"),
    [("{{if .Name}}x{{end}}", "x"), ("{{range $k, $v := .Param}}{{$k}}={{$v}}{{end}}", "A=1"),
     ("{{$x := 1}}{{$x}}", "1"), ('{{printf "%s:%d" .Name .CPUs}}', "web:4"),
     ('{{if eq .Status "Running"}}up{{else}}down{{end}}', "up"), ("{{len .Config.Images}}", "1"),
     ("{{yaml .Param}}", "---\nA: '1'"), ("{{with .Nope}}x{{else}}none{{end}}", "none")],
)
def test_go_template_control_structures(template: str, out: str) -> None:
    # Lima's list --format is Go's text/template (pkg/store/instance.go line 125; funcs in
    # pkg/textutil/textutil.go line 56, whose `yaml` starts the document with "---", line 72)
    assert gotmpl.render(template, ROW, ALIASES) == out


@pytest.mark.parametrize(
    "template", ["{{.Name", "{{.Name.Length}}", "{{}}", "{{.Name 1}}", "{{foo .Name}}", "{{end}}", "{{if .X}}",
                 "{{$y}}", '{{define "t"}}{{end}}'],
)
def test_go_templates_refuse_what_they_cannot_do(template: str) -> None:
    with pytest.raises(gotmpl.TemplateError):
        gotmpl.render(template, ROW, ALIASES)


@pytest.mark.parametrize(
    ("expr", "kept", "result"),
    [(".name", True, "web"), (".config.images[0].location", True, "https://x/a.img"), ('.param["A"]', True, "1"),
     (".cpus >= 2", True, True), ('.status == "Running" and .cpus > 8', True, False),
     ('.status == "Stopped" or .protected == false', True, True), ("select(.cpus < 2)", False, None),
     ('select(.status == "Running") | .name', True, "web"), ("not(.protected)", True, True),
     (".missing.deep", True, None), (".config.images[5]", True, None), (".", True, ROW),
     ('(.cpus == 4) and (.name != "db")', True, True)],
)
def test_yq_subset(expr: str, kept: bool, result: object) -> None:
    assert yqlite.evaluate(expr, ROW) == (kept, result)


@pytest.mark.parametrize(
    "expr", ['env(HOME)', 'load("/etc/passwd")', '.name | test("w")', ".a =~ 1", "", ".name |", "select(.a",
             "..", '.a["x"', ".[0:2]"],
)
def test_yq_subset_refuses_the_rest(expr: str) -> None:
    with pytest.raises(yqlite.YqError):
        yqlite.compile_expr(expr)


def test_filter_truthiness_is_yqs() -> None:
    assert yqlite.matches(".param", ROW) and not yqlite.matches(".nothing", ROW)
    assert yqlite.matches(".protected == false", ROW) and not yqlite.matches(".protected", ROW)


ENV = {"HOME": "/h", "PATH": "/bin", "SSH_AUTH_SOCK": "/s", "XDG_RUNTIME_DIR": "/r", "FOO": "1", "BAR_X": "2",
       "_": "/usr/bin/x", "LD_PRELOAD": "x", "GOPATH": "/go", "1BAD": "n"}  # fmt: skip


def test_preserve_env_default_block_list_is_limas() -> None:
    assert shellenv.filtered(ENV) == {"BAR_X": "2", "FOO": "1", "GOPATH": "/go"}


def test_preserve_env_block_replaces_or_extends_and_allow_wins() -> None:
    assert shellenv.filtered({**ENV, "LIMAPY_SHELLENV_BLOCK": "FOO, GO*"}).keys() >= {"HOME", "PATH", "BAR_X"}
    assert "FOO" not in shellenv.filtered({**ENV, "LIMAPY_SHELLENV_BLOCK": "FOO, GO*"})
    extended = shellenv.filtered({**ENV, "LIMA_SHELLENV_BLOCK": "+*_X"})
    assert "BAR_X" not in extended and "HOME" not in extended and "FOO" in extended
    allowed = shellenv.filtered({**ENV, "LIMAPY_SHELLENV_ALLOW": "SSH_AUTH_SOCK, LD_*"})
    assert allowed["SSH_AUTH_SOCK"] == "/s" and allowed["LD_PRELOAD"] == "x" and "HOME" not in allowed


def test_preserve_env_refuses_a_bad_pattern() -> None:
    with pytest.raises(shellenv.PatternError, match="LIMAPY_SHELLENV_BLOCK"):
        shellenv.filtered({"LIMAPY_SHELLENV_BLOCK": "FOO;rm"})
