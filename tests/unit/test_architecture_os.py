"""Outside limapy/guest/, nothing branches on the guest OS (issue 25): the engines, the host agent, ops/ and
config/ ask the instance's GuestOS (limapy.guest) or its rules (limapy.guest.rules). At most ALLOWED branches may
stay elsewhere, each with a `# OS branch: <why>` comment on its line or the line above.

What counts as a branch on the guest OS (on the AST, limapy/ only):
- a comparison with one of Lima's `os` values (`"Windows"`, `"Linux"`, `"Darwin"`, `"FreeBSD"`, also inside a
  tuple, list or set), or with a member of config.model.OS; a comparison of anything that reads the OS
  (`spec.os`, `spec.os.value`, `cfg["os"]`, `cfg.get("os")`) with anything but None, "" or "default" (whether
  it is set at all);
- any use of a member of config.model.OS (`OS.WINDOWS`), of `is_windows`, `is_linux`, `windows_virtio`, of a
  plan's `windows`, of the readiness and install names that meant Windows (`READY_WINDOWS`, `READY_LINUX`,
  `WIN_INSTALL`, `WIN_SETUP`, `WIN_INSTALLED`), or of a guest OS's class (`WindowsGuest`, `LinuxGuest`).
Reading Windows' own options (`spec.windows.rdp`, `osOpts.Windows`) is data, not a branch.
"""

from __future__ import annotations

import ast

import pytest

from tests.unit.test_architecture import MODULES, REPO, within

ALLOWED = 3
MARK = "# OS branch:"
OS_VALUES = {"Linux", "Windows", "Darwin", "FreeBSD"}
OS_ATTRS = {"is_windows", "is_linux", "windows_virtio"}
OS_NAMES = {"READY_WINDOWS", "READY_LINUX", "WIN_INSTALL", "WIN_SETUP", "WIN_INSTALLED", "WindowsGuest", "LinuxGuest"}


def _names_os(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in OS_VALUES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_os(e) for e in node.elts)
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "OS"


def _reads_os(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "os" or (node.attr == "value" and _reads_os(node.value))
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "os"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "os"
    return False


def _unset(node: ast.AST) -> bool:
    """None, "" or "default": asking whether the OS is set at all (FillDefault), not which one it is."""
    if isinstance(node, ast.Constant):
        return node.value in (None, "", "default")
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(_unset(e) for e in node.elts)


def os_branches(source: str) -> list[tuple[int, str]]:
    """(line, code) of each branch on the guest OS in `source`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        hit = False
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            reads = [o for o in operands if _reads_os(o)]
            others = [o for o in operands if not _reads_os(o) and not _unset(o)]
            hit = any(_names_os(o) for o in operands) or bool(reads and (others or len(reads) > 1))
        elif isinstance(node, ast.Attribute):
            hit = (node.attr in OS_ATTRS or (node.attr == "windows" and isinstance(node.value, ast.Name)
                   and node.value.id == "plan") or _names_os(node))  # fmt: skip
        elif isinstance(node, ast.Name):
            hit = node.id in OS_NAMES
        if hit:
            out.append((getattr(node, "lineno", 0), ast.unparse(node)))
    return sorted(set(out))


@pytest.mark.parametrize("code", [
    "if spec.is_windows: pass", "x = spec.os is OS.WINDOWS", 'if cfg["os"] == "Windows": pass',
    'if cfg.get("os") in ("Darwin", "FreeBSD"): pass', 'ok = spec.os.value != "Linux"', "if plan.windows: pass",
    "r = READY_WINDOWS", "b = WIN_SETUP", "isinstance(g, WindowsGuest)", "n = OS.LINUX", 'if name == "Windows": x()',
    "if view.os == wanted: pass", "virtio = spec.windows_virtio", "same = a.os == b.os",
])  # fmt: skip
def test_a_branch_on_the_guest_os_is_found(code: str) -> None:
    assert os_branches(code), code


@pytest.mark.parametrize("code", [
    "rdp = spec.windows.rdp", 'win = cfg["osOpts"]["Windows"]', 'OS_TYPES = ["Linux", "Windows"]',
    'v = os.environ.get("X")', "g = guest.for_spec(spec)", 'os_ = OS(str(cfg.get("os") or "Linux"))',
    "if g.installs or inst.iso.exists(): pass", "assert self.os is not None",
    'if cfg.get("os") in (None, "", "default"): pass',
])  # fmt: skip
def test_data_and_the_seam_are_not_branches(code: str) -> None:
    assert not os_branches(code), code


def test_no_os_branch_outside_guest() -> None:
    wrong, marked = [], []
    for name, path in sorted(MODULES.items()):
        if within(name, "limapy.guest"):
            continue
        lines = path.read_text().splitlines()
        for lineno, code in os_branches(path.read_text()):
            near = [lines[lineno - 1], lines[lineno - 2] if lineno > 1 else ""]
            why = [ln.split(MARK, 1)[1].strip() for ln in near if MARK in ln]
            where = f"{path.relative_to(REPO)}:{lineno}: {code}"
            (marked if why and why[0] else wrong).append(where)
    assert not wrong, "branches on the guest OS outside limapy/guest/ (ask limapy.guest instead):\n" + "\n".join(wrong)
    assert len(marked) <= ALLOWED, "more than the allowed few marked OS branches:\n" + "\n".join(marked)
