"""The ssh.config limapy writes is accepted by the real OpenSSH client and means what we intend."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from limapy import ssh
from limapy.config.model import Spec
from limapy.instance import store

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client is not installed")


def test_ssh_config_parses_with_real_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH", raising=False)
    ssh.openssh_version.cache_clear()
    inst = store.create_instance_dir("vm", {"lima.yaml": b""})
    key = tmp_path / "home" / "_config" / "user"
    cfg = {"os": "Linux", "user": {"name": "alice"}}
    ssh.write_ssh_config(inst, Spec.from_cfg(cfg), key, 60123)
    out = subprocess.run(
        ["ssh", "-G", "-F", str(inst.ssh_config), "lima-vm"], check=True, capture_output=True, text=True
    ).stdout
    conf = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        conf.setdefault(k, v)
    assert conf["hostname"] == "127.0.0.1"
    assert conf["port"] == "60123"
    assert conf["user"] == "alice"
    assert conf["identityfile"] == str(key)
    assert conf["controlpath"] == str(inst.ssh_sock)
    assert conf["controlmaster"] == "auto"
    assert conf["batchmode"] == "yes"
    assert conf["stricthostkeychecking"] == "false"
    assert conf["userknownhostsfile"] == "/dev/null"
    assert conf["identitiesonly"] == "yes"
    assert conf["loglevel"] == "ERROR"


def test_ssh_argv_options_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH", raising=False)
    ssh.openssh_version.cache_clear()
    inst = store.create_instance_dir("vm", {"lima.yaml": b""})
    argv = ssh.ssh_argv(inst, Spec.from_cfg({"user": {"name": "bob"}}), 2222, tty=False, script="true")
    sep = argv.index("--")
    g = subprocess.run([*argv[: sep - 1], "-G", argv[sep - 1]], check=True, capture_output=True, text=True)
    assert "user bob" in g.stdout.splitlines()
    assert "port 2222" in g.stdout.splitlines()


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_user_key_with_real_ssh_keygen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    key, pub = store.ensure_user_key()
    assert (key.stat().st_mode & 0o777) == 0o600
    assert (key.parent.stat().st_mode & 0o777) == 0o700
    assert pub.startswith("ssh-ed25519 ") and pub.endswith(" limapy")
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True)
    assert derived.stdout.split()[:2] == pub.split()[:2]
    assert store.ensure_user_key() == (key, pub)
