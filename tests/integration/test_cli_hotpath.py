"""The hot path of `shell`, `list` and `validate`, through the real CLI: caches that are never stale.

An instance "runs" here without a guest: its pid files name live processes carrying the marks limapy
checks, and `ssh` on PATH is a stand-in that records its arguments (and answers `-V` like OpenSSH).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from limapy.instance import pids
from tests.procs import sleeper

STANDIN_SSH = """#!/bin/sh
echo "$*" >> "$SSH_LOG"
[ "$1" = "-V" ] && echo "OpenSSH_9.2p1 Debian-2, stand-in" >&2
exit 0
"""


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.log = tmp / "ssh.log"
        bindir = tmp / "bin"
        bindir.mkdir()
        (bindir / "ssh").write_text(STANDIN_SSH)
        (bindir / "ssh").chmod(0o755)
        self.env = {**os.environ, "LIMAPY_HOME": str(self.home), "LIMAPY_CACHE_DIR": str(tmp / "cache"),
                    "PATH": f"{bindir}:{os.environ['PATH']}", "SSH_LOG": str(self.log)}  # fmt: skip
        self.env.pop("LIMAPY_INSTANCE", None)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp / "tiny.qcow2"), "16M"], check=True)
        self.template = tmp / "t.yaml"
        self.template.write_text(f"images:\n- location: {tmp / 'tiny.qcow2'}\n  arch: x86_64\nmounts: []\n")
        self.procs: list[subprocess.Popen[bytes]] = []

    def lp(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([sys.executable, "-m", "limapy", *args], env=self.env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
        if check:
            assert cp.returncode == 0, cp.stderr
        return cp

    def create(self, name: str) -> Path:
        self.lp("create", "--name", name, str(self.template))
        return self.home / name

    def run_fake(self, name: str, port: int = 60022) -> None:
        d = self.home / name
        agent = sleeper(*pids.hostagent_args(name, d))
        qemu = sleeper("-name", f"limapy-{name}", "-pidfile", str(d / "qemu.pid"))
        self.procs += [agent, qemu]
        (d / "ha.pid").write_text(f"{agent.pid}\n")
        (d / "qemu.pid").write_text(f"{qemu.pid}\n")
        (d / "ssh.config").write_text(f"Host lima-{name}\n  Hostname 127.0.0.1\n  Port {port}\n")

    def ssh_calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    for p in e.procs:
        p.kill()
        p.wait()


def test_shell_sees_an_edited_lima_yaml_and_a_new_port(env: Env) -> None:
    d = env.create("web")
    env.run_fake("web")
    env.lp("shell", "web", "true")
    first = env.ssh_calls()[-1]
    assert "User=lima" in first or "User=" in first
    assert "-p 60022 " in first
    assert (d / "limapy-summary.json").is_file()
    text = (d / "lima.yaml").read_text()
    (d / "lima.yaml").write_text(text + "user:\n  name: bob\n")
    env.run_fake("web", port=60123)
    env.lp("shell", "web", "true")
    second = env.ssh_calls()[-1]
    assert "User=bob" in second and "-p 60123 " in second


@pytest.mark.parametrize("corrupt", ["", "{not json", '{"v": 2}', "[]", "null"])
def test_a_corrupt_summary_falls_back_to_the_full_read(env: Env, corrupt: str) -> None:
    d = env.create("web")
    env.run_fake("web")
    env.lp("shell", "web", "true")
    good = json.loads((d / "limapy-summary.json").read_text())
    (d / "limapy-summary.json").write_text(corrupt)
    env.lp("shell", "web", "true")
    assert "User=" in env.ssh_calls()[-1]
    assert json.loads((d / "limapy-summary.json").read_text())["view"] == good["view"]  # rewritten


def test_a_summary_with_a_wrong_view_is_not_used(env: Env) -> None:
    d = env.create("web")
    env.run_fake("web")
    env.lp("shell", "web", "true")
    rec = json.loads((d / "limapy-summary.json").read_text())
    rec["view"]["view_user"]["name"] = 42
    (d / "limapy-summary.json").write_text(json.dumps(rec))
    env.lp("shell", "web", "true")
    assert "User=lima" in env.ssh_calls()[-1] or "User=" in env.ssh_calls()[-1]
    assert "User=42" not in env.ssh_calls()[-1]


#: What `shell` must not import before it execs ssh (DESIGN, "Start-up time"): the CLI framework, the heavy
#: libraries, and the stdlib modules that cost milliseconds (`signal`'s enums: main uses `_signal`).
HOT_PATH_NEVER = ("typer", "click", "rich", "ruamel", "jsonschema", "jinja2", "fabric", "dataclasses", "typing",
                  "logging", "subprocess", "shutil", "signal", "inspect", "tempfile")


def test_shell_until_exec_imports_nothing_heavy(env: Env) -> None:
    env.create("web")
    env.run_fake("web")
    env.lp("shell", "web", "true")  # the summary and the `ssh -V` memo exist, as on every later call
    code = ("import os, sys\n"
            "def exec_(path, argv):\n"
            "    print(' '.join(sorted(m for m in sys.modules if '.' not in m)), flush=True)\n"
            "    os._exit(0)\n"
            "os.execvp = exec_\n"
            "from limapy.cli import main\n"
            "main(['shell', 'web', 'true'])\n")  # fmt: skip
    cp = subprocess.run([sys.executable, "-c", code], env=env.env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    loaded = set(cp.stdout.split())
    assert "limapy" in loaded and "pathlib" in loaded  # it did run until the exec
    assert not loaded & set(HOT_PATH_NEVER), sorted(loaded & set(HOT_PATH_NEVER))


def test_ssh_version_is_asked_once_per_binary(env: Env) -> None:
    env.create("web")
    env.run_fake("web")
    for _ in range(3):
        env.lp("shell", "web", "true")
    assert [c for c in env.ssh_calls() if c == "-V"] == ["-V"]
    ssh = Path(env.env["PATH"].split(":")[0]) / "ssh"
    st = ssh.stat()
    os.utime(ssh, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # "upgraded": asked again
    env.lp("shell", "web", "true")
    assert [c for c in env.ssh_calls() if c == "-V"] == ["-V", "-V"]


def test_shell_preserve_env_sends_what_the_block_list_allows(env: Env) -> None:
    env.create("web")
    env.run_fake("web")
    env.env.update(FOO_TOKEN="x y", SSH_SECRET="no", LIMAPY_SHELLENV_ALLOW="")
    env.lp("shell", "--preserve-env", "web", "true")
    call = env.ssh_calls()[-1]
    assert "FOO_TOKEN='x y'" in call and "SSH_SECRET" not in call and " HOME=" not in call
    env.env["LIMAPY_SHELLENV_BLOCK"] = "+FOO_*"
    env.lp("shell", "--preserve-env", "web", "true")
    assert "FOO_TOKEN" not in env.ssh_calls()[-1]
    env.env["LIMAPY_SHELLENV_ALLOW"] = "FOO_TOKEN"
    env.lp("shell", "--preserve-env", "web", "true")
    assert "FOO_TOKEN='x y'" in env.ssh_calls()[-1]


def test_shell_of_a_stopped_instance_and_of_a_command_word(env: Env) -> None:
    env.create("web")
    cp = env.lp("shell", "web", "true", check=False)
    assert cp.returncode == 1 and "limapy: instance `web` is stopped" in cp.stderr and "Traceback" not in cp.stderr
    cp = env.lp("shell", "start", check=False)
    assert cp.returncode == 1 and "perhaps you meant `limapy start`" in cp.stderr
    env.env["LIMAPY_INSTANCE"] = "web"
    cp = env.lp("shell", check=False)
    assert "instance `web` is stopped" in cp.stderr


def test_list_order_broken_dirs_and_exit_codes(env: Env) -> None:
    env.create("a")
    env.create("b")
    (env.home / "gone").mkdir()  # an instance dir whose lima.yaml is lost
    table = env.lp("list").stdout.splitlines()
    assert [ln.split()[0] for ln in table[1:]] == ["a", "b", "gone"]
    assert table[3].split()[1] == "Broken"
    assert env.lp("list", "-q").stdout.split() == ["a", "b", "gone"]
    assert env.lp("list", "-q", "b", "a").stdout.split() == ["b", "a"]  # in the order given
    rows = [json.loads(x) for x in env.lp("list", "--json", "gone", "a").stdout.splitlines()]
    assert [r["name"] for r in rows] == ["gone", "a"]
    assert rows[0]["status"] == "Broken" and rows[0]["errors"]
    assert "sshLocalPort" not in rows[1] and "errors" not in rows[1] and "message" not in rows[1]  # omitempty
    assert rows[1]["protected"] is False and rows[1]["cpus"] >= 1
    cp = env.lp("list", "a", "nope", check=False)
    assert cp.returncode == 1 and "No instance matching nope found." in cp.stderr
    assert cp.stderr.strip().splitlines()[-1] == "limapy: unmatched instances"
    assert cp.stdout.splitlines()[1].startswith("a ")  # the others are still listed


@pytest.mark.parametrize(
    ("args", "message"),
    [(["-q", "--format", "json"], "option --quiet can only be used with '--format table'"),
     (["--json", "--format", "yaml"], "option --json conflicts with option --format"),
     (["--format", "jsn"], "use table, json, yaml or a Go template"),
     (["--format", "{{range .}}x{{end}}"], "range can't iterate over"),  # the instance is a Go struct
     (["--format", "{{.Name | lower}}"], 'function "lower" not defined'),  # Go's words
     (["--yq", "env(HOME)"], "--yq/--filter expression"),
     (["-l", ".name =~ \"x\""], "--yq/--filter expression")],
)
def test_list_refuses_contradictions_in_one_line(env: Env, args: list[str], message: str) -> None:
    env.create("a")
    cp = env.lp("list", *args, check=False)
    assert cp.returncode == 1, cp.stderr
    assert message in cp.stderr and "Traceback" not in cp.stderr and cp.stdout == ""


def test_list_templates_filters_and_yq(env: Env) -> None:
    env.create("a")
    env.create("b")
    env.run_fake("b")
    out = env.lp("list", "--format", "{{.Name}}:{{.Status}}:{{.SSHLocalPort}}:{{.CPUs}}").stdout.splitlines()
    assert out[0].startswith("a:Stopped:<no value>:") and out[1].startswith("b:Running:60022:")
    assert env.lp("list", "-l", '.status == "Running"', "-q").stdout.split() == ["b"]
    assert env.lp("list", "--yq", ".name").stdout.split() == ["a", "b"]
    assert env.lp("list", "--yq", 'select(.status == "Stopped") | .name').stdout.split() == ["a"]
    assert env.lp("list", "--format", "{{json .Param}}|{{missing \"none\" .Message}}").stdout.split() == [
        "null|none", "null|none"]
    fields = env.lp("list", "--list-fields").stdout.split()
    assert "Name" in fields and "SSHLocalPort" in fields


def test_validate_memo_follows_every_file_read(env: Env, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(f"images:\n- location: {tmp_path / 'tiny.qcow2'}\n")
    f = tmp_path / "x.yaml"
    f.write_text("base: base.yaml\ncpus: 2\n")
    assert env.lp("validate", str(f)).stdout == f"{f}: OK\n"
    assert list((tmp_path / "cache" / "validated").iterdir())
    assert env.lp("validate", str(f)).stdout == f"{f}: OK\n"  # from the memo
    base.write_text("images: []\ncpus: many\n")  # the base changed: validated again, and refused
    cp = env.lp("validate", str(f), check=False)
    assert cp.returncode == 1 and f"{base}:" in cp.stderr


def test_validate_memo_sees_a_template_that_now_shadows_a_base(env: Env, tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("base: template:debian\n")
    assert env.lp("validate", str(f)).returncode == 0
    shadow = env.home / "_templates" / "debian.yaml"
    shadow.parent.mkdir(parents=True)
    shadow.write_text("cpus: many\n")
    cp = env.lp("validate", str(f), check=False)
    assert cp.returncode == 1 and "cpus" in cp.stderr
