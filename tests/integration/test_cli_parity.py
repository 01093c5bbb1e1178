"""limactl parity at the command line, in the style of Lima's BATS tests: dummy instances (created from a tiny
local qcow2 with `limapy create`, never booted), one command per step, its exit code and output checked.

Covers the aliases, protect/unprotect, show-ssh's four shapes, edit (flags, --set, validation before writing,
no shrinking), clone/rename, factory-reset, prune, template copy|yq|url|validate, `validate --fill A B`,
the create/start shortcut flags and `create -`, and `completion bash` sourced in a real bash.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from limapy.cli import main
from tests.procs import sleeper

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Env:
    home: Path
    cache: Path
    media: Path

    def run(self, *args: str, stdin: str | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
        try:
            with redirect_stdout(out), redirect_stderr(err):
                rc = main(list(args))
        finally:
            sys.stdin = old_stdin
        return Result(rc, out.getvalue(), err.getvalue())

    def create(self, name: str, *extra: str) -> None:
        r = self.run("create", "--name", name, "--set", f'.images = [{{"location": "{self.media}", "arch": "x86_64"}}]',
                     *extra, "template:default")  # fmt: skip
        assert r.rc == 0, r.err

    def yaml(self, name: str) -> str:
        return (self.home / name / "lima.yaml").read_text()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    top = Path(tempfile.mkdtemp(prefix="lpp-", dir="/tmp"))
    media = top / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(media), "64M"], check=True)
    monkeypatch.setenv("LIMAPY_HOME", str(top / "h"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(top / "c"))
    for var in ("LIMAPY_DEBUG", "LIMAPY_TEMPLATES_PATH", "LIMAPY_DRIVER", "LIMAPY_DRIVER_MODULES"):
        monkeypatch.delenv(var, raising=False)
    yield Env(top / "h", top / "c", media)
    shutil.rmtree(top, ignore_errors=True)


# -- help, aliases -----------------------------------------------------------------------------------------

NEW_COMMANDS = ("restart", "edit", "clone", "rename", "factory-reset", "protect", "unprotect", "show-ssh",
                "tunnel", "prune", "template", "completion")  # fmt: skip


def test_help_lists_every_command(env: Env) -> None:
    r = env.run("--help")
    assert r.rc == 0
    listed = {line.split()[0] for line in r.out.splitlines() if line.startswith("  ") and line.split()}
    for cmd in NEW_COMMANDS:
        assert cmd in listed, cmd


def test_aliases_ls_rm_remove_cp(env: Env) -> None:
    env.create("a1")
    env.create("a2")
    assert env.run("ls", "-q").out.split() == ["a1", "a2"]
    assert env.run("rm", "a1").rc == 0
    assert env.run("remove", "a2").rc == 0
    assert env.run("ls", "-q").out == ""
    r = env.run("cp", "nosuch:/etc/hostname", ".")
    assert r.rc != 0 and "Traceback" not in r.err


# -- protect ---------------------------------------------------------------------------------------------


def test_protected_instance_survives_delete_force(env: Env) -> None:
    env.create("p")
    assert env.run("protect", "p").rc == 0
    assert (env.home / "p" / "protected").stat().st_mode & 0o777 == 0o400
    for args in (("delete", "p"), ("delete", "-f", "p"), ("rm", "-f", "p")):
        r = env.run(*args)
        assert r.rc == 1
        assert "instance is protected to prohibit accidental removal" in r.err
        assert "limapy unprotect p" in r.err
        assert (env.home / "p" / "lima.yaml").exists()
    assert env.run("unprotect", "p").rc == 0
    assert env.run("delete", "p").rc == 0
    assert not (env.home / "p").exists()


# -- show-ssh --------------------------------------------------------------------------------------------


def test_show_ssh_formats(env: Env) -> None:
    env.create("s")
    key = f'"{env.home}/_config/user"'
    cmd = env.run("show-ssh", "s").out
    # an option holding `"` is single-quoted, so the line pastes into a shell as it is (Lima's quoteOption)
    assert cmd.startswith(f"ssh -o 'IdentityFile={key}' -o StrictHostKeyChecking=no ") and cmd.endswith(" lima-s\n")
    assert "-o Hostname=127.0.0.1 -o Port=0 lima-s" in cmd
    assert shlex.split(cmd)[2] == f"IdentityFile={key}"
    args = env.run("show-ssh", "--format", "args", "s").out
    assert args.startswith(f"-o 'IdentityFile={key}' ") and args.endswith("-o Port=0\n")
    opts = env.run("show-ssh", "-f", "options", "s").out.splitlines()
    assert opts[0] == f"IdentityFile={key}" and opts[-2:] == ["Hostname=127.0.0.1", "Port=0"]
    config = env.run("show-ssh", "-f", "config", "s").out.splitlines()
    assert config[0] == "Host lima-s" and config[1] == f"  IdentityFile {key}" and config[-1] == "  Port 0"
    r = env.run("show-ssh", "-f", "json", "s")
    assert r.rc == 1 and "unknown format" in r.err
    assert env.run("show-ssh", "nosuch").rc == 1


# -- edit ------------------------------------------------------------------------------------------------


def test_edit_flags_and_set(env: Env) -> None:
    env.create("e")
    r = env.run("edit", "e", "--cpus", "3", "--memory", "2", "--set", ".ssh.loadDotSSHPubKeys = false")
    assert r.rc == 0, r.err
    y = env.yaml("e")
    assert "cpus: 3\n" in y and "memory: 2GiB\n" in y and "loadDotSSHPubKeys: false" in y
    info = json.loads(env.run("list", "--json", "e").out)
    assert info["cpus"] == 3 and info["memory"] == 2 << 30


def test_edit_validates_before_writing(env: Env) -> None:
    env.create("e")
    before = env.yaml("e")
    r = env.run("edit", "e", "--set", '.cpus = "many"')
    assert r.rc == 1 and r.err.startswith("limapy: --set '.cpus = \"many\"': field `cpus`")
    assert env.yaml("e") == before
    r = env.run("edit", "e", "--set", ".cpus = 2 | nonsense")
    assert r.rc == 1 and env.yaml("e") == before


def test_edit_refuses_to_shrink_the_disk(env: Env) -> None:
    env.create("e", "--disk", "20")
    r = env.run("edit", "e", "--disk", "10")
    assert r.rc == 1
    assert "field `disk`: shrinking the disk (20GiB --> 10GiB) is not supported" in r.err
    assert env.run("edit", "e", "--disk", "30").rc == 0
    assert "disk: 30GiB" in env.yaml("e")


def test_edit_without_edits_off_a_terminal_is_a_usage_error(env: Env) -> None:
    env.create("e")
    r = env.run("edit", "e")
    assert r.rc == 1 and "no edit given" in r.err


def test_edit_create_only_flags_are_ignored_with_a_warning(env: Env) -> None:
    env.create("e")
    r = env.run("edit", "e", "--arch", "aarch64", "--cpus", "2")
    assert r.rc == 0 and "--arch applies only when an instance is created" in r.err
    assert "arch: x86_64" in env.yaml("e")


# -- create / start flags --------------------------------------------------------------------------------


def test_create_shortcut_flags(env: Env, tmp_path: Path) -> None:
    share = tmp_path / "share"
    env.create("f", "--mount", f"{share}:w", "--mount-type", "virtiofs", "--port-forward", "8080:80,static=true",
               "--ssh-port", "0", "--video", "--dns", "1.1.1.1,8.8.8.8", "--containerd", "user",
               "--network", "lima:shared")  # fmt: skip
    cfg = json.loads(env.run("list", "--json", "f").out)["config"]
    first = cfg["mounts"][0]
    assert (first["location"], first["mountPoint"], first["writable"]) == (str(share), str(share), True)
    assert cfg["mountType"] == "virtiofs"
    assert {"guestPort": 80, "hostPort": 8080, "static": True}.items() <= cfg["portForwards"][0].items()
    assert cfg["video"]["display"] == "default" and cfg["dns"] == ["1.1.1.1", "8.8.8.8"]
    assert cfg["hostResolver"]["enabled"] is False and cfg["plain"] is False
    assert cfg["containerd"]["user"] is True and cfg["containerd"]["system"] is False
    assert cfg["networks"][0]["lima"] == "shared"
    env.create("g", "--plain", "--arch", "x86_64")
    cfg = json.loads(env.run("list", "--json", "g").out)["config"]
    assert cfg["plain"] is True and not cfg.get("mounts")  # plain: no mounts (Lima's FillDefault)


def test_mount_flags(env: Env, tmp_path: Path) -> None:
    env.create("m", "--mount-only", f"{tmp_path}", "--mount-writable")
    cfg = json.loads(env.run("list", "--json", "m").out)["config"]
    assert [(m["location"], m["writable"]) for m in cfg["mounts"]] == [(str(tmp_path), True)]
    env.create("n", "--mount-none")
    assert not json.loads(env.run("list", "--json", "n").out)["config"].get("mounts")
    r = env.run("create", "--mount-none", "--mount", "/x", "template:default")
    assert r.rc == 1 and "cannot be combined" in r.err


def test_param_must_be_defined_by_the_template(env: Env, tmp_path: Path) -> None:
    tmpl = tmp_path / "p.yaml"
    tmpl.write_text(f"images: [{{location: {env.media}, arch: x86_64}}]\nparam: {{GREETING: hi}}\n"
                    "provision: [{mode: system, script: 'echo {{.Param.GREETING}}'}]\n")  # fmt: skip
    r = env.run("create", "--name", "p", "--param", "GREETING=hello", str(tmpl))
    assert r.rc == 0, r.err
    assert "GREETING: hello" in env.yaml("p")
    r = env.run("create", "--name", "q", "--param", "NOPE=1", str(tmpl))
    assert r.rc == 1 and "--param NOPE=1: the template does not define" in r.err
    assert not (env.home / "q").exists()


def test_create_from_stdin_requires_name(env: Env) -> None:
    text = f"images: [{{location: {env.media}, arch: x86_64}}]\n"
    r = env.run("create", "-", stdin=text)
    assert r.rc == 1 and "requires --name" in r.err
    assert env.run("create", "--name", "fromstdin", "-", stdin=text).rc == 0
    assert env.run("ls", "-q").out.split() == ["fromstdin"]


def test_start_flags_on_an_existing_instance(env: Env) -> None:
    env.create("d")
    before = env.yaml("d")
    r = env.run("start", "--dry-run", "--cpus", "1", "--plain", "d")
    assert r.rc == 0, r.err
    assert "-smp 1," in r.out  # the plan has the flag's value ...
    assert "--plain applies only when an instance is created" in r.err
    assert env.yaml("d") == before  # ... and a dry run writes nothing
    r = env.run("start", "--dry-run", "--set", '.cpus = "x"', "d")
    assert r.rc == 1 and "--set '.cpus = \"x\"': field `cpus`" in r.err


# -- clone / rename --------------------------------------------------------------------------------------


def test_clone_and_rename(env: Env) -> None:
    env.create("src", "--ssh-port", "40022")
    (env.home / "src" / "protected").write_text("")
    r = env.run("clone", "src", "dst")
    assert r.rc == 0, r.err
    dst = env.home / "dst"
    assert not (dst / "protected").exists()
    assert "localPort: 0" in (dst / "lima.yaml").read_text()
    out = subprocess.run(["qemu-img", "info", "--output=json", str(dst / "disk")], capture_output=True, check=True)
    assert json.loads(out.stdout)["backing-filename"] == str(env.media)
    assert (dst / "base-image.json").stat().st_mode & 0o777 == 0o600
    assert env.run("clone", "--full", "src", "full").rc == 0
    out = subprocess.run(["qemu-img", "info", "--output=json", str(env.home / "full" / "disk")],
                         capture_output=True, check=True)  # fmt: skip
    assert "backing-filename" not in json.loads(out.stdout)
    r = env.run("clone", "src", "dst")
    assert r.rc == 1 and "already exists" in r.err
    r = env.run("rename", "full", "renamed")
    assert r.rc == 0 and not (env.home / "full").exists() and (env.home / "renamed" / "disk").exists()
    r = env.run("rename", "renamed", "bad name")
    assert r.rc == 1 and (env.home / "renamed").exists()
    assert sorted(p.name for p in env.home.iterdir() if not p.name.startswith("_")) == ["dst", "renamed", "src"]


# -- factory-reset ---------------------------------------------------------------------------------------


def test_factory_reset_keeps_lima_yaml_and_makes_a_new_disk(env: Env) -> None:
    env.create("r")
    inst = env.home / "r"
    subprocess.run(["qemu-img", "resize", "-q", str(inst / "disk"), "+1M"], check=True)  # "the guest wrote"
    for name in ("serial.log", "ssh.config", "cidata.iso", "win-done-installation", "windows-password"):
        (inst / name).write_text("x")
    (inst / "swtpm").mkdir()
    (inst / "protected").write_text("")
    (inst / "extra.yaml").write_text("kept: true\n")
    before = (inst / "lima.yaml").read_bytes()
    r = env.run("factory-reset", "r")
    assert r.rc == 0, r.err
    assert sorted(p.name for p in inst.iterdir()) == [
        "base-image.json", "disk", "extra.yaml", "lima-version", "lima.yaml", "lock", "protected"]
    assert (inst / "lima.yaml").read_bytes() == before
    out = subprocess.run(["qemu-img", "info", "--output=json", str(inst / "disk")], capture_output=True, check=True)
    info = json.loads(out.stdout)
    assert info["backing-filename"] == str(env.media) and info["virtual-size"] == 100 << 30


# -- prune -----------------------------------------------------------------------------------------------


def test_prune_keeps_what_instances_stand_on(env: Env) -> None:
    from limapy import download

    root = env.cache / "download"
    used = download.fetch(str(env.media))  # local files are not copied into the cache: only a digest entry
    del used
    stray = root / "by-content-sha256" / ("ab" * 32)
    stray.mkdir(parents=True)
    (stray / "data").write_bytes(b"old download")
    base = root / "by-content-sha256" / ("cd" * 32)
    base.mkdir(parents=True)
    shutil.copyfile(env.media, base / "data")
    r = env.run("create", "--name", "onblob", "--set", f'.images = [{{"location": "{base / "data"}", '
                '"arch": "x86_64"}]', "template:default")  # fmt: skip
    assert r.rc == 0, r.err
    r = env.run("prune")
    assert r.rc == 0, r.err
    assert not stray.exists()
    assert (base / "data").exists()  # the overlay of `onblob` stands on it
    assert env.run("prune", "--keep-referred").rc == 0


# -- template / validate ---------------------------------------------------------------------------------


def test_template_commands(env: Env, tmp_path: Path) -> None:
    url = env.run("template", "url", "template:default")
    assert url.rc == 0 and url.out == (REPO / "templates" / "default.yaml").as_uri() + "\n"
    loc = env.run("template", "yq", "template:default", ".images[0].location")
    assert loc.rc == 0 and loc.out.startswith("https://")
    edited = env.run("template", "yq", "template:default", ".cpus = 7")
    assert "cpus: 7\n" in edited.out
    copy = env.run("template", "copy", "template:default")
    assert copy.out.encode() == (REPO / "templates" / "default.yaml").read_bytes()
    filled = env.run("tmpl", "copy", "--fill", "template:default", str(tmp_path))
    assert filled.rc == 0 and "cpus:" in (tmp_path / "default.yaml").read_text()
    again = env.run("template", "copy", "template:default", str(tmp_path / "default.yaml"))
    assert again.rc == 1 and "already exists" in again.err
    assert env.run("template", "copy", "--fill", "--embed", "template:default").rc == 1
    assert env.run("template", "validate", "template:default").rc == 0


def test_validate_fill_separates_documents(env: Env) -> None:
    r = env.run("validate", "--fill", "template:default", "template:default")
    assert r.rc == 0, r.err
    docs = r.out.split("---\n")
    assert docs[0] == "" and len(docs) == 3 and docs[1] == docs[2]


# -- completion ------------------------------------------------------------------------------------------


def _complete(env: Env, words: str, cword: int) -> list[str]:
    """Source `limapy completion bash` in a real bash, set COMP_WORDS/COMP_CWORD as readline would, and
    call the completion function; `limapy` on PATH is this checkout."""
    bindir = env.home.parent / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "limapy"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m limapy "$@"\n')
    wrapper.chmod(0o755)
    penv = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    penv["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), penv.get("PYTHONPATH", "")) if p)
    bash = (
        'source <(limapy completion bash)\n'
        f"COMP_WORDS=({words}); COMP_CWORD={cword}; _limapy_completion limapy; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    out = subprocess.run(["bash", "-c", bash], capture_output=True, text=True, check=True, env=penv)
    return [w for w in out.stdout.splitlines() if w]


def test_completion_bash_completes_commands_and_instance_names(env: Env) -> None:
    env.create("alpha")
    env.create("alps")
    env.create("beta")
    assert {"start", "stop", "show-ssh"} <= set(_complete(env, "limapy s", 1))
    assert "rm" not in _complete(env, "limapy r", 1)  # aliases stay hidden
    assert _complete(env, "limapy start al", 2) == ["alpha", "alps"]
    assert _complete(env, "limapy stop al", 2) == []  # all stopped: nothing for stop to stop
    assert _complete(env, "limapy protect ''", 2) == ["alpha", "alps", "beta"]
    assert _complete(env, "limapy clone b", 2) == ["beta"]


def test_completion_other_shells(env: Env) -> None:
    for shell in ("zsh", "fish", "powershell"):
        r = env.run("completion", shell)
        assert r.rc == 0 and "_LIMAPY_COMPLETE" in r.out
    assert env.run("completion", "tcsh").rc == 1


# -- snapshot (stopped: qemu-img; the firmware store and TPM state kept beside the disk) -------------------


def test_snapshot_offline_keeps_vars_and_tpm_with_the_disk(env: Env) -> None:
    env.create("w")
    inst = env.home / "w"
    (inst / "qemu-efi-vars.fd").write_bytes(b"vars at snapshot time")
    (inst / "swtpm").mkdir()
    (inst / "swtpm" / "tpm2-00.permall").write_bytes(b"tpm at snapshot time")
    assert env.run("snapshot", "create", "w", "--tag", "clean").rc == 0
    assert env.run("snapshot", "save", "w", "--tag", "second").rc == 0
    r = env.run("snapshot", "list", "w")
    assert r.rc == 0 and r.out.splitlines()[0].split()[:3] == ["ID", "TAG", "VM"]
    assert [line.split()[1] for line in r.out.splitlines()[1:]] == ["clean", "second"]
    assert env.run("snapshot", "ls", "-q", "w").out == "clean\nsecond\n"
    (inst / "qemu-efi-vars.fd").write_bytes(b"vars changed later")
    (inst / "swtpm" / "tpm2-00.permall").write_bytes(b"tpm changed later")
    assert env.run("snapshot", "apply", "w", "--tag", "clean").rc == 0
    assert (inst / "qemu-efi-vars.fd").read_bytes() == b"vars at snapshot time"
    assert (inst / "swtpm" / "tpm2-00.permall").read_bytes() == b"tpm at snapshot time"
    assert (inst / "snapshots").stat().st_mode & 0o777 == 0o700
    assert env.run("snapshot", "delete", "w", "--tag", "clean").rc == 0
    assert env.run("snapshot", "list", "-q", "w").out == "second\n"
    assert not (inst / "snapshots" / "clean").exists()


def test_snapshot_refusals(env: Env) -> None:
    env.create("w")
    assert env.run("snapshot", "create", "w", "--tag", "a").rc == 0
    r = env.run("snapshot", "create", "w", "--tag", "a")
    assert r.rc == 1 and "already exists" in r.err
    r = env.run("snapshot", "apply", "w", "--tag", "nope")
    assert r.rc == 1 and "has no snapshot `nope`" in r.err
    for bad in ("a b", "x;quit", "-c", "../x", ""):
        r = env.run("snapshot", "create", "w", "--tag", bad)
        assert r.rc == 1, (bad, r.err)
    assert env.run("snapshot", "list", "-q", "w").out == "a\n"


# -- disk (the lock holds while, and only while, the holder runs) ----------------------------------------


def test_disk_commands(env: Env, tmp_path: Path) -> None:
    assert env.run("disk", "create", "data", "--size", "1GiB").rc == 0
    assert env.run("disk", "create", "rawdisk", "--size", "16MiB", "--format", "raw").rc == 0
    r = env.run("disk", "create", "data", "--size", "1GiB")
    assert r.rc == 1 and "already exists" in r.err
    rows = [json.loads(line) for line in env.run("disk", "list", "--json").out.splitlines()]
    assert [(d["name"], d["size"], d["format"], d["instance"]) for d in rows] == [
        ("data", 1 << 30, "qcow2", ""), ("rawdisk", 16 << 20, "raw", "")]
    table = env.run("disk", "ls").out.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "FORMAT", "LOCATION", "IN-USE-BY"]
    assert env.run("disk", "resize", "data", "--size", "2GiB").rc == 0
    r = env.run("disk", "resize", "data", "--size", "1GiB")
    assert r.rc == 1 and "shrinking the disk (2GiB --> 1GiB) is not supported" in r.err
    image = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "8M"], check=True)
    assert env.run("disk", "import", "imported", str(image)).rc == 0
    assert (env.home / "_disks" / "imported" / "datadisk").is_file()
    assert env.run("disk", "delete", "imported", "rawdisk").rc == 0
    assert [json.loads(x)["name"] for x in env.run("disk", "list", "--json").out.splitlines()] == ["data"]
    r = env.run("disk", "delete", "nosuch")
    assert r.rc == 1 and "does not exist" in r.err


def _fake_hostagent(inst: Path) -> subprocess.Popen[bytes]:
    """A process whose command line carries `hostagent NAME --dir DIR`: limapy believes the instance runs.
    Returned once exec is done: before that, /proc/PID/cmdline is pytest's and limapy rightly sees no agent (CI
    met that race)."""
    from limapy.instance import pids

    p = sleeper(*pids.hostagent_args(inst.name, inst))
    (inst / "ha.pid").write_text(f"{p.pid}\n")
    return p


def test_disk_lock_follows_the_running_instance(env: Env) -> None:
    from limapy.base.errors import InstanceError
    from limapy.instance import disk

    env.create("a")
    env.create("b")
    assert env.run("disk", "create", "shared", "--size", "64MiB").rc == 0
    a, b = env.home / "a", env.home / "b"
    agent = _fake_hostagent(a)
    try:
        disk.claim_additional_disk("shared", a)
        with pytest.raises(InstanceError, match="in use by the running instance `a`"):
            disk.claim_additional_disk("shared", b)
        assert json.loads(env.run("disk", "list", "--json").out)["instance"] == "a"
        for args in (("delete", "-f", "shared"), ("resize", "shared", "--size", "1GiB"), ("unlock", "shared")):
            r = env.run("disk", *args)
            assert r.rc == 1 and "in use by the running instance `a`" in r.err, args
    finally:
        agent.kill()
        agent.wait()
    assert json.loads(env.run("disk", "list", "--json").out)["instance"] == ""  # a stopped: nobody holds it
    r = env.run("disk", "delete", "shared")
    assert r.rc == 1 and "attached to the stopped instance `a`" in r.err
    disk.claim_additional_disk("shared", b)  # a stopped instance's mark is taken over
    assert disk.disk_owner("shared") == b
    assert env.run("disk", "unlock", "shared").rc == 0
    assert env.run("disk", "delete", "shared").rc == 0
