"""`template copy|validate|yq|url`: templates as files, without creating an instance (Lima: experimental).

- `copy TEMPLATE [DEST]`: the template's bytes as they are (`--verbatim`, the default: limapy does not rewrite
  relative locators, so copy a template that has them with `--embed`), with `base:` and `file:` references
  embedded (`--embed`, also `--embed-all`), or every default filled in (`--fill`). DEST `-` is stdout.
- `yq TEMPLATE EXPR`: a path (`.images[0].location`) prints that value; an edit (`.cpus = 2`, limapy's `--set`
  subset) prints the edited template.
- `url LOCATOR`: the URL a locator stands for (`template:NAME` → its file, a `scheme:` → its URL plugin).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from limapy.base.errors import UsageError

MODES = ("verbatim", "embed", "fill")


def render(locator: str, mode: str = "verbatim") -> bytes:
    from limapy.config import check
    from limapy.config.load import dump_yaml, load
    from limapy.config.locate import locate
    from limapy.ops.fetch import template_fetcher

    if mode not in MODES:
        raise UsageError(f"unknown copy mode {mode!r}")
    if mode == "verbatim":
        return locate(locator, fetcher=template_fetcher).raw
    doc = load(locator, fetcher=template_fetcher, check_name=True)
    if mode == "embed":
        from limapy.config import comments

        return comments.dump(doc.data, doc.marks, doc.texts, doc.source).encode()  # Lima keeps the comments
    return dump_yaml(check(doc).cfg).encode()


def copy(locator: str, dest: str, mode: str = "verbatim") -> bytes | None:
    """The bytes for stdout when `dest` is `-`; else written to `dest` (refusing to overwrite a file)."""
    from limapy.base.fsutil import atomic_write

    data = render(locator, mode)
    if dest == "-":
        return data
    path = Path(dest)
    if path.is_dir():
        from limapy.config.locate import name_from_locator

        path = path / f"{name_from_locator(locator) or 'template'}.yaml"
    if path.exists():
        raise UsageError(f"{path} already exists; not overwriting it")
    if not path.parent.is_dir():
        why = "is not a directory" if path.parent.exists() else "does not exist"
        raise UsageError(f"cannot write {path}: {path.parent} {why}",
                         hint=f"create it first (`mkdir -p {path.parent}`), or give an existing directory")  # fmt: skip
    atomic_write(path, data, 0o644)
    return None


_READ_RE = re.compile(r"\.?(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\[\"[^\"]+\"\])*\Z")


def yq(locator: str, expr: str) -> str:
    import copy as copy_

    from limapy.config.load import dump_yaml, load
    from limapy.expr import edits
    from limapy.ops.fetch import template_fetcher

    doc = load(locator, fetcher=template_fetcher)
    text = expr.strip()
    if _READ_RE.fullmatch(text):
        value: Any = doc.data
        for part in edits._path(text, expr) if text != "." else []:
            if isinstance(part, int):
                value = value[part] if isinstance(value, list) and -1 < part < len(value) else None
            else:
                value = value.get(part) if isinstance(value, dict) else None
        return _yaml_value(value)
    data = copy_.deepcopy(doc.data)
    edits.apply(data, expr)
    return dump_yaml(data)


def _yaml_value(value: Any) -> str:
    from limapy.config.load import dump_yaml

    if value is None:
        return "null\n"
    if isinstance(value, bool):
        return "true\n" if value else "false\n"
    if isinstance(value, (int, float, str)):
        return f"{value}\n"
    if isinstance(value, dict):
        return dump_yaml(value)
    return dump_yaml({"_": value})[len("_:\n"):] if value else "[]\n"


def url(locator: str) -> str:
    from limapy.config import locate as loc

    if locator.startswith("template://"):
        locator = "template:" + locator[len("template://"):]
    if locator.startswith("template:"):
        return loc.find_template(locator[len("template:"):]).resolve().as_uri()
    scheme = loc.custom_scheme(locator)
    if scheme is not None:
        return loc._resolve_plugin(scheme, locator)
    if loc.is_remote(locator) or locator.startswith("file://"):
        return locator
    return Path(locator).expanduser().resolve().as_uri()
