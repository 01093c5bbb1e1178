"""A resumed clone's own identity (issue 29, GuestOS.clone_identity): the Linux script run for real against a
stand-in root (its /etc paths moved under a temp dir, `hostname` and `systemctl` recorded), the host keys it is
given checked with OpenSSH's own ssh-keygen, and the Windows step parsed with PowerShell's grammar.

Evidence for the Windows step (docs/windows.md, "Suspended clones"): stopping Win32-OpenSSH's sshd service leaves
open sessions running, by design as on Unix (PowerShell/Win32-OpenSSH issues #1168 and #1681), so the host agent's
session survives the restart; the key steps are boot.ps1's Reset-SshHostKeys (tests/unit/test_windows_clone.py)."""

from __future__ import annotations

import base64
import io
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from limapy import guest
from limapy.guest.linux import identity
from limapy.guest.windows import resumeid
from tests import psgrammar

OLD = "lima-base"


LISTEN = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" \
         "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {} 1\n"
#: a stand-in sshd listener: on SIGHUP (a reload) it listens on a new socket (a new inode in /proc/net/tcp)
FAKE_SSHD = "import signal, sys, time\n" \
            "def hup(*_):\n    open(sys.argv[1], 'w').write(sys.argv[2]); sys.exit(0)\n" \
            "signal.signal(signal.SIGHUP, hup)\nprint('ready', flush=True)\ntime.sleep(60)\n"


def _stand_in_root(tmp_path: Path, *, split: bool = False) -> tuple[Path, dict[str, str], subprocess.Popen[bytes]]:
    """A guest's files under a temp dir; `split`: an OpenSSH >= 9.8 (sshd-session beside sshd)."""
    root = tmp_path / "root"
    for d in ("etc/ssh", "var/lib/dbus", "proc/sys/kernel", "proc/net", "run", "usr/lib/openssh"):
        (root / d).mkdir(parents=True)
    (root / "proc/sys/kernel/hostname").write_text(OLD + "\n")
    (root / "etc/hostname").write_text(OLD + "\n")
    (root / "etc/hosts").write_text(f"# cloud-init\n127.0.1.1 {OLD} {OLD}\n127.0.0.1 localhost {OLD}2\n")
    (root / "etc/machine-id").write_text("0" * 32 + "\n")
    (root / "var/lib/dbus/machine-id").write_text("0" * 32 + "\n")
    for kind in ("rsa", "ed25519", "dsa"):
        (root / f"etc/ssh/ssh_host_{kind}_key").write_text("old")
        (root / f"etc/ssh/ssh_host_{kind}_key.pub").write_text("old")
    (root / "etc/ssh/sshd_config").write_text("kept\n")
    tcp = root / "proc/net/tcp"
    tcp.write_text(LISTEN.format(1111))
    if split:
        (root / "usr/lib/openssh/sshd-session").write_text("#!/bin/sh\n")
        (root / "usr/lib/openssh/sshd-session").chmod(0o755)
    sshd = subprocess.Popen([sys.executable, "-c", FAKE_SSHD, str(tcp), LISTEN.format(2222)], stdout=subprocess.PIPE)
    assert sshd.stdout is not None and sshd.stdout.readline() == b"ready\n"  # its SIGHUP handler is set
    (root / "run/sshd.pid").write_text(f"{sshd.pid}\n")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "systemctl").write_text(f"#!/bin/sh\necho \"systemctl $*\" >>{tmp_path / 'calls'}\n"
                                    f"kill -HUP {sshd.pid}\n")  # fmt: skip
    (bin_ / "systemctl").chmod(0o755)
    (bin_ / "date").write_text(f"#!/bin/sh\necho \"date $*\" >>{tmp_path / 'clock'}\n")  # never the host's clock
    (bin_ / "date").chmod(0o755)
    return root, {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}, sshd


def _body(command: str, root: Path | None = None) -> str:
    words = shlex.split(command)
    assert words[:4] == ["sudo", "-n", "sh", "-c"] and words[5:] == ["limapy-identity"], words
    body = words[4]
    for top in ("/etc/", "/var/lib/", "/proc/", "/run/", "/usr/") if root else ():
        body = body.replace(top, f"{root}{top}")
    return body


def _run(given: identity.CloneIdentity, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    assert given.sets_clock  # the host agent appends its time: the script's $1
    return subprocess.run(["sh", "-c", _body(given.command, root), "limapy-identity", "1796630000.250"],
                          input=given.stdin, env=env, capture_output=True, timeout=60, check=False)  # fmt: skip


@pytest.mark.skipif(shutil.which("ssh-keygen") is None or shutil.which("tar") is None, reason="needs OpenSSH, tar")
def test_linux_identity_runs_and_gives_hostname_machine_id_and_host_keys(tmp_path: Path) -> None:
    given = identity.identity("w1", machine_id="ab" * 16)
    assert given.what == "hostname lima-w1, a new machine-id and SSH host keys"
    assert b"OPENSSH PRIVATE KEY" not in given.command.encode()  # the keys come on stdin only
    root, env, sshd = _stand_in_root(tmp_path)
    cp = _run(given, root, env)
    assert cp.returncode == 0, cp.stderr
    # OpenSSH < 9.8: each connection's re-executed sshd reads the new keys; the listener is left alone
    assert sshd.poll() is None and not (tmp_path / "calls").exists()
    sshd.kill()
    assert (tmp_path / "clock").read_text() == "date -u -s @1796630000.250\n"  # the clock first, as root
    assert (root / "proc/sys/kernel/hostname").read_text() == "lima-w1"
    assert (root / "etc/hostname").read_text() == "lima-w1\n"
    assert (root / "etc/hosts").read_text() == (
        "# cloud-init\n127.0.1.1 lima-w1 lima-w1\n127.0.0.1 localhost lima-base2\n"
    )  # whole names only, adjacent ones too
    assert (root / "etc/machine-id").read_text() == "ab" * 16 + "\n"
    assert (root / "var/lib/dbus/machine-id").read_text() == "ab" * 16 + "\n"
    ssh = root / "etc/ssh"
    assert sorted(p.name for p in ssh.glob("ssh_host_*")) == sorted(
        f"ssh_host_{k}_key{pub}" for k in identity.KEY_TYPES for pub in ("", ".pub")
    )  # the old ones (dsa too) gone
    assert (ssh / "sshd_config").read_text() == "kept\n" and stat.S_IMODE(ssh.stat().st_mode) == 0o755
    for kind in identity.KEY_TYPES:
        private, public = ssh / f"ssh_host_{kind}_key", ssh / f"ssh_host_{kind}_key.pub"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600 and stat.S_IMODE(public.stat().st_mode) == 0o644
        derived = subprocess.run(["ssh-keygen", "-y", "-f", private], capture_output=True, text=True, check=True)
        assert derived.stdout.split()[:2] == public.read_text().split()[:2], kind  # OpenSSH reads the key
        assert public.read_text().endswith(" root@lima-w1\n")


@pytest.mark.parametrize("pid_file", [True, False])
def test_a_split_sshd_is_reloaded_and_listens_again_before_it_returns(tmp_path: Path, pid_file: bool) -> None:
    """OpenSSH >= 9.8 hands the listener's keys to sshd-session: SIGHUP (systemctl without a pid file), then the
    script returns only once port 22 listens on a new socket."""
    root, env, sshd = _stand_in_root(tmp_path, split=True)
    if not pid_file:
        (root / "run/sshd.pid").unlink()
    cp = _run(identity.identity("w1"), root, env)
    assert cp.returncode == 0, cp.stderr
    assert sshd.wait(10) == 0  # it got SIGHUP and "listens" anew
    assert (root / "proc/net/tcp").read_text() == LISTEN.format(2222)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    assert calls == ([] if pid_file else ["systemctl --no-block try-reload-or-restart ssh.service sshd.service"])


def test_each_clone_gets_keys_of_its_own() -> None:
    a, b = identity.identity("w1"), identity.identity("w1")
    assert a.stdin != b.stdin and _body(a.command) != _body(b.command)  # new keys and machine-id each time
    with tarfile.open(fileobj=io.BytesIO(a.stdin)) as tar:
        names = {m.name: (m.mode, m.isfile()) for m in tar.getmembers()}
        rsa = tar.extractfile("ssh_host_rsa_key.pub")
        assert rsa is not None and rsa.read().startswith(b"ssh-rsa ")
    assert names == {f"ssh_host_{k}_key{pub}": (0o644 if pub else 0o600, True)
                     for k in identity.KEY_TYPES for pub in ("", ".pub")}  # fmt: skip


def test_windows_identity_is_host_keys_made_in_the_guest_and_sshd_always_restarted() -> None:
    given = guest.load("Windows").clone_identity(None, "w1")  # type: ignore[arg-type]
    assert given is not None and given.stdin == b"" and "computer name stays" in given.what
    assert given.command.startswith("PowerShell.exe -NoProfile -NonInteractive -EncodedCommand ")
    script = base64.b64decode(given.command.rsplit(" ", 1)[1]).decode("utf-16-le")
    assert script == resumeid.SCRIPT and psgrammar.errors(script) == []
    stop, remove = script.index("Stop-Service -Name sshd"), script.index("Remove-Item -Force")
    keygen, start = script.index("& $keygen -A"), script.index("} finally {\n  Start-Service -Name sshd")
    assert stop < remove < keygen < start
    assert "/inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F'" in script  # sshd's host-key ACL
