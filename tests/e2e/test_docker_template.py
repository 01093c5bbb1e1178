"""The docker template's provisioning in a real guest (issue 15 acceptance), under TCG.

The e2e test image (Debian, built offline) gets the docker template's own `provision` and `portForwards`,
read from templates/docker.yaml (not copied): its apt reaches the Debian mirror through QEMU's user network,
installs `docker.io`, and from the host `curl --unix-socket <hostSocket> http://d/_ping` answers `OK` (the
Engine API's health check: no registry pull). The host socket lies in the instance dir's `sock/`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.e2e.conftest import REPO_ROOT, RunLimapy
from tests.e2e.guest import START_TIMEOUT, list_json, wait_until

#: The test image has no resolver of its own (no systemd-resolved; its /etc/resolv.conf is empty), unlike the
#: distributions' cloud images: point it at the DNS server QEMU's user network announced over DHCP.
RESOLVER = {"mode": "system", "script": """#!/bin/sh
set -eu
if ! grep -q '^nameserver' /etc/resolv.conf 2>/dev/null; then
  dns=$(sed -n 's/^DNS=//p' /run/systemd/netif/leases/* 2>/dev/null | head -n 1 | cut -d' ' -f1)
  echo "nameserver ${dns:-192.168.5.3}" >/etc/resolv.conf
fi
"""}

#: apt-get update + docker.io and its dependencies (~60 MB) on a guest emulated by TCG, on shared cores.
PROVISION_TIMEOUT = 40 * 60


@pytest.mark.timeout(START_TIMEOUT + PROVISION_TIMEOUT + 300)
def test_docker_template_engine_answers_on_the_host_socket(
    test_image_template: Path, limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path
) -> None:
    docker = YAML(typ="safe").load((REPO_ROOT / "templates" / "docker.yaml").read_text(encoding="utf-8"))
    combined = {"base": [str(test_image_template)], "provision": [RESOLVER, *docker["provision"]],
                **{k: docker[k] for k in ("portForwards", "message")}}  # fmt: skip
    t = tmp_path / "docker-e2e.yaml"
    t.write_text(json.dumps(combined))  # JSON is YAML
    cp = run_limapy("create", "--name", "docker", t)
    assert cp.returncode == 0, cp.stderr
    cp = run_limapy("start", "docker", "--timeout", f"{(START_TIMEOUT + PROVISION_TIMEOUT) // 60}m",
                    timeout=START_TIMEOUT + PROVISION_TIMEOUT + 60)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    inst = limapy_home / "docker"
    code, out = _sh(run_limapy, "test ! -e /run/lima-provision-failed && test -x /usr/sbin/dockerd && echo installed")
    assert (code, out.strip()) == (0, "installed"), out
    assert "Message from the instance `docker`:\nTo use the guest's Docker Engine" in cp.stderr

    host_sock = inst / "sock" / "docker.sock"
    wait_until(host_sock.exists, 60, f"the forwarded socket {host_sock}")

    def ping() -> str:
        cp = subprocess.run(["curl", "-sS", "--max-time", "60", "--unix-socket", str(host_sock), "http://d/_ping"],
                            capture_output=True, text=True, timeout=90, check=False)  # fmt: skip
        return cp.stdout

    answers: list[str] = []
    wait_until(lambda: answers.append(ping()) or answers[-1] == "OK", 180, f"_ping to answer OK (got {answers[-1:]})",
               interval=3)  # fmt: skip
    rec = list_json(run_limapy, "docker")["docker"]
    assert f"export DOCKER_HOST=unix://{host_sock}\n" in rec["message"]  # rendered for this instance
    assert run_limapy("stop", "docker", timeout=300).returncode == 0


def _sh(run: RunLimapy, script: str) -> tuple[int, str]:
    cp = run("shell", "docker", "--", "sh", "-c", script, timeout=120)
    return cp.returncode, cp.stdout + cp.stderr
