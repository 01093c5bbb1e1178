"""The shape DESIGN.md's package map describes, enforced on the source (AST, no imports executed):

- imports flow one way, down the layers below (module-level and function-level imports alike), with no cycle;
- commands and the host agent reach an engine only through limapy.driver (never limapy.qemu or an engine), and
  a guest OS only through limapy.guest (the seams load their implementations by name);
- outside limapy/guest/, nothing branches on the guest OS (`os_branches` says what counts), but for at most
  ALLOWED_OS_BRANCHES, each marked `# OS branch: <why>`;
- at most 10 modules directly under limapy/: the packages show the layers;
- only limapy/base/proc.py starts programs (no `subprocess` import, no os.exec*/spawn*/system/popen elsewhere);
- no module (limapy/, hack/, tests/) is over 500 lines;
- outside limapy/config/, nothing indexes the raw configuration dict: Lima's field names are read through
  config.model.Spec;
- the names of instance files are written in limapy/instance/store.py only (lima.yaml also in limapy/base/names.py).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "limapy"

#: The guest OS rules: lima.yaml as each guest OS reads it (its defaults, its validation), at the configuration's
#: layer, and reading the configuration as limapy.config does.
GUEST_RULES = ("limapy.guest.rules", "limapy.guest.linux.rules", "limapy.guest.windows.rules",
               "limapy.guest.windows.opts")
#: Lower ranks are imported by higher ones, never the other way round.
LAYERS: list[tuple[str, ...]] = [
    ("limapy", "limapy.base"),  # base utilities
    # the configuration and the small languages it and the command line use (`--set`, yq, Go templates; gotmpl's
    # `yaml` writes YAML as config does); each guest OS's rules (its defaults, its validation), found by name
    ("limapy.config", "limapy.expr", "limapy.download", "limapy.remote", "limapy.guest.registry",
     "limapy.guest.windows.language", *GUEST_RULES),
    ("limapy.instance",),  # the instance store
    ("limapy.guest",),  # the guest-OS seam and the guest operating systems
    ("limapy.qemu", "limapy.ssh", "limapy.copytool"),  # formats: QEMU's command line, OpenSSH's
    ("limapy.driver",),  # the engine seam: plan, sidecars, media, the registry
    ("limapy.driver.qemu", "limapy.driver.libvirt"),  # engines
    ("limapy.ops", "limapy.agent"),  # commands, the host agent
    ("limapy.cli", "limapy.__main__"),
]
ENGINE_INTERNALS = ("limapy.qemu", "limapy.driver.qemu", "limapy.driver.libvirt")
ABOVE_THE_SEAM = ("limapy.ops", "limapy.agent", "limapy.cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rank(name: str) -> int:
    best, found = -1, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            matches = name == prefix if prefix == "limapy" else within(name, prefix)  # the package alone
            if matches and len(prefix) > best:
                best, found = len(prefix), i
    assert found >= 0, f"{name} is in no layer: add it to LAYERS (and to DESIGN.md's map)"
    return found


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str) -> set[str]:
    path = MODULES[name]
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            if t.startswith("limapy"):
                r = resolve(t)
                if r and r != name:
                    out.add(r)
    return out


GRAPH = {name: imports(name) for name in MODULES}


def test_imports_flow_down_the_layers() -> None:
    wrong = [f"{m} (layer {rank(m)}) imports {d} (layer {rank(d)})"
             for m, deps in GRAPH.items() for d in deps if rank(d) > rank(m)]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_engines_only_through_the_driver_seam() -> None:
    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items() if any(within(m, p) for p in ABOVE_THE_SEAM)
             for d in deps if any(within(d, p) for p in ENGINE_INTERNALS)]  # fmt: skip
    assert not wrong, "\n".join(wrong)
    # the registry loads engines by name (importlib), so the seam itself never names one
    assert not [d for d in GRAPH["limapy.driver"] if within(d, "limapy.driver.qemu")]


#: Guest OS packages (loaded by limapy.guest by name), and the commands that are one OS's by definition.
GUEST_OSES = ("limapy.guest.linux", "limapy.guest.windows")
OS_COMMANDS = ("limapy.ops.answer_iso",)  # `limapy windows answer-iso`


def test_guest_oses_only_through_the_guest_seam() -> None:
    assert not [d for d in GRAPH["limapy.guest"] if any(within(d, p) for p in GUEST_OSES)]
    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items()
             if not within(m, "limapy.guest") and m not in OS_COMMANDS
             for d in deps if any(within(d, p) for p in GUEST_OSES)]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, cycles


SPAWNERS = {"execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve",
            "spawnvp", "spawnvpe", "spawnl", "spawnle", "posix_spawn", "posix_spawnp", "system", "popen", "fork",
            "forkpty"}


def test_only_proc_starts_programs() -> None:
    wrong = []
    for name, path in MODULES.items():
        if name == "limapy.base.proc":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("subprocess", "pty") for a in node.names):
                wrong.append(f"{name}:{node.lineno}: import subprocess")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("subprocess", "pty"):
                wrong.append(f"{name}:{node.lineno}: from subprocess import")
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & SPAWNERS:
                wrong.append(f"{name}:{node.lineno}: from os import exec/spawn")
            elif (isinstance(node, ast.Attribute) and node.attr in SPAWNERS and isinstance(node.value, ast.Name)
                  and node.value.id == "os"):
                wrong.append(f"{name}:{node.lineno}: os.{node.attr}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "create_subprocess_exec"):
                wrong.append(f"{name}:{node.lineno}: asyncio subprocess")
    assert not wrong, "\n".join(wrong)


MAX_LINES = 500


@pytest.mark.parametrize("top", ["limapy", "hack", "tests"])
def test_no_module_over_500_lines(top: str) -> None:
    big = [f"{p.relative_to(REPO)}: {n}" for p in sorted((REPO / top).rglob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_LINES]  # fmt: skip
    assert not big, big


#: Lima field names that are also the keys of limapy's own records (list rows, host-agent events): not a sign
#: of a raw config dict on their own.
SHARED_KEYS = {"message", "arch", "cpus", "memory", "disk", "param", "vmType", "additionalDisks"}
CONFIG_NAMES = {"cfg", "filled", "layered"}


def lima_fields() -> set[str]:
    schema = json.loads((REPO / "schemas" / "lima.schema.json").read_text())
    return set(schema.get("properties", {})) - SHARED_KEYS


def test_no_raw_config_indexing_outside_config() -> None:
    """`x["os"]`, `x.get("osOpts")`, `cfg[...]`: outside limapy/config/, Lima's fields are read through
    config.model.Spec, not picked out of the filled dict (which stays for lima.yaml, `validate --fill` and
    `list --json`'s "config")."""
    fields = lima_fields()
    assert {"os", "osOpts", "images", "user", "ssh", "firmware", "provision", "mounts"} <= fields

    def key(node: ast.expr) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    def config_name(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id in CONFIG_NAMES) or (
            isinstance(node, ast.Attribute) and node.attr in CONFIG_NAMES
        )

    wrong = []
    for name, path in MODULES.items():
        if within(name, "limapy.config") or name in GUEST_RULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            hit = False
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):  # reading, not building a record
                hit = key(node.slice) in fields or config_name(node.value)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                hit = (bool(node.args) and key(node.args[0]) in fields) or config_name(node.func.value)
            if hit:
                wrong.append(f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}: {ast.unparse(node)[:80]}")
    assert not wrong, "\n".join(wrong)


def instance_file_names() -> set[str]:
    from limapy.instance import store

    inst = store.Instance("vm", Path("/x/vm"))
    names = set()
    for attr, value in vars(store.Instance).items():
        if isinstance(value, property):
            p = getattr(inst, attr)
            if isinstance(p, Path) and p.parent == inst.dir:
                names.add(p.name)
    # the distinctive ones ("qmp.sock", "windows-password"); "disk", "iso" or "kernel" are also config words
    return {n for n in names if ("." in n or "-" in n) and n != "vm.rdp"}


def test_instance_file_names_only_in_store() -> None:
    names = instance_file_names()
    assert {"lima.yaml", "qmp.sock", "ha.qmp.sock", "swtpm.sock", "windows-password", "base-image.json"} <= names
    wrong = []
    for name, path in MODULES.items():
        if name in ("limapy.instance.store", "limapy.base.names"):  # names: LIMA_YAML, which config/ needs too
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not wrong, "\n".join(wrong)


def test_the_package_root_holds_few_modules() -> None:
    """Issue 25: the base utilities, the instance store, the CLI plumbing, ... each in a package."""
    root = sorted(p.name for p in PKG.glob("*.py"))
    assert len(root) <= 10, root


def test_the_json_that_travels_is_typed() -> None:
    """Issue 25: `list --json` rows, summaries, events, QMP and qemu-img answers have TypedDicts
    (limapy/base/records.py); `dict[str, Any]` stays in limapy.config (a lima.yaml's shape is Lima's; outside it
    is `records.Config`) and in the libvirt binding's glue (it is untyped)."""
    hits = [f"{p.relative_to(REPO)}:{i}" for p in sorted(PKG.rglob("*.py"))
            if not any(within(module_name(p), m) for m in ("limapy.config", "limapy.driver.libvirt"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if "dict[str, Any]" in line]  # fmt: skip
    assert len(hits) < 10, hits
