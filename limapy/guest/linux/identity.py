"""A resumed clone's own identity on Linux (issue 29): it woke up as its source, with the source's hostname,
`/etc/machine-id` and SSH host keys; before it is called ready the host agent runs this once over SSH.

- the hostname Lima gives the instance (`lima-NAME`): /etc/hostname and the kernel's (/proc/sys/kernel/hostname;
  hostnamectl would first start systemd-hostnamed over D-Bus, seconds under emulation, for the same effect); the
  old name's whole fields in /etc/hosts become the new one (cloud-init wrote them);
- a new machine-id, chosen on the host (systemd-machine-id-setup would take the VM's SMBIOS UUID when there is one,
  the same in every clone of one saved machine); /var/lib/dbus/machine-id follows when it is a file of its own;
- new SSH host keys (ed25519, ECDSA P-256, RSA 3072: ssh-keygen -A's set), made on the host with `cryptography`
  (paramiko's own dependency) while the clone resumes: an RSA key takes seconds in an emulated guest and
  milliseconds here. They exist only in this process's memory and reach the guest as a tar archive on the SSH
  channel's stdin, never on a command line or in a host file. An OpenSSH before 9.8 needs nothing more: each
  connection's re-executed sshd loads the host keys from their files (sshd.c's main(), after
  recv_rexec_state). From 9.8 the listener loads them and hands them to `sshd-session`: when that program is
  there, sshd is sent SIGHUP as ssh.service's ExecReload does (systemctl without waiting when there is no pid
  file), and the script waits until port 22 listens on a new socket (a connection in between would be reset).
  Sessions already open (the host agent's) stay up either way. limapy's SSH config does not pin host keys
  (StrictHostKeyChecking=no on 127.0.0.1, as Lima), so the new keys need nothing on the host.

The clock is set here too, first (`sets_clock`: one `sudo` fewer than a separate step, which counts when three
clones resume together on two cores): the host's time is the script's argument (limapy.guest.linux.clock says
why a resumed guest needs it).
"""

from __future__ import annotations

import io
import secrets
import shlex
import tarfile
import time

from limapy.base.names import hostname_for
from limapy.guest.identity import CloneIdentity

#: the host key types made (ssh-keygen -A's set), as /etc/ssh/ssh_host_<type>_key names them
KEY_TYPES = ("ed25519", "ecdsa", "rsa")

# Every program a guest runs costs it a translation under emulation, most of a second for the first run of a
# large one (systemctl, awk) while three clones resume on two cores: the shell's builtins do what they can (the
# hostname as a whole field of /etc/hosts: the lines that name it are rebuilt field by field, single-spaced),
# and the keys arrive as one tar archive on stdin, replacing the files of the same names (others are removed).
_SCRIPT = """set -eu
date -u -s "@$1" >/dev/null
new={new}
read -r old </proc/sys/kernel/hostname
printf '%s\\n' "$new" >/etc/hostname
printf '%s' "$new" >/proc/sys/kernel/hostname
if [ -f /etc/hosts ] && [ "$old" != "$new" ]; then
  set -f
  out= changed=
  while IFS= read -r line || [ -n "$line" ]; do
    case " $line " in
      *[[:space:]]"$old"[[:space:]]*)
        words=
        for w in $line; do
          if [ "$w" = "$old" ]; then w=$new; fi
          words="${{words:+$words }}$w"
        done
        line=$words changed=1 ;;
    esac
    out="$out$line
"
  done </etc/hosts
  if [ -n "$changed" ]; then printf '%s' "$out" >/etc/hosts; fi
  set +f
fi
printf '%s\\n' {machine_id} >/etc/machine-id
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
  printf '%s\\n' {machine_id} >/var/lib/dbus/machine-id
fi
for f in /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub; do
  case "$f" in
    */ssh_host_ed25519_key* | */ssh_host_ecdsa_key* | */ssh_host_rsa_key*) ;;  # replaced by the archive
    *) if [ -e "$f" ]; then rm -f "$f"; fi ;;
  esac
done
tar -x -f - -C /etc/ssh --no-same-owner --no-overwrite-dir {members}
split=
for f in /usr/lib/openssh/sshd-session /usr/libexec/openssh/sshd-session /usr/libexec/sshd-session \\
         /usr/lib/ssh/sshd-session; do
  if [ -x "$f" ]; then split=1; fi
done
[ -n "$split" ] || exit 0
listener() {{
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    while read -r _ local _ st _ _ _ _ _ inode _; do
      case "$local $st" in *:0016\\ 0A) echo "$inode"; return 0 ;; esac
    done <"$f"
  done
}}
before=$(listener)
if [ -r /run/sshd.pid ] && read -r pid </run/sshd.pid && kill -HUP "$pid" 2>/dev/null; then :
else systemctl --no-block try-reload-or-restart ssh.service sshd.service 2>/dev/null || true
fi
n=0
while [ "$n" -lt 100 ]; do
  now=$(listener)
  if [ -n "$now" ] && [ "$now" != "$before" ]; then exit 0; fi
  sleep 0.1
  n=$((n + 1))
done
echo "sshd did not listen again after its reload" >&2
exit 1
"""


def host_keys(comment: str) -> list[tuple[str, bytes, bytes]]:
    """(type, OpenSSH private key, public key line) for each of KEY_TYPES, made here, in memory."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    made: dict[str, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ecdsa": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=3072),
    }
    out = []
    for kind in KEY_TYPES:
        key = made[kind]
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        out.append((kind, private, public + f" {comment}\n".encode()))
    return out


def _archive(keys: list[tuple[str, bytes, bytes]]) -> bytes:
    """The keys as a tar archive of /etc/ssh's files (private 0600, public 0644)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, private, public in keys:
            for name, data, mode in ((f"ssh_host_{kind}_key", private, 0o600),
                                     (f"ssh_host_{kind}_key.pub", public, 0o644)):  # fmt: skip
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def identity(name: str, machine_id: str | None = None) -> CloneIdentity:
    """The command (for the guest user's shell; passwordless sudo, as Lima's user has) and its stdin."""
    hostname = hostname_for(name)
    members = " ".join(f"ssh_host_{k}_key ssh_host_{k}_key.pub" for k in KEY_TYPES)
    body = _SCRIPT.format(new=shlex.quote(hostname), machine_id=machine_id or secrets.token_hex(16),
                          members=members)  # fmt: skip
    return CloneIdentity(
        command=f"sudo -n sh -c {shlex.quote(body)} limapy-identity",  # the host's time follows when it runs
        what=summary(name),
        stdin=_archive(host_keys(f"root@{hostname}")),
        sets_clock=True,
    )


def summary(name: str) -> str:
    return f"hostname {hostname_for(name)}, a new machine-id and SSH host keys"
