from __future__ import annotations

import base64
import shlex
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from limapy import ssh
from limapy.base import proc
from limapy.base.errors import NotFoundError, UsageError
from limapy.config.model import Spec
from limapy.instance import store

S = Spec.from_cfg

LINUX: dict[str, Any] = {"os": "Linux", "user": {"name": "alice", "shell": "/bin/bash"}, "mounts": []}
WINDOWS: dict[str, Any] = {"os": "Windows", "user": {"name": "lima", "shell": "cmd.exe"}}


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LIMAPY_HOME", str(home))
    monkeypatch.delenv("SSH", raising=False)
    monkeypatch.setattr(ssh, "openssh_version", lambda: (9, 2))
    monkeypatch.setattr(ssh, "_has_aes", lambda: True)
    return home


@pytest.fixture
def inst(env: Path) -> store.Instance:
    return store.create_instance_dir("vm", {"lima.yaml": b"images: []\n"})


def test_options_follow_lima(inst: store.Instance, env: Path) -> None:
    key = env / "_config" / "user"
    opts = ssh.ssh_options(inst, S(LINUX), key)
    assert opts == [
        ("IdentityFile", f'"{key}"'),
        ("StrictHostKeyChecking", "no"),
        ("UserKnownHostsFile", "/dev/null"),
        ("NoHostAuthenticationForLocalhost", "yes"),
        ("PreferredAuthentications", "publickey"),
        ("Compression", "no"),
        ("BatchMode", "yes"),
        ("IdentitiesOnly", "yes"),
        ("Ciphers", '"^aes128-gcm@openssh.com,aes256-gcm@openssh.com"'),
        ("User", "alice"),
        ("ControlMaster", "auto"),
        ("ControlPath", f'"{inst.dir}/ssh.sock"'),
        ("ControlPersist", "yes"),
        ("LogLevel", "ERROR"),
    ]
    no_cm = dict(ssh.ssh_options(inst, S(LINUX), key, control_master=False))
    assert not {"ControlMaster", "ControlPath", "ControlPersist"} & no_cm.keys()
    # ssh_config(5): "Additional sessions can connect to this socket using the same ControlPath with
    # ControlMaster set to no": a shell while the host agent's master is still coming uses one, makes none
    reuse = dict(ssh.ssh_options(inst, S(LINUX), key, reuse_only=True))
    assert reuse["ControlMaster"] == "no" and reuse["ControlPath"] == f'"{inst.dir}/ssh.sock"'
    assert "ControlPersist" not in reuse


def test_options_variants(inst: store.Instance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = {**LINUX, "ssh": {"forwardAgent": True, "forwardX11": True, "loadDotSSHPubKeys": True}}
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("k")
    (tmp_path / ".ssh" / "id_rsa.pub").write_text("k")
    (tmp_path / ".ssh" / "orphan.pub").write_text("k")
    opts = ssh.ssh_options(inst, S(cfg), tmp_path / "user")
    assert [v for k, v in opts if k == "IdentityFile"] == [f'"{tmp_path}/user"', f'"{tmp_path}/.ssh/id_rsa"']
    assert ("ForwardAgent", "yes") in opts and ("ForwardX11", "yes") in opts
    monkeypatch.setattr(ssh, "_has_aes", lambda: False)
    assert ("Ciphers", '"^chacha20-poly1305@openssh.com"') in ssh.ssh_options(inst, S(LINUX), tmp_path / "u")
    monkeypatch.setattr(ssh, "openssh_version", lambda: (8, 0))
    old = dict(ssh.ssh_options(inst, S(LINUX), tmp_path / "u"))
    assert "Ciphers" not in old and old["LogLevel"] == "QUIET"


def test_path_with_quote_refused(env: Path) -> None:
    bad = store.Instance('a"b', env / 'a"b')
    with pytest.raises(UsageError):
        ssh.ssh_options(bad, S(LINUX), env / "k")


def test_ssh_config_file(inst: store.Instance, env: Path) -> None:
    key = env / "_config" / "user"
    path = ssh.write_ssh_config(inst, S(LINUX), key, 60022)
    assert path == inst.dir / "ssh.config"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[2] == "Host lima-vm"
    assert f'  IdentityFile "{key}"' in lines
    assert "  User alice" in lines
    assert lines[-2:] == ["  Hostname 127.0.0.1", "  Port 60022"]


def test_ssh_argv(inst: store.Instance, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ssh.ssh_argv(inst, S(LINUX), 2222, tty=True, script="true")
    assert argv[:3] == ["ssh", "-F", "/dev/null"]
    assert f'IdentityFile="{env}/_config/user"' in argv
    assert argv[-6:] == ["SendEnv=COLORTERM", "-p", "2222", "127.0.0.1", "--", "true"]
    assert "-t" in argv
    plain = ssh.ssh_argv(inst, S(LINUX), 2222, tty=False, script="true", control_master=False, connect_timeout=5)
    assert "-T" in plain and "-t" not in plain
    assert "ConnectTimeout=5" in plain
    assert not [a for a in plain if a.startswith("Control")]
    monkeypatch.setenv("SSH", "/opt/ssh -v")
    assert ssh.ssh_argv(inst, S(LINUX), 1, tty=False, script="x")[:2] == ["/opt/ssh", "-v"]


def inner(script: str) -> list[str]:
    """The argv the guest's shell -c would see."""
    words = shlex.split(script)
    return shlex.split(words[words.index("-c") + 1])


def test_linux_shell_no_mounts(tmp_path: Path) -> None:
    assert ssh.shell_script(S(LINUX), [], cwd=tmp_path, host_home=tmp_path) == "false ; exec /bin/bash -l"
    s = ssh.shell_script(S(LINUX), ["uname", "-s"], cwd=tmp_path, host_home=tmp_path)
    assert s == "false ; exec /bin/bash -l -c 'uname -s'"
    s = ssh.shell_script(S(LINUX), ["sh", "-c", "exit 7"])
    assert inner(s) == ["sh", "-c", "exit 7"]
    s = ssh.shell_script(S(LINUX), ["echo", "it's", "$HOME", "a;b"])
    assert inner(s) == ["echo", "it's", "$HOME", "a;b"]


def test_linux_shell_env_args_and_shell_choice() -> None:
    s = ssh.shell_script(S(LINUX), ["FOO=a b", "BAR=1", "env", "X=not-env"])
    assert inner(s) == ["FOO=a b", "BAR=1", "env", "X=not-env"]
    assert "FOO='a b'" in shlex.split(s)[-1]
    s = ssh.shell_script(S({"os": "Linux", "user": {}}), [])
    assert s.endswith("exec $SHELL -l")
    s = ssh.shell_script(S(LINUX), [], shell="/bin/my shell")
    assert s.endswith("exec '/bin/my shell' -l")
    s = ssh.shell_script(S(LINUX), ["id"], env={"A": "x y"})
    assert "exec env A='x y' /bin/bash -l -c id" in s


def test_linux_shell_cwd_logic(tmp_path: Path) -> None:
    home = tmp_path / "h"
    proj = home / "src" / "p q"
    assert ssh.shell_script(S(LINUX), [], workdir="/tmp/a b").startswith("cd '/tmp/a b' || exit 1 ; exec")
    mounted = {**LINUX, "mounts": [{"location": str(home), "writable": True}]}
    s = ssh.shell_script(S(mounted), [], cwd=proj, host_home=home)
    assert s.startswith(f"cd '{proj}' || cd {home} ; exec /bin/bash -l")
    s = ssh.shell_script(S(mounted), [], cwd=Path("/opt"), host_home=home)
    assert s.startswith(f"cd {home} ; exec")
    other = {**LINUX, "mounts": [{"location": str(tmp_path / "data")}]}
    assert ssh.shell_script(S(other), [], cwd=Path("/opt"), host_home=home).startswith("false ; ")
    s = ssh.shell_script(S(other), [], cwd=tmp_path / "data" / "x", host_home=home)
    assert s.startswith(f"cd {tmp_path}/data/x || cd {home} ;")


def test_windows_cmd() -> None:
    assert ssh.shell_script(S(WINDOWS), []) == "cmd.exe"
    assert ssh.shell_script(S(WINDOWS), ["ver"]) == "ver"
    assert ssh.shell_script(S(WINDOWS), ["dir", "C:\\Program Files"]) == 'dir ^"C:\\Program Files^"'
    assert ssh.shell_script(S(WINDOWS), ["cd"], workdir="C:\\Users") == 'cd /d ^"C:\\Users^" && cd'
    assert ssh.shell_script(S({"os": "Windows"}), ["echo", "a&b"]) == "echo a^&b"


def decode_ps(script: str) -> str:
    return base64.b64decode(script.split()[-1]).decode("utf-16-le")


def test_windows_powershell() -> None:
    s = ssh.shell_script(S(WINDOWS), ["Write-Output", "'a \"b\" & c'"], shell="powershell.exe")
    assert s.startswith("powershell.exe -NoLogo -EncodedCommand ")
    assert decode_ps(s) == "Write-Output 'a \"b\" & c'"
    s = ssh.shell_script(S(WINDOWS), ["exit", "7"], shell="pwsh.exe", workdir="C:\\it's")
    assert s.startswith("pwsh.exe ")
    assert decode_ps(s) == "Set-Location -LiteralPath 'C:\\it''s'; exit 7"
    assert ssh.shell_script(S(WINDOWS), [], shell="powershell.exe") == "powershell.exe"
    s = ssh.shell_script(S(WINDOWS), [], shell="powershell.exe", workdir="D:\\")
    assert "-NoExit" in s
    with pytest.raises(UsageError, match="cannot be used with a Windows guest"):
        ssh.shell_script(S(WINDOWS), ["x"], shell="/bin/bash")


class FakeRun:
    def __init__(self, rc: int = 0) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.rc = rc

    def __call__(self, argv: Sequence[str | Path], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        args = [str(a) for a in argv]
        self.calls.append((args, kw))
        return subprocess.CompletedProcess(args, self.rc, b"out", b"")


def test_run_and_execute_script(inst: store.Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(rc=7)
    monkeypatch.setattr(proc, "run", fake)
    cp = ssh.run(inst, S(LINUX), 2222, "test -f /run/lima-boot-done", 30, control_master=False)
    assert cp.returncode == 7
    argv, kw = fake.calls[-1]
    assert argv[-1] == "test -f /run/lima-boot-done" and argv[-3:-1] == ["127.0.0.1", "--"]
    assert kw["check"] is False and kw["timeout"] == 30 and kw["input"] == b""
    assert not [a for a in argv if a.startswith("ControlMaster")]
    ssh.execute_script(inst, S(LINUX), 2222, "#!/bin/sh -eu\ntrue\n")
    argv, kw = fake.calls[-1]
    assert argv[-1] == "/bin/sh -eu" and kw["input"] == b"#!/bin/sh -eu\ntrue\n"
    with pytest.raises(UsageError, match="#!"):
        ssh.execute_script(inst, S(LINUX), 2222, "true\n")


def test_control_master_exit(inst: store.Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun()
    monkeypatch.setattr(proc, "run", fake)
    ssh.control_master_exit(inst)
    assert fake.calls == []
    inst.ssh_sock.write_text("")
    ssh.control_master_exit(inst)
    assert fake.calls[0][0][-3:] == ["-O", "exit", "127.0.0.1"]


def test_scp_argv(env: Path) -> None:
    a = store.create_instance_dir("windows", {"lima.yaml": b""})
    store.create_instance_dir("ubuntu", {"lima.yaml": b""})
    argv = ssh.scp_argv(["./f.txt", "win:C:/Users/lima/"])
    assert argv == ["scp", "-F", str(a.ssh_config), "-q", "--", "./f.txt", "lima-windows:C:/Users/lima/"]
    argv = ssh.scp_argv(["ubuntu:/etc/os-release", "/tmp/x:y"], recursive=True)
    assert argv[-2:] == ["lima-ubuntu:/etc/os-release", "/tmp/x:y"] and "-r" in argv
    with pytest.raises(UsageError, match="two instances"):
        ssh.scp_argv(["ubuntu:/a", "windows:/b"])
    with pytest.raises(UsageError, match="INSTANCE:path"):
        ssh.scp_argv(["a", "b"])
    with pytest.raises(NotFoundError):
        ssh.scp_argv(["a", "nosuch:/b"])
