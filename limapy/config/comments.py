"""lima.yaml written with its templates' comments, as Lima's embedding keeps them (pkg/limatmpl/embed.go).

Lima merges templates with yq, which carries each key's head and line comments along (mergeDocuments, line
202) and moves a `file:` key's comments to the `script:`/`content:`/`expression:` key that replaces it
(updateScript, line 612). limapy's reader keeps plain data and a (file, line, column) mark for every key and
list item (config.yamlread), through embedding and `file:` inlining; this module reads the comments back from
the marked lines and writes the data with them through ruamel.yaml's round-trip dumper:

- a key's (or list item's) head comment: the comment lines right above it, indented no deeper than it (deeper
  lines belong to a block scalar before it);
- its line comment: a `# ...` after it on its line, outside quotes; the first key or item on a line takes it;
- the top template's leading comment block (before its first key, up to a blank line) heads the document.

Multi-line strings are written as literal blocks (`|`), as Lima writes scripts. Keys a `--set` changed carry the
edit's mark, which names no file, and so no comment.
"""

from __future__ import annotations

import io
from typing import Any

from limapy.config.yamlread import Mark, NodePath


class _Comments:
    def __init__(self, marks: dict[NodePath, Mark], texts: dict[str, list[str]]) -> None:
        self.marks, self.texts = marks, texts
        self.used_eol: set[tuple[str, int]] = set()
        self.used_head: set[tuple[str, int]] = set()

    def _line(self, mark: Mark | None) -> tuple[list[str], int, int] | None:
        if mark is None or mark[1] <= 0 or mark[0] not in self.texts:
            return None
        lines = self.texts[mark[0]]
        return (lines, mark[1], mark[2]) if mark[1] <= len(lines) else None

    def head(self, path: NodePath) -> list[str]:
        found = self._line(self.marks.get(path))
        if found is None:
            return []
        lines, line, col = found
        prefix = lines[line - 1][: col - 1]
        if prefix.strip(" -") or (self.marks[path][0], line) in self.used_head:
            return []  # not the first node on its line (flow collections), or its line's comment went to an item
        self.used_head.add((self.marks[path][0], line))
        out: list[str] = []
        i = line - 2
        while i >= 0:
            text = lines[i]
            stripped = text.lstrip()
            if not stripped.startswith("#") or len(text) - len(stripped) > col - 1:
                break
            out.insert(0, stripped[1:].removeprefix(" ").rstrip())
            i -= 1
        return out

    def eol(self, path: NodePath) -> str | None:
        found = self._line(self.marks.get(path))
        if found is None:
            return None
        lines, line, col = found
        key = (self.marks[path][0], line)
        if key in self.used_eol:
            return None
        text = lines[line - 1]
        quote = ""
        for j in range(col - 1, len(text)):
            c = text[j]
            if quote:
                quote = "" if c == quote else quote
            elif c in "\"'" and (j == 0 or text[j - 1] in " \t:[{,-"):
                quote = c
            elif c == "#" and j > 0 and text[j - 1] in " \t":
                self.used_eol.add(key)
                return text[j + 1 :].strip()
        return None


def _scalar(value: Any) -> Any:
    """A multi-line string as a literal block when that keeps its exact text (printable lines, no trailing
    blanks, no leading blank that would need an indentation indicator)."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        lines = value.split("\n")
        if all(ln.isprintable() and ln == ln.rstrip(" \t") for ln in lines) and not value.startswith((" ", "\t")):
            return LiteralScalarString(value)
    return value


def _build(value: Any, path: NodePath, indent: int, c: _Comments) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            kp = (*path, k)
            head, eol = c.head(kp), c.eol(kp)  # before its value's nodes, which may share its line
            child = _build(v, kp, indent if isinstance(v, list) else indent + 2, c)  # lists: "- " at the key's column
            out[k] = child
            if eol is not None and isinstance(child, LiteralScalarString):
                head, eol = [*head, eol], None  # ruamel cannot write a comment after `|`: it goes above the key
            if head:
                out.yaml_set_comment_before_after_key(k, before="\n".join(head), indent=indent)
            if eol is not None:
                out.yaml_add_eol_comment("# " + eol, k)
        return out
    if isinstance(value, list):
        seq = CommentedSeq()
        for i, v in enumerate(value):
            ip = (*path, i)
            head = c.head(ip)  # before the item's first key takes the same line's comments
            eol = c.eol(ip) if not isinstance(v, (dict, list)) else None
            seq.append(_build(v, ip, indent + 2, c))
            if head:
                seq.yaml_set_comment_before_after_key(i, before="\n".join(head), indent=indent)
            if eol is not None:
                seq.yaml_add_eol_comment("# " + eol, i)
        return seq
    return _scalar(value)


def _document_head(lines: list[str]) -> list[str]:
    out: list[str] = []
    for text in lines:
        if not text.strip():
            return out
        if not text.lstrip().startswith("#"):
            return []  # no blank line before the first key: the block is that key's head comment
        out.append(text.strip()[1:].removeprefix(" ").rstrip())
    return out


def dump(data: dict[str, Any], marks: dict[NodePath, Mark], texts: dict[str, list[str]], top: str | None) -> str:
    """`data` as YAML with the comments its marks point at (`top`: the source whose leading comments head it)."""
    from ruamel.yaml import YAML

    comments = _Comments(marks, texts)
    tree = _build(data, (), 0, comments)
    head = _document_head(texts.get(top, [])) if top else []
    if head:
        tree.yaml_set_start_comment("\n".join(head))
    yaml = YAML()
    yaml.width = 4096  # long URLs stay on their key's line
    buf = io.StringIO()
    yaml.dump(tree, buf)
    return buf.getvalue()
