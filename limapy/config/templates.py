"""The templates limapy can start from: every `template:NAME` on the search path, as `limapy create
--list-templates` and `limapy info` list them.

As in Lima: names are paths under a template directory without `.yaml` (`experimental/windows`); a name
starting with `_` (or under a `_` directory: `_images/`, `_default/`) is a base for other templates and not
listed; the first directory on the search path that has a name wins; sorted by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from limapy.config.locate import template_dirs


@dataclass(frozen=True)
class Template:
    name: str  # what follows `template:`
    location: Path


def list_templates() -> list[Template]:
    found: dict[str, Template] = {}
    for d in template_dirs():
        if not d.is_dir():
            continue
        for p in d.rglob("*.yaml"):
            name = p.relative_to(d).as_posix()[: -len(".yaml")]
            if any(part.startswith("_") for part in name.split("/")) or name in found:
                continue
            found[name] = Template(name, p)
    return [found[n] for n in sorted(found)]
