"""Lima 2.x's command line (issue 27): watch, shell --sync/--reconnect/--instance, --nested-virt, --image-variant,
edit --param, copy --backend, the `lima` wrapper, yq, and list --format's global fields; each with its --help,
without a guest (tests/e2e/test_parity.py boots one for watch, --sync and copy --backend rsync)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from limapy import cli, copytool
from limapy.base.errors import LimapyError, UsageError
from limapy.instance import store


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("LIMAPY_HOME", str(h))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    return h


def dummy(name: str, yaml: str = "images: [{location: /nonexistent.img}]\n") -> store.Instance:
    return store.create_instance_dir(name, {"lima.yaml": yaml.encode()})


@pytest.mark.parametrize(
    ("command", "flags"),
    [("watch", ["--json", "--history", "--verbose"]), ("shell", ["--sync", "--reconnect", "--instance"]),
     ("copy", ["--backend"]), ("create", ["--nested-virt", "--image-variant", "--arch-variant", "--param"]),
     ("start", ["--nested-virt", "--image-variant"]), ("edit", ["--param", "--nested-virt"]), ("yq", ["eval|e"])],
)  # fmt: skip
def test_help_names_the_flags(command: str, flags: list[str]) -> None:
    """Lima's flags: shell.go lines 69-76 (--instance, --reconnect, --sync), watch.go line 58, copy.go line 56,
    editflags.go lines 67, 72 and 113."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main([command, "--help"]) == 0
    for flag in flags:
        assert flag in out.getvalue(), (command, flag)


# -- watch (cmd/limactl/watch.go) ---------------------------------------------------------------------------------


def _event(inst: store.Instance, time: str, **status: object) -> None:
    with open(inst.ha_stdout_log, "a") as f:
        f.write(json.dumps({"time": time, "status": status, "phase": "ready" if status.get("running") else "boot"})
                + "\n")  # fmt: skip


def test_watch_follows_events_new_and_restarted_logs(home: Path) -> None:
    """watch.go: begin (line 131) and events/watcher.go line 69 skip older events; ReOpen follows a new log;
    watchLimaDir (line 191) picks up new instances; printHumanReadableEvent (line 244)."""
    from limapy.ops.watch import Watcher, human

    a = dummy("a")
    _event(a, "2020-01-01T00:00:00+00:00", running=True)  # before the watch began: only with --history
    w = Watcher([], history=False, verbose=False)
    assert w.discover() == ["a"] and w.poll() == ([], [])
    _event(a, "2999-01-01T00:00:00.000+00:00", sshLocalPort=60022)
    _event(a, "2999-01-01T00:00:01.000+00:00", running=True)
    events, _ = w.poll()
    assert [e["status"] for _, e in events] == [{"sshLocalPort": 60022}, {"running": True}]
    a.ha_stdout_log.write_text("")  # a new start truncates the log: it is followed from its start again
    _event(a, "2999-01-01T00:01:00+00:00", exiting=True)
    assert [e["status"] for _, e in w.poll()[0]] == [{"exiting": True}]
    dummy("b")
    assert w.discover() == ["b"]  # `limactl watch` with no name watches new instances too
    assert human("a", {"time": "2999-01-01T00:00:01+00:00", "status": {"running": True}}) == [
        "2999-01-01 00:00:01 a | running"]
    ev = {"time": "2999-01-01T00:00:01Z", "status": {"portForward": {"type": "forwarding", "protocol": "tcp",
          "guestAddr": "127.0.0.1:80", "hostAddr": "127.0.0.1:8080"}}}  # fmt: skip
    assert human("a", ev) == ["2999-01-01 00:00:01 a | forwarding tcp 127.0.0.1:80 to 127.0.0.1:8080"]
    assert len(Watcher(["a"], history=True, verbose=False).poll()[0]) == 1  # --history: what the log holds


def test_watch_json_lines(home: Path) -> None:
    """watch.go line 178: `{"instance": NAME, "event": EVENT}` per line."""
    from limapy.ops.watch import watch

    a = dummy("a")
    _event(a, "2999-01-01T00:00:00+00:00", running=True)
    out, err = io.StringIO(), io.StringIO()
    polls = iter([False, True])
    assert watch(["a"], as_json=True, history=True, verbose=False, out=out, err=err, stop=lambda: next(polls)) == 0
    (line,) = out.getvalue().splitlines()
    assert json.loads(line) == {"instance": "a", "event": {"time": "2999-01-01T00:00:00+00:00",
                                                           "status": {"running": True}, "phase": "ready"}}  # fmt: skip
    assert "Watching for events..." in err.getvalue()
    with pytest.raises(LimapyError):
        watch(["nope"], as_json=True, history=False, verbose=False, stop=lambda: True)


def test_watch_interrupted_prints_what_the_log_already_holds(home: Path) -> None:
    """An interrupt right after an instance's last event (a stop returned, then Ctrl-C) still shows that event."""
    from limapy.ops.watch import watch

    a = dummy("a")
    out, err = io.StringIO(), io.StringIO()
    calls = iter([False])

    def stop() -> bool:
        if next(calls, None) is None:  # the second check: the stop's event lands, then the interrupt comes
            _event(a, "2999-01-01T00:00:09+00:00", exiting=True)
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        watch(["a"], as_json=True, history=True, verbose=False, out=out, err=err, stop=stop)
    assert [json.loads(x)["event"]["status"] for x in out.getvalue().splitlines()] == [{"exiting": True}]


# -- shell --sync (cmd/limactl/shell.go) ----------------------------------------------------------------------------


def test_shell_sync_parses_and_checks(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """shell.go lines 213 (mounts), 258 (depth), 276 (--workdir), 280 (`<guest home><dir>`), 776 (pathDepth)."""
    from limapy import config
    from limapy.ops import shell, shellsync

    req = shell.parse(["--sync", "/w/x/y/z", "web", "make"])
    assert req is not None and req.sync == "/w/x/y/z" and req.name == "web" and req.command == ("make",)
    assert shellsync.path_depth("/") == 2 and shellsync.path_depth("/Users/USER") == 3  # shell.go line 776
    assert shellsync.path_depth("/home/u/src/") == 4 and shellsync.path_depth("//a//b") == 3
    inst = dummy("web", "images: [{location: /x.img}]\nmounts: [{location: /srv/data}]\n")
    spec = config.instance_spec(inst)
    monkeypatch.setattr(shellsync.shutil, "which", lambda _p: "/usr/bin/rsync")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    with pytest.raises(LimapyError, match="has host mounts configured, start the instance with `--mount-none`"):
        shellsync.check(inst, spec, shell.Request(sync=str(deep)))
    plain = config.instance_spec(dummy("p", "images: [{location: /x.img}]\nmounts: []\n"))
    with pytest.raises(UsageError, match="cannot use `--workdir` and `--sync` at the same time"):
        shellsync.check(inst, plain, shell.Request(sync=str(deep), workdir="/x"))
    with pytest.raises(LimapyError, match="to be at least 4, only got 2"):
        shellsync.check(inst, plain, shell.Request(sync="/tmp"))
    host_dir, guest_dir = shellsync.check(inst, plain, shell.Request(sync=str(deep)))
    assert host_dir == str(deep) and guest_dir == plain.user.home + str(deep)  # `<guest home><host dir>`


def test_sync_and_copy_rsync_argv(home: Path) -> None:
    inst = dummy("web")
    up = copytool.rsync_argv([copytool.Operand("/h/d", None), copytool.Operand("/g/d", inst)], recursive=True,
                             extra=["--delete"])  # fmt: skip
    assert up[:up.index("-e")] == ["rsync", "-a", "-q", "-r", "--delete", "-s"]  # rsync.go line 89, Lima's flags
    assert up[up.index("-e") + 1] == f"ssh -F {inst.ssh_config}"
    assert up[-3:] == ["--", "/h/d/", "lima-web:/g/d/"]  # rsync.go line 138: a directory's contents
    down = copytool.rsync_argv([copytool.Operand("/g/f/", inst), copytool.Operand("/h/f", None)], recursive=True)
    assert down[-2:] == ["lima-web:/g/f/", "/h/f/"]  # as Lima's loop leaves them (each path in turn)


# -- copy --backend (pkg/copytool/copytool.go) ----------------------------------------------------------------------


def test_copy_backend(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pkg/copytool/copytool.go New (line 56): scp, rsync (host and guest must have it), auto."""
    from limapy.ops import copy

    req = copy.parse(["--backend", "rsync", "-r", "d", "w:/d"])
    assert req is not None and req.backend == "rsync" and req.recursive
    assert copy.parse(["--backend=scp", "a", "w:"]).backend == "scp"  # type: ignore[union-attr]
    ops = copytool.operands(["a", f"{dummy('w').name}:/tmp/"])
    with pytest.raises(UsageError, match="invalid backend `ftp`, must be one of: scp, rsync, auto"):
        copytool.choose("ftp", ops)
    assert copytool.choose("scp", ops) == "scp"
    monkeypatch.setattr(copytool.shutil, "which", lambda _p: None)
    assert copytool.choose("auto", ops) == "scp"  # no rsync on the host: scp
    with pytest.raises(LimapyError, match="rsync not found on host"):
        copytool.choose("rsync", ops)
    monkeypatch.setattr(copytool.shutil, "which", lambda _p: "/usr/bin/rsync")
    monkeypatch.setattr(copytool, "guest_has_rsync", lambda _i: False)
    assert copytool.choose("auto", ops) == "scp"
    with pytest.raises(LimapyError, match="rsync not available on guest"):
        copytool.choose("rsync", ops)
    monkeypatch.setattr(copytool, "guest_has_rsync", lambda _i: True)
    assert copytool.choose("auto", ops) == "rsync"
    two = copytool.operands(["w:/a", "w:/b"])
    assert copytool.choose("auto", two) == "scp"  # rsync cannot copy between two remote ends


# -- --nested-virt, --image-variant, edit --param (cmd/limactl/editflags/editflags.go) ------------------------------


def test_shortcut_flags(home: Path, tmp_path: Path) -> None:
    from limapy.expr.editflags import EditFlags, to_edits
    from limapy.ops.create import load_template

    f = EditFlags(nested_virt=True, image_variant="minimal", arch_variant="v3")
    exprs = [e.expr for e in to_edits(f)]
    assert ".nestedVirtualization = true" in exprs  # editflags.go line 350
    assert '.images = [.images[] | select(.variant == "minimal")]' in exprs  # line 401
    assert '.images = [.images[] | select(.archVariant == "v3")]' in exprs  # line 417
    assert [e.expr for e in to_edits(f, existing=True)] == [".nestedVirtualization = true"]  # the rest: create only
    assert f.given_create_only() == ["--image-variant", "--arch-variant"]
    with pytest.raises(UsageError, match="`--image-variant` must not be empty"):
        to_edits(EditFlags(image_variant=""))
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "b.yaml").write_text("images:\n- {location: /s.img, variant: server}\n"
                                                "- {location: /m.img, variant: minimal}\n")  # fmt: skip
    (tmp_path / "t.yaml").write_text("base: _images/b.yaml\n")
    doc = load_template(str(tmp_path / "t.yaml"), to_edits(EditFlags(image_variant="minimal")))  # after embedding
    assert doc.data["images"] == [{"location": "/m.img", "variant": "minimal"}]


def test_edit_param(home: Path) -> None:
    """editflags.go BuildParamExpressions (line 185): a param the template does not define is refused."""
    from limapy.expr.editflags import EditFlags, to_edits
    from limapy.ops.edit import apply_edits

    inst = dummy("e", "images: [{location: /x.img}]\nparam: {A: one}\nprovision: [{script: 'echo $PARAM_A'}]\n")
    apply_edits(inst, to_edits(EditFlags(params=["A=two"]), existing=True), say=lambda _m: None)
    assert "A: two" in inst.lima_yaml.read_text()
    with pytest.raises(UsageError, match="--param B=1: the template does not define"):
        apply_edits(inst, to_edits(EditFlags(params=["B=1"]), existing=True), say=lambda _m: None)


# -- the `lima` wrapper (cmd/lima), yq, list --format ---------------------------------------------------------------


def test_lima_wrapper() -> None:
    """cmd/lima: `limactl shell [--workdir W] [--shell S] --instance $LIMA_INSTANCE "$@"`, its usage text."""
    from limapy.cli import lima

    assert lima.shell_args(["uname", "-a"], {}) == ["shell", "--instance", "default", "uname", "-a"]
    env = {"LIMA_INSTANCE": "lima-one", "LIMAPY_INSTANCE": "mine", "LIMA_SHELL": "/bin/sh", "LIMA_WORKDIR": "/w"}
    assert lima.shell_args([], env) == ["shell", "--workdir", "/w", "--shell", "/bin/sh", "--instance", "mine"]
    assert "The instance name (\"dev\")" in lima.usage("lima", "dev")
    out = io.StringIO()
    with redirect_stdout(out):
        assert lima.main(["--help"]) == 0


def test_yq_command(tmp_path: Path) -> None:
    """cmd/limactl/main.go line 41 (yq.MaybeRunYQ): `limactl yq ARGS` is yq's command line."""
    f = tmp_path / "c.json"
    f.write_text('{"a": {"b": 1}}\n')
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["yq", "-o", "json", "-I", "0", ".a", str(f)]) == 0
        assert cli.main(["yq", "eval", "-i", ".a.c = true", str(f)]) == 0
    assert out.getvalue() == '{"b":1}\n' and json.loads(f.read_text()) == {"a": {"b": 1, "c": True}}
    assert cli.main(["yq", "env(HOME)", str(f)]) == 1  # an error: 1, as yq (and limactl yq)


def test_list_format_global_fields(home: Path) -> None:
    """pkg/store/instance.go AddGlobalFields (line 268): HostOS, HostArch, LimaHome, IdentityFile."""
    import platform

    from limapy.config.hostinfo import lima_arch

    dummy("x")
    out = io.StringIO()
    with redirect_stdout(out):
        fmt = "{{.Name}} {{.HostOS}} {{.HostArch}} {{.LimaHome}} {{.IdentityFile}}"
        assert cli.main(["list", "--format", fmt]) == 0
    assert out.getvalue() == (f"x {platform.system().lower()} {lima_arch(platform.machine())} {home} "
                              f"{home}/_config/user\n")  # fmt: skip


def test_failures_exit_1_as_limactl() -> None:
    """Every limactl failure exits 1 (cmd/limactl/main.go line 64: logrus.Fatal; cobra's usage errors too); so
    does limapy's (DESIGN.md, "Exit codes")."""
    assert cli.main(["list", "--bogus"]) == 1
    assert cli.main(["copy", "--backend", "ftp", "a", "b:"]) == 1


# -- mode: ansible (pkg/instance/ansible.go) ------------------------------------------------------------------------


def test_ansible_steps_run_ansible_playbook_on_the_host(home: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """ansible.go: after ready, `ansible-playbook -i <inst>/ansible-inventory.yaml PLAYBOOK` with PARAM_* set;
    without ansible-playbook on PATH limapy refuses before booting (Lima fails after the boot)."""
    from limapy import config
    from limapy.ops import ansible

    playbook = tmp_path / "site.yml"
    playbook.write_text("- hosts: all\n")
    inst = dummy("a", f"images: [{{location: /x.img}}]\nparam: {{P: v}}\nprovision:\n"
                      f"- {{mode: ansible, playbook: '{playbook}'}}\n- {{script: 'echo $PARAM_P'}}\n")  # fmt: skip
    spec = config.instance_spec(inst)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(LimapyError, match="limapy runs ansible-playbook on the host, as Lima does, and ansible-playbook"
                                          " is not installed"):  # fmt: skip
        ansible.require_program(spec)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "called"
    fake = bin_dir / "ansible-playbook"
    fake.write_text(f'#!/bin/sh\necho "$@" "PARAM_P=$PARAM_P" >{record}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    said: list[str] = []
    ansible.run(inst, spec, said.append)
    assert record.read_text() == f"-i {inst.ansible_inventory} {playbook} PARAM_P=v\n"
    from ruamel.yaml import YAML

    inventory = YAML(typ="safe").load(inst.ansible_inventory.read_text())
    assert inventory == {"lima": {"hosts": {"a": {"ansible_connection": "ssh", "ansible_host": "lima-a",
                                                  "ansible_ssh_common_args": f"-F {inst.ssh_config}"}}}}  # fmt: skip
    assert said == [f"Waiting for ansible playbook `{playbook}`"]
    fake.write_text("#!/bin/sh\nexit 2\n")
    with pytest.raises(LimapyError, match="failed"):
        ansible.run(inst, spec, said.append)
