"""`provision: [{mode: ansible, playbook: ...}]` (deprecated in Lima, still valid): ansible-playbook on the host.

As Lima does (pkg/instance/ansible.go): once the guest is ready, `start` runs `ansible-playbook -i
<instance>/ansible-inventory.yaml PLAYBOOK` for each step, in order, on this terminal, with PARAM_<KEY> set
from `param`; the inventory's one host is the instance, reached through its ssh.config. A failing playbook fails
the start. Unlike Lima, which finds out only after the boot, a start whose configuration has such steps while
ansible-playbook is not installed is refused before anything boots.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable

from limapy.base import proc
from limapy.base.errors import LimapyError
from limapy.config.model import Provision, Spec
from limapy.instance import store

PROGRAM = "ansible-playbook"


def steps(spec: Spec) -> list[Provision]:
    return [p for p in spec.provision if p.mode == "ansible"]


def require_program(spec: Spec) -> None:
    """One line saying why a start with ansible steps cannot run here."""
    found = steps(spec)
    if found and shutil.which(PROGRAM) is None:
        raise LimapyError(
            f"provision[{found[0].index}] is `mode: ansible`: limapy runs {PROGRAM} on the host, as Lima does, "
            f"and {PROGRAM} is not installed",
            hint="install ansible (e.g. `pip install ansible-core`), or remove the step and run the playbook yourself",
        )


def inventory(inst: store.Instance, hostname: str) -> str:
    """Lima's inventory: group `lima`, one host (the instance) with ssh through its ssh.config."""
    import json

    host = {"ansible_connection": "ssh", "ansible_host": hostname,
            "ansible_ssh_common_args": "-F " + shlex.quote(str(inst.ssh_config))}  # fmt: skip
    lines = ["lima:", "  hosts:", f"    {json.dumps(inst.name)}:"]
    lines += [f"      {k}: {json.dumps(v)}" for k, v in host.items()]  # JSON strings are YAML strings
    return "\n".join(lines) + "\n"


def run(inst: store.Instance, spec: Spec, show: Callable[[str], None]) -> None:
    """Each ansible step's playbook against the running instance; a failure is the start's failure."""
    from limapy.base.names import hostname_for

    found = steps(spec)
    if not found:
        return
    require_program(spec)
    store.atomic_write(inst.ansible_inventory, inventory(inst, hostname_for(inst.name)).encode(), 0o600)
    env = {**os.environ, **{f"PARAM_{k}": v for k, v in spec.param.items()}}
    for p in found:
        if not p.playbook:
            continue
        show(f"Waiting for ansible playbook `{p.playbook}`")
        rc = proc.call([PROGRAM, "-i", str(inst.ansible_inventory), p.playbook], env=env)
        if rc != 0:
            raise LimapyError(f"provision[{p.index}]: {PROGRAM} {p.playbook} failed (exit status {rc})")
