"""Issue 27's checks on a running guest, run inside test_parity.py's first boot (no boot of their own):

- `mode: yq` provision steps, applied in the guest by the seed's copy of limapy's yq: Lima's own docker.yaml
  and docker-rootful.yaml yq steps (read from the shared Lima template corpus when it is present, else steps
  with the same paths and expressions), plus an in-place edit of a YAML file and of a JSON file with an owner
  and mode. Their other steps install Docker from the internet, which the offline test guest has not: skipped.
- `watch --json` sees the boot's events and the stop's (test_parity.py starts it before `start` and reads it
  after `stop`);
- `shell --sync` round-trips a change (a file changed, one made, one deleted) and removes its guest copy;
- `copy --backend rsync` both ways; the `lima` wrapper (limapy-lima) runs a command in $LIMAPY_INSTANCE.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.e2e.conftest import REPO_ROOT, RunLimapy, limapy_env

LIMA_CORPUS = REPO_ROOT.parent / "shared" / "lima-templates"
#: limapy's own steps with the paths and expressions of Lima's docker templates (used without the corpus).
DOCKER_YQ = [
    {"mode": "yq", "path": "{{.Home}}/.config/docker/daemon.json", "owner": "{{.User}}",
     "expression": ".features.cdi = true |\n.features.containerd-snapshotter = {{.Param.containerdSnapshotter}}\n"},
    {"mode": "yq", "path": "/etc/systemd/system/docker.socket.d/override.conf", "format": "ini",
     "expression": '.Socket.SocketUser="{{.User}}"'},
    {"mode": "yq", "path": "/etc/docker/daemon.json",
     "expression": ".features.cdi = true |\n.features.containerd-snapshotter = {{.Param.containerdSnapshotter}}\n"},
]  # fmt: skip
#: Files that exist before their yq step runs: edited in place (mode and owner as the step says).
IN_PLACE = [
    {"mode": "data", "path": "/etc/limapy-e2e.yaml", "content": "# kept\na: 1\nl: [x]\n"},
    {"mode": "yq", "path": "/etc/limapy-e2e.yaml", "expression": '.l += ["y"] | .name = "{{.Name}}"'},
    {"mode": "data", "path": "/var/lib/limapy-e2e/state.json", "content": '{"keep": 1}\n'},
    {"mode": "yq", "path": "/var/lib/limapy-e2e/state.json", "expression": ".added = true", "permissions": "600"},
]  # fmt: skip


def docker_yq_steps() -> tuple[list[dict[str, Any]], str]:
    """The yq steps of Lima's docker templates (and where they came from)."""
    files = [LIMA_CORPUS / "docker.yaml", LIMA_CORPUS / "docker-rootful.yaml"]
    if not all(f.is_file() for f in files):
        return DOCKER_YQ, "limapy's copies of their paths and expressions (no Lima template corpus here)"
    steps: list[dict[str, Any]] = []
    for f in files:
        doc = YAML(typ="safe").load(f.read_text())
        steps += [p for p in doc["provision"] if p.get("mode") == "yq"]
    return steps, f"Lima's {files[0].name} and {files[1].name}"


def template_extra() -> str:
    steps, _ = docker_yq_steps()
    return "provision: " + json.dumps([*steps, *IN_PLACE]) + "\nparam: {containerdSnapshotter: true}\n"


def start_watch(home: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "limapy", "watch", "--json", name], env=limapy_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def stop_watch(p: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """The JSON lines it printed; Ctrl-C ends it with status 0, as `limactl watch`."""
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def check_watch(events: list[dict[str, Any]], name: str) -> None:
    assert events and all(set(e) == {"instance", "event"} and e["instance"] == name for e in events), events
    statuses = [e["event"]["status"] for e in events]
    assert any(s.get("running") for s in statuses), statuses  # the start's ready event
    assert any(s.get("exiting") for s in statuses), statuses  # the stop's last event
    assert any(s.get("sshLocalPort") for s in statuses)


def check_yq(sh: Any, user: str, home: str, name: str) -> None:
    """`sh(script)` runs a script in the guest and returns its output."""
    assert sh("sudo test ! -e /run/lima-provision-failed && echo ok") == "ok\n", sh(
        "sudo cat /run/lima-provision-failed")
    want = {"features": {"cdi": True, "containerd-snapshotter": True}}
    assert json.loads(sh(f"cat {home}/.config/docker/daemon.json")) == want
    assert sh(f"stat -c '%U %a' {home}/.config/docker/daemon.json") == f"{user} 644\n"
    assert json.loads(sh("cat /etc/docker/daemon.json")) == want
    assert sh("cat /etc/systemd/system/docker.socket.d/override.conf") == f"[Socket]\nSocketUser = {user}\n"
    assert sh("stat -c '%U %a' /etc/systemd/system/docker.socket.d/override.conf") == "root 644\n"
    edited = YAML(typ="safe").load(sh("cat /etc/limapy-e2e.yaml"))
    assert edited == {"a": 1, "l": ["x", "y"], "name": name}  # an existing file, edited in place (PyYAML)
    assert json.loads(sh("sudo cat /var/lib/limapy-e2e/state.json")) == {"keep": 1, "added": True}
    assert sh("sudo stat -c '%U %a' /var/lib/limapy-e2e/state.json") == "root 600\n"


def check_sync_copy_wrapper(run: RunLimapy, home: Path, name: str, work: Path, sh: Any) -> None:
    """`shell --sync` round-trips a change; `copy --backend rsync` both ways; limapy-lima."""
    d = work / "sync" / "project" / "src"
    d.mkdir(parents=True)
    (d / "kept.txt").write_text("host\n")
    (d / "changed.txt").write_text("before\n")
    (d / "gone.txt").write_text("delete me\n")
    cp = run("shell", "--sync", str(d), name, "sh", "-c",
             "pwd; cat kept.txt; echo after >changed.txt; echo new >made.txt; rm gone.txt", timeout=300)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    guest_dir = sh("echo $HOME").strip() + str(d)
    assert cp.stdout == f"{guest_dir}\nhost\n", cp.stdout  # the command ran in the guest's copy
    assert sorted(p.name for p in d.iterdir()) == ["changed.txt", "kept.txt", "made.txt"]
    assert (d / "changed.txt").read_text() == "after\n" and (d / "made.txt").read_text() == "new\n"
    assert sh(f"test -e {guest_dir} && echo left || echo removed") == "removed\n"
    cp = run("shell", "--sync", str(d), name, "sh", "-c", "echo x >>kept.txt; exit 3", timeout=300)
    assert cp.returncode == 3 and (d / "kept.txt").read_text() == "host\n"  # a failure brings nothing back
    assert "nothing was synced back" in cp.stderr

    src = work / "copy-src.txt"
    src.write_text("through rsync\n")
    cp = run("copy", "--backend", "rsync", src, f"{name}:/tmp/copied.txt")
    assert cp.returncode == 0, cp.stderr
    back = work / "copy-back.txt"
    cp = run("copy", "--backend", "rsync", f"{name}:/tmp/copied.txt", back)
    assert cp.returncode == 0 and back.read_text() == "through rsync\n", cp.stderr

    env = {**limapy_env(home), "LIMAPY_INSTANCE": name}
    wrapper = subprocess.run([sys.executable, "-m", "limapy.cli.lima", "uname", "-n"], env=env, capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    assert (wrapper.returncode, wrapper.stdout) == (0, f"lima-{name}\n"), wrapper.stderr
