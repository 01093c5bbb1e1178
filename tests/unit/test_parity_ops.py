"""The issue-13 commands' own logic, without booting or qemu-img: protect, show-ssh's shapes, tunnel's argv,
restart's order, completion's source of names, template url/yq, and what factory-reset and clone keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from limapy.base.errors import UsageError
from limapy.instance import store


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("LIMAPY_HOME", str(h))
    return h


def dummy(name: str) -> store.Instance:
    return store.create_instance_dir(name, {"lima.yaml": b"images: [{location: /nonexistent.img}]\n"})


def test_protect_and_unprotect(home: Path) -> None:
    from limapy.ops.protect import protect, unprotect

    inst = dummy("p")
    assert protect(inst) and not protect(inst)
    assert inst.protected.stat().st_mode & 0o777 == 0o400
    assert unprotect(inst) and not unprotect(inst)
    assert not inst.protected.exists()


def test_delete_refuses_protected_even_forced(home: Path) -> None:
    from limapy.base.errors import LimapyError
    from limapy.ops.delete import delete
    from limapy.ops.protect import protect

    inst = dummy("p")
    protect(inst)
    with pytest.raises(LimapyError, match="instance is protected to prohibit accidental removal") as e:
        delete("p", force=True)
    assert e.value.hint == "use `limapy unprotect p`"
    assert inst.lima_yaml.exists()


def test_show_ssh_shapes(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.ops import show_ssh

    inst = dummy("s")
    opts = ['IdentityFile="/k"', "User=me", "Hostname=127.0.0.1", "Port=60022"]
    monkeypatch.setattr(show_ssh, "options", lambda _inst: opts)
    assert show_ssh.render(inst, "cmd") == (
        "ssh -o 'IdentityFile=\"/k\"' -o User=me -o Hostname=127.0.0.1 -o Port=60022 lima-s\n")
    assert show_ssh.render(inst, "args") == "-o 'IdentityFile=\"/k\"' -o User=me -o Hostname=127.0.0.1 -o Port=60022\n"
    assert show_ssh.render(inst, "options") == "\n".join(opts) + "\n"
    assert show_ssh.render(inst, "config") == (
        'Host lima-s\n  IdentityFile "/k"\n  User me\n  Hostname 127.0.0.1\n  Port 60022\n')
    with pytest.raises(UsageError, match="unknown format"):
        show_ssh.render(inst, "url")


def test_tunnel_argv_binds_localhost(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.ops import list as list_ops
    from limapy.ops import shell, tunnel

    inst = dummy("t")
    (home / "t" / "lima.yaml").write_text("images: [{location: /x.img, arch: x86_64}]\n")
    monkeypatch.setattr(shell, "require_running", lambda _inst: None)
    monkeypatch.setattr(list_ops, "ssh_port", lambda _inst: 60022)
    argv = tunnel.tunnel_argv(inst, 1080)
    assert argv[-6:] == ["-N", "-D", "127.0.0.1:1080", "-p", "60022", "127.0.0.1"]
    assert not any("ControlMaster" in a for a in argv)
    with pytest.raises(UsageError, match="only `socks`"):
        tunnel.tunnel(inst, kind="http", socks_port=0, say=print)


def test_restart_stops_then_starts(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from limapy.ops import restart, start, stop

    calls: list[str] = []
    monkeypatch.setattr(stop, "stop", lambda inst, force, say: calls.append(f"stop force={force}") or True)
    monkeypatch.setattr(start, "start_instance", lambda inst, timeout, show: calls.append("start") or True)
    restart.restart(dummy("r"), force=True, show=lambda _m: None)
    assert calls == ["stop force=True", "start"]


def test_completion_names_are_the_instances(home: Path) -> None:
    from limapy.cli._util import complete_instances
    from limapy.ops.completion import instance_names

    for n in ("beta", "alpha", "alps"):
        dummy(n)
    (home / "notaninstance").mkdir()
    assert instance_names() == ["alpha", "alps", "beta"]
    assert complete_instances("al") == ["alpha", "alps"]


def test_template_url_and_yq(tmp_path: Path) -> None:
    from limapy.ops import template

    t = tmp_path / "t.yaml"
    t.write_text("cpus: 2\nimages: [{location: /a.img, arch: x86_64}]\nmounts: []\n")
    assert template.url(str(t)) == t.resolve().as_uri()
    assert template.url("https://e.x/t.yaml") == "https://e.x/t.yaml"
    assert template.yq(str(t), ".cpus") == "2\n"
    assert template.yq(str(t), ".images[0].location") == "/a.img\n"
    assert template.yq(str(t), ".missing") == "null\n"
    assert template.yq(str(t), ".mounts") == "[]\n"
    assert "cpus: 5\n" in template.yq(str(t), ".cpus = 5")
    with pytest.raises(UsageError):
        template.yq(str(t), "select(.cpus)")


def test_factory_reset_keeps_config_and_create_time_media(home: Path) -> None:
    from limapy.ops.factory_reset import kept

    inst = dummy("f")
    names = {p.name for p in kept(inst)}
    assert {"lima.yaml", "lima-version", "protected", "iso", "kernel", "initrd", "windows-product-key"} <= names
    assert not names & {"disk", "cidata.iso", "serial.log", "swtpm", "win-done-installation", "windows-password",
                        "ssh.config", "qemu-efi-vars.fd"}  # fmt: skip


def test_clone_keeps_no_boot_state(home: Path) -> None:
    from limapy.ops.clone import _kept

    names = {p.name for p in _kept(dummy("c"))}
    assert "qemu-efi-vars.fd" in names and "windows-password" in names
    assert not names & {"protected", "swtpm", "ssh.config", "cidata.iso", "lock", "ha.pid", "serial.log"}


def test_info_has_limas_keys(home: Path) -> None:
    from limapy.ops.info import host_info

    info = host_info()
    assert {"version", "templates", "defaultTemplate", "limaHome", "vmTypes", "vmTypesEx", "guestAgents",
            "hostOS", "hostArch", "identityFile", "plugins", "libexecPaths", "sharePaths"} <= info.keys()  # fmt: skip
    assert info["defaultTemplate"]["cpus"] and info["defaultTemplate"]["images"]
    assert info["vmTypesEx"]["qemu"]["location"] == "internal"
    assert "SSH_*" in info["shellEnvBlock"] and "HOME" in info["shellEnvBlock"]


def test_console_tail_shows_new_complete_lines_escaped(tmp_path: Path) -> None:
    from limapy.ops.start import ConsoleTail

    log = tmp_path / "serial.log"
    log.write_bytes(b"old boot line\n")
    tail = ConsoleTail(log)  # starts at the end: only this boot's output
    assert tail.lines() == []
    with open(log, "ab") as f:
        f.write(b"[    1.0] booting\r\n\x1b[0;32m  OK  \x1b[0m\npartial")
    assert tail.lines() == ["[    1.0] booting", "\\x1b[0;32m  OK  \\x1b[0m"]
    with open(log, "ab") as f:
        f.write(b" line\n")
    assert tail.lines() == ["partial line"]
    log.write_bytes(b"new\n")  # truncated by the next boot
    assert tail.lines() == ["new"]


@pytest.mark.parametrize(("plain", "master", "expected"), [
    (False, False, "ControlMaster=no"),  # the host agent's master is coming: use it once there, make none
    (False, True, "ControlMaster=auto"),
    (True, False, "ControlMaster=auto"),  # plain: no host agent master, the first shell makes one (as Lima)
])  # fmt: skip
def test_a_shell_does_not_race_the_host_agents_master(
    home: Path, monkeypatch: pytest.MonkeyPatch, plain: bool, master: bool, expected: str
) -> None:
    from limapy.ops import shell

    inst = store.create_instance_dir("m", {"lima.yaml": f"images: [{{location: /x.img, arch: x86_64}}]\nplain: "
                                                        f"{str(plain).lower()}\n".encode()})  # fmt: skip
    inst.ssh_config.write_text("Host lima-m\n  Port 60022\n")
    if master:
        inst.ssh_sock.write_text("")
    monkeypatch.setattr(shell, "require_running", lambda _inst, start=False: None)
    argv = shell.shell_argv(inst, shell.Request(command=("true",)))
    assert expected in argv, argv
