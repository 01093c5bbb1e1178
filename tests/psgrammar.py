"""PowerShell's grammar (tree-sitter-powershell, from PyPI) for tests: parse generated scripts, find errors."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def parser() -> Any:
    import tree_sitter
    import tree_sitter_powershell

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def parse(text: str | bytes) -> Any:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parser().parse(data)


def errors(text: str | bytes) -> list[str]:
    """Every ERROR or MISSING node, as `line:col: text`; empty for a script the grammar accepts whole."""
    tree = parse(text)
    out: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            snippet = node.text.decode("utf-8", "replace")[:60] if node.text else ""
            out.append(f"{row + 1}:{col + 1}: {node.type}{' (missing)' if node.is_missing else ''} {snippet!r}")
        stack.extend(node.children)
    return sorted(out)


def commands(text: str | bytes) -> list[str]:
    """The command names invoked in `text`, in source order (Get-Service, Start-Service, & icacls.exe ...)."""
    tree = parse(text)
    out: list[tuple[int, str]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "command":
            name = node.child_by_field_name("command_name")
            if name is not None and name.text:
                out.append((node.start_byte, name.text.decode()))
        stack.extend(node.children)
    return [n for _, n in sorted(out)]


def functions(text: str | bytes) -> dict[str, str]:
    """Each top-level `function NAME { ... }` of a script: its source text, by name."""
    out: dict[str, str] = {}
    for node in _top_level(text):
        if node.type == "function_statement":
            name = next((c for c in node.children if c.type == "function_name"), None)
            if name is not None and name.text and node.text:
                out[name.text.decode()] = node.text.decode()
    return out


def main_block(text: str | bytes) -> str:
    """The script without its function definitions: what runs, in order."""
    parts = []
    for node in _top_level(text):
        if node.type != "function_statement" and node.text:
            parts.append(node.text.decode())
    return "\n".join(parts)


def _top_level(text: str | bytes) -> list[Any]:
    tree = parse(text)
    for child in tree.root_node.children:
        if child.type == "statement_list":
            return list(child.children)
    return []


def calls(text: str | bytes, name: str) -> list[tuple[str, ...]]:
    """Each `name ARG ARG ...` command, in source order: its arguments' source text, single-quoted literals
    without their quotes and script blocks as their body (`Invoke-Step 'sshd' 'starting sshd' { Start-Sshd }` is
    ('sshd', 'starting sshd', 'Start-Sshd'))."""
    tree = parse(text)
    out: list[tuple[int, tuple[str, ...]]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type != "command":
            continue
        command = node.child_by_field_name("command_name")
        if command is None or command.text is None or command.text.decode() != name:
            continue
        args: list[str] = []
        for elements in (c for c in node.children if c.type == "command_elements"):
            for arg in (c for c in elements.children if c.type == "array_literal_expression"):
                block = _first(arg, "script_block")
                value = (block or arg).text.decode() if (block or arg).text else ""
                if block is None and value.startswith("'") and value.endswith("'"):
                    value = value[1:-1].replace("''", "'")
                args.append(value.strip())
        out.append((node.start_byte, tuple(args)))
    return [a for _, a in sorted(out)]


def _first(node: Any, kind: str) -> Any:
    stack = [node]
    while stack:
        n = stack.pop(0)
        if n.type == kind:
            return n
        stack.extend(n.children)
    return None
