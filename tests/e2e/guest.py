"""Helpers for the lifecycle and fault e2e tests: templates with extras, `list --json`, QEMU processes of
an instance, its listening sockets, and process polling."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.winiso import build_standin_iso

# Lima's `limactl list --json` keys (lima-reference.md §1); those outside LIMA_ALWAYS are `omitempty` in Lima's
# Instance struct, so they are left out when empty.
LIMA_ALWAYS = frozenset({"name", "hostname", "status", "dir", "vmType", "arch", "protected", "limaVersion"})
LIMA_LIST_KEYS = frozenset(
    {
        "name", "hostname", "status", "dir", "vmType", "arch", "cpus", "memory", "disk", "message",
        "additionalDisks", "network", "sshLocalPort", "sshConfigFile", "hostAgentPID", "driverPID", "errors",
        "config", "sshAddress", "protected", "limaVersion", "param",
    }
)  # fmt: skip

START_TIMEOUT = 420  # seconds for `limapy start` to report ready (TCG, shared 2 cores)


def template_with(base: Path, dest: Path, extra_yaml: str) -> Path:
    """Copy the test template to `dest`, appending top-level keys (the base must not have them)."""
    text = base.read_text()
    for key in re.findall(r"^(\w+):", extra_yaml, re.M):
        assert not re.search(rf"^{key}:", text, re.M), f"{base} already sets {key}"
    dest.write_text(text.rstrip("\n") + "\n" + extra_yaml)
    return dest


def list_json(run: Callable[..., subprocess.CompletedProcess[str]], *names: str) -> dict[str, dict[str, Any]]:
    """`limapy list --json` as {name: record}; asserts NDJSON (one object per line) with Lima's keys."""
    cp = run("list", "--json", *names, timeout=60)
    assert cp.returncode == 0, cp.stderr
    out: dict[str, dict[str, Any]] = {}
    for line in cp.stdout.splitlines():
        assert line.strip(), f"blank line in NDJSON output: {cp.stdout!r}"
        rec = json.loads(line)
        assert isinstance(rec, dict)
        missing = LIMA_ALWAYS - rec.keys()
        assert not missing, f"list --json lacks Lima's keys {sorted(missing)}"
        empty = [k for k in rec if k in LIMA_LIST_KEYS - LIMA_ALWAYS and rec[k] in (0, "", None, [], {})]
        assert not empty, f"list --json keeps empty fields Lima omits: {empty}"
        out[rec["name"]] = rec
    return out


def status_of(run: Callable[..., subprocess.CompletedProcess[str]], name: str) -> str:
    return str(list_json(run, name)[name]["status"])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] == "Z"
    except (OSError, IndexError):
        return True


def qemu_pids(inst_dir: Path) -> list[int]:
    """Live QEMU processes of this instance: a qemu-system-* whose -pidfile is <inst_dir>/qemu.pid."""
    pidfile = str(inst_dir / "qemu.pid")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if argv and "qemu-system" in os.path.basename(argv[0]) and pidfile in argv and not _is_zombie(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def wait_until(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def listening_addresses(pid: int) -> list[str]:
    """Local addresses (ip:port) of the TCP/UDP sockets `pid` listens on, from `ss -lntup`."""
    cp = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True, check=True, timeout=30)
    addrs = []
    for line in cp.stdout.splitlines():
        if f"pid={pid}," in line:
            addrs.append(line.split()[4])
    return addrs


def serial_text(inst_dir: Path) -> str:
    try:
        return (inst_dir / "serial.log").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def leftovers(home: Path) -> list[str]:
    """Entries of a LIMAPY_HOME other than the shared _config/_disks dirs (hidden ones included)."""
    if not home.exists():
        return []
    return sorted(p.name for p in home.iterdir() if p.name not in ("_config", "_disks"))


def standin_instance_args(tmp_path: Path, tpm: bool, *extra: str) -> list[str]:
    """`limapy create` arguments for templates/experimental/windows.yaml on a stand-in install ISO: small,
    headless, the TPM when swtpm is there, and an OpenSSH MSI of its own (made with msitools: the template's is a
    download) carried on the answer ISO as the default MSI path does."""
    import hashlib
    import shutil

    iso = build_standin_iso(tmp_path / "Win11_x64.iso", arch="x86_64")
    sets = [
        f'.images[0].location = "{iso}"', f".tpm = {str(tpm).lower()}", '.video.display = "none"',
        ".cpus = 2", '.memory = "2GiB"', '.disk = "4GiB"',
    ]  # fmt: skip
    if shutil.which("msibuild"):
        msi = tmp_path / "OpenSSH-Win64.msi"
        subprocess.run(["msibuild", str(msi), "-s", "OpenSSH", "Microsoft", "x64;1033",
                        "{8A62E7C8-9F4B-4E1C-A3D2-1B7C4D5E6F70}"], check=True)  # fmt: skip
        digest = hashlib.sha256(msi.read_bytes()).hexdigest()
        sets.append(f'.osOpts.Windows.opensshMsi = [{{location: "{msi}", arch: "x86_64", digest: "sha256:{digest}"}}]')
    else:
        sets.append('.osOpts.Windows.opensshSource = "capability"')
    return [a for s in (*sets, *extra) for a in ("--set", s)]


def put_on_standin_disk(inst: Path, standin_disk: Path) -> None:
    """Replace the instance's empty disk by an overlay on the stand-in's, partitioned as Setup's first phase
    leaves a disk."""
    (inst / "disk").unlink()
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(standin_disk), "-F", "qcow2", str(inst / "disk"), "4G"],
        check=True,
    )
