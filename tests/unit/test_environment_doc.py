"""docs/environment.md lists every environment variable limapy reads: the variables are found in the source
(os.environ / env `.get(NAME)`, `[NAME]`, `.pop(NAME)`, os.getenv, and the `ENV_*` / `*_VAR` constants that name
them), so a new one cannot go undocumented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "environment.md"
NAME = re.compile(r"_?[A-Z][A-Z0-9_]+\Z")
ENVIRON = re.compile(r"(^|\.)(environ|env)$")
#: Read under a computed name: the doc names the pattern.
COMPUTED = {"binary_env_var": "QEMU_SYSTEM_<ARCH>"}


def variables_read() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "limapy").rglob("*.py")):
        where = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[object] = []
            if isinstance(node, ast.Assign):
                if any(isinstance(t, ast.Name) and re.search(r"(^|_)ENV(_|$)|_VAR$", t.id) for t in node.targets):
                    names += [c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                reads = node.func.attr == "getenv" or (
                    node.func.attr in ("get", "pop") and ENVIRON.search(ast.unparse(node.func.value))
                )
                if reads and isinstance(node.args[0], ast.Constant):
                    names.append(node.args[0].value)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                if ENVIRON.search(ast.unparse(node.value)) and isinstance(node.slice, ast.Constant):
                    names.append(node.slice.value)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in COMPUTED:
                names.append(COMPUTED[node.func.id])
            for n in names:
                if isinstance(n, str) and (NAME.fullmatch(n) or n in COMPUTED.values()):
                    found.setdefault(n, set()).add(where)
    return found


def test_every_variable_limapy_reads_is_documented() -> None:
    found = variables_read()
    assert {"LIMAPY_HOME", "LIMAPY_TTY", "SSH", "NO_COLOR", "TERM", "QEMU_SYSTEM_<ARCH>"} <= set(found)  # it sees them
    doc = DOC.read_text()
    missing = {n: sorted(w) for n, w in found.items() if f"`{n}`" not in doc}
    assert not missing, f"read by limapy, not in docs/environment.md: {missing}"
