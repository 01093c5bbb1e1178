"""Hardening, injection and bad input: validators that mean the whole string, YAML any parser reads, QEMU
option values that stay values, bounded reads, what `start` would refuse refused by `create`, ssh configs
that say what they mean, no silently ignored fields, and messages that are one `limapy:` line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.instance import store
from tests.security.conftest import REPO, instances, limapy, one_error, qcow2, template

S = Spec.from_cfg

# --- 6. validators refuse "x\n" ----------------------------------------------------------------------------


def test_every_name_and_key_validator_refuses_a_trailing_newline(home: Path) -> None:
    from limapy.config import idents, validate
    from limapy.guest.linux.seed import _env_lines

    with pytest.raises(LimapyError):
        store.validate_name("x\n")
    assert idents.validate_identifier("x\n") is not None
    assert idents.DIGEST_RE.fullmatch("sha256:" + "a" * 64 + "\n") is None
    assert idents.validate_digest("sha256:" + "a" * 64 + "\n") is not None
    problems = validate.validate({"os": "Linux", "arch": "x86_64", "vmType": "qemu", "images": [{"location": "/x"}],
                                  "cpus": 1, "memory": "1GiB", "disk": "1GiB", "mountType": "9p",
                                  "param": {"x\n": "v"}, "additionalDisks": [{"name": "d\n"}]})
    assert any("param" in p.message for p in problems) and any("additionalDisks" in p.message for p in problems)
    for what in ("param", "env"):
        with pytest.raises(LimapyError, match="not a valid environment variable name"):
            _env_lines({"x\n": "v"}, what)
    from limapy.base import units

    with pytest.raises(ValueError):
        units.parse_size("4GiB\n")


def test_newline_instance_name_creates_nothing(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    err = one_error(limapy("create", "--name", "evil\n", str(template(tmp_path, str(img)))))
    assert "evil\\n" in err  # shown escaped: the error stays one line
    assert instances(home) == []
    (home / "evil\n").mkdir()  # made by hand: not listed (it would split the table)
    (home / "evil\n" / "lima.yaml").write_text("images: [{location: /x}]\n")
    cp = limapy("list")
    assert "evil" not in cp.stdout + cp.stderr


# --- 7. non-BMP characters in user.comment -------------------------------------------------------------------


def test_emoji_gecos_gives_user_data_every_parser_reads(tmp_path: Path) -> None:
    import yaml

    from limapy.guest.linux.seed import build_seed

    cfg: dict[str, Any] = {
        "os": "Linux", "arch": "x86_64", "mountType": "9p", "plain": False, "mounts": [], "provision": [],
        "param": {}, "env": {},
        "user": {"name": "alice", "comment": "Alice \U0001F600 O\u2019Neil \u00e9", "uid": 1000,
                 "home": "/home/alice.guest", "shell": "/bin/bash"},
    }
    files = build_seed(Spec.from_cfg(cfg), name="a", iid="iid-1", ssh_pubkeys=["ssh-ed25519 AAAA k"],
                       mac="52:55:55:00:00:01")
    text = files["user-data"].decode("utf-8")
    assert "\\ud83d" not in text.lower()  # JSON's surrogate pairs are no YAML
    data = yaml.load(text, Loader=yaml.CSafeLoader)  # libyaml, a C parser
    assert data["users"][0]["gecos"] == cfg["user"]["comment"]
    if shutil.which("cloud-init"):
        f = tmp_path / "user-data"
        f.write_bytes(files["user-data"])
        cp = subprocess.run(["cloud-init", "schema", "--config-file", str(f)], capture_output=True, text=True)
        assert cp.returncode == 0, cp.stdout + cp.stderr


# --- 8. 9p option values stay values -------------------------------------------------------------------------


def test_9p_security_model_cannot_add_qemu_options(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    hostile = "9p: {securityModel: 'none,path=/,readonly=off'}"
    t = template(tmp_path, str(img), f"mounts: [{{location: '{tmp_path}', {hostile}}}]\n")
    err = one_error(limapy("validate", str(t)))
    assert "9p.securityModel` must be one of [passthrough mapped-xattr mapped-file none]" in err
    from limapy.qemu.cmdline import qemu_opt

    assert qemu_opt("a,b=c") == "a,,b=c"


def test_display_cannot_open_vnc_to_the_network(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    for extra in ("video: {display: 'vnc=0.0.0.0:0'}\n",
                  "video: {display: vnc, vnc: {display: '127.0.0.1:0,password=off'}}\n"):
        err = one_error(limapy("create", "--name", "v", str(template(tmp_path, str(img), extra))))
        assert "127.0.0.1" in err or "not a local display" in err
        assert instances(home) == []


# --- 10. bounded input ---------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_validate_dev_zero_is_one_line_fast(home: Path) -> None:
    t0 = time.monotonic()
    err = one_error(limapy("validate", "/dev/zero"))
    assert "character device" in err and time.monotonic() - t0 < 10
    err = one_error(limapy("validate", "-", input=None, env={}))  # empty stdin: no images
    assert "images" in err


def test_directory_fifo_and_big_files_get_their_own_message(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "is a FIFO" in one_error(limapy("validate", str(fifo)))
    assert "is a directory" in one_error(limapy("validate", str(tmp_path)))
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # sparse: 2 GiB of nothing, never read whole
    t0 = time.monotonic()
    assert "larger than 4 MiB" in one_error(limapy("validate", str(big)))
    assert time.monotonic() - t0 < 10
    base = tmp_path / "b.yaml"
    base.write_text("base: /dev/zero\n")
    assert "character device" in one_error(limapy("create", "--name", "z", str(base)))
    assert instances(home) == []


# --- 11. what start refuses, create refuses first -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", '.user.name = "bob\\nroot"'], "control character"),
        (["--set", '.user.home = "/home/x\\ny"'], "control character"),
        (["--set", '.user.shell = "/bin/sh\\n"'], "control character"),
        (["--set", '.user.name = "root"'], 'field `user.name` must not be "root"'),
        (["--disk", "0"], "field `disk` is 0B"),
        (["--set", '.provision = [{mode: yq, path: /etc/x, expression: "load(\\"/etc/passwd\\")"}]'],
         "limapy's yq cannot run it: load(...) is not supported"),
        (["--cpus", "10000"], "at most 288"),
        (["--memory", "0"], "at least 64MiB"),
        (["--memory", "1e30"], "more than this host's"),
        (["--set", ".cpus = " + "9" * 5000], "cannot be read"),
        (["--set", ".additionalDisks = [nosuch]"], "additional disk `nosuch` does not exist"),
    ],
    ids=["name-nl", "home-nl", "shell-nl", "root", "disk0", "yq", "cpus", "mem0", "mem1e30", "bigint", "nosuch"],
)
def test_create_refuses_what_start_would(home: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    cp = limapy("create", "--name", "a", *args, str(template(tmp_path, str(img))))
    err = one_error(cp)
    assert needle in err, cp.stderr
    assert "internal error" not in err
    assert instances(home) == []


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("", None),
        ("user: {name: root}\n", 'field `user.name` must not be "root"'),
        ('user: {name: "bob\\nx"}\n', "field `user.name` 'bob\\nx' holds a control character"),
        ('user: {home: "/home/x\\ny"}\n', "field `user.home` '/home/x\\ny' holds a control character"),
        ('user: {shell: "/bin/sh\\n"}\n', "field `user.shell` '/bin/sh\\n' holds a control character"),
        ("disk: 0\n", "field `disk` is 0B: a guest disk needs at least 1MiB"),
        ("disk: 1KiB\n", "field `disk` is 1KiB"),
        ("memory: 0\n", "field `memory` is 0B: a guest needs at least 64MiB"),
        ('provision: [{mode: yq, path: /etc/x, expression: \'load("/etc/passwd")\'}]\n',
         "field `provision[0].expression`: limapy's yq cannot run it: load(...) is not supported"),
        ("cpus: 10000\n", "field `cpus` is 10000: QEMU's x86_64 machine takes at most 288"),
    ],
    ids=["ok", "root", "name-nl", "home-nl", "shell-nl", "disk0", "disk1k", "mem0", "yq", "cpus"],
)
def test_validate_refuses_what_start_would(home: Path, tmp_path: Path, extra: str, needle: str | None) -> None:
    """What no host could boot is refused by `validate` (exit 1), at the field's line, as `create` refuses it."""
    t = template(tmp_path, "/x.img", extra)
    cp = limapy("validate", str(t))
    if needle is None:
        assert cp.returncode == 0 and cp.stdout == f"{t}: OK\n", cp.stderr
        return
    err = one_error(cp)
    assert cp.returncode == 1
    assert err.startswith(f"limapy: {t}:5:") and needle in err, err  # line 5 sets it


def test_limapy_home_with_a_quote(tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    odd = tmp_path / 'h"ome'
    cp = limapy("create", "--name", "a", str(template(tmp_path, str(img))), env={"LIMAPY_HOME": str(odd)})
    assert "ssh's config cannot carry" in one_error(cp)
    assert not (odd / "a").exists()


# --- 12. ssh.config says what it means ------------------------------------------------------------------------


def test_ssh_config_quotes_a_user_with_spaces(tmp_path: Path) -> None:
    from limapy import ssh

    inst = store.Instance("w", tmp_path / "w")
    inst.dir.mkdir()
    text = ssh.render_ssh_config(inst, ssh.ssh_options(inst, S({"user": {"name": "John Smith"}}), tmp_path / "k"), 2222)
    assert '  User "John Smith"' in text
    f = tmp_path / "ssh.config"
    f.write_text(text)
    cp = subprocess.run(["ssh", "-G", "-F", str(f), "lima-w"], capture_output=True, text=True, check=True)
    assert "user John Smith" in cp.stdout.splitlines()
    with pytest.raises(LimapyError, match="cannot be written into an ssh config"):
        ssh.ssh_options(inst, S({"user": {"name": 'a"b'}}), tmp_path / "k")


# --- 14. no silently ignored fields ---------------------------------------------------------------------------


def test_ca_certs_dns_and_hosts_reach_the_seed(tmp_path: Path) -> None:
    import yaml

    from limapy.guest.linux.seed import build_seed

    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    cert_file = tmp_path / "ca.pem"
    cert_file.write_text(pem.replace("MIIB", "MIIC"))
    cfg: dict[str, Any] = {
        "os": "Linux", "arch": "x86_64", "mountType": "9p", "plain": False, "mounts": [], "provision": [],
        "param": {}, "env": {}, "user": {"name": "alice", "uid": 1000, "home": "/home/a", "shell": "/bin/bash"},
        "caCerts": {"removeDefaults": False, "certs": [pem], "files": [str(cert_file)]},
        "dns": ["1.1.1.1", "2606:4700:4700::1111"],
        "hostResolver": {"enabled": False, "hosts": {"db.local": "10.0.0.5"}},
    }
    files = build_seed(Spec.from_cfg(cfg), name="a", iid="i", ssh_pubkeys=["ssh-ed25519 AAAA k"],
                       mac="52:55:55:00:00:01")
    ud = yaml.safe_load(files["user-data"])
    assert ud["ca_certs"] == {"remove_defaults": False, "trusted": [pem, pem.replace("MIIB", "MIIC")]}
    net = yaml.safe_load(files["network-config"])
    assert net["ethernets"]["eth0"]["nameservers"]["addresses"] == ["1.1.1.1", "2606:4700:4700::1111"]
    assert net["ethernets"]["eth0"]["dhcp4-overrides"]["use-dns"] is False
    assert files["etc_hosts"] == b"10.0.0.5 db.local\n"
    if shutil.which("cloud-init"):
        (tmp_path / "ud").write_bytes(files["user-data"])
        cp = subprocess.run(["cloud-init", "schema", "--config-file", str(tmp_path / "ud")], capture_output=True,
                            text=True)
        assert cp.returncode == 0, cp.stdout + cp.stderr


# --- 15. messages ---------------------------------------------------------------------------------------------


def test_set_errors_are_blamed_on_the_flag(home: Path, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "img.qcow2")
    t = template(tmp_path, str(img))
    err = one_error(limapy("create", "--name", "a", "--set", '.mountType = "nfs"', str(t)))
    assert err.startswith("limapy: --set '.mountType = \"nfs\"': field `mountType`"), err
    assert f"{t}:1:1" not in err


def test_multi_line_errors_are_one_line_plus_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    from limapy.cli import report

    report(LimapyError("QEMU exited during start-up:\nqemu: -device foo: not found\nqemu: bye", hint="see\nthe log"))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["limapy: QEMU exited during start-up: qemu: -device foo: not found | qemu: bye",
                     "limapy: hint: see the log"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_and_sigterm_are_one_line(home: Path, tmp_path: Path, sig: int, code: int, word: str) -> None:
    """A create that is waiting (a slow server) is stopped by Ctrl-C / SIGTERM: one line, its exit code, and
    its half-made instance dir removed."""
    from tests.security.conftest import Server

    server = Server()
    try:
        url = server.add("/slow.img", b"x" * 10_000, trickle=0.01)
        t = template(tmp_path, url)
        p = subprocess.Popen([sys.executable, "-m", "limapy", "create", "--name", "s", str(t)],
                             env=dict(os.environ, PYTHONPATH=str(REPO)), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while server.bytes_sent < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    assert p.returncode == code, err
    assert err.strip().splitlines()[-1] == f"limapy: {word}" and "Traceback" not in err
    assert instances(home) == [] and not list(home.glob(".s.tmp-*"))


# --- 9. Windows `shell --workdir` stays one argument of cd ------------------------------------------------------


def test_windows_workdir_cannot_run_commands() -> None:
    from limapy import ssh
    from tests.unit.test_windows_quoting import WINDOWS, cmd_line

    with pytest.raises(LimapyError, match="not a Windows path"):
        ssh.shell_script(S(WINDOWS), ["ver"], workdir='C:\\x" & calc & "')  # was: cd /d "C:\x" & calc & ""
    s = ssh.shell_script(S(WINDOWS), ["ver"], workdir="C:\\a & calc (x) %PATH% ^ !y!")
    cd, rest = s.split(" && ")
    assert cmd_line(cd) == 'cd /d "C:\\a & calc (x) %PATH% ^ !y!"' and cmd_line(rest) == "ver"
