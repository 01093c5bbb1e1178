"""First-boot media: the NoCloud seed for Linux guests (linux.py), the answer ISO for Windows (windows.py).

This module holds what both share: the provision list with Lima's template variables expanded. Everything is
read from the typed spec (limapy.config.model); no defaults are decided here.
"""

from __future__ import annotations

from dataclasses import dataclass

from limapy.base.errors import LimapyError
from limapy.base.names import hostname_for
from limapy.config.model import Provision, Spec


@dataclass(frozen=True)
class Step:
    """A provision entry ready for the media: its text and path fields with template variables expanded."""

    entry: Provision
    text: str | bytes  # bytes: a binary data file, put on the media as it is
    path: str | None
    owner: str | None
    permissions: str | None

    @property
    def index(self) -> int:
        return self.entry.index

    @property
    def mode(self) -> str:
        return self.entry.mode

    @property
    def data(self) -> bytes:
        """The file's bytes on the media."""
        return self.text.encode() if isinstance(self.text, str) else self.text


def template_fields(spec: Spec, name: str, *, home: str | None = None) -> dict[str, str]:
    return {
        "Name": name,
        "Hostname": hostname_for(name),
        "User": spec.user.name,
        "Home": home if home is not None else spec.user.home,
        "UID": str(spec.user.uid),
    }


def provisions(spec: Spec, name: str, *, allowed: tuple[str, ...], home: str | None = None) -> list[Step]:
    """The provision entries with their text expanded; a mode outside `allowed` is an error. `ansible` steps are
    not on the media: the host runs them (Lima's appendProvisionEntries skips them too)."""
    from limapy.guest.render import expand_vars

    if not spec.user.name:
        raise LimapyError("the configuration has no user.name (defaults were not filled)")
    fields = template_fields(spec, name, home=home)
    params = dict(spec.param)
    out: list[Step] = []
    for p in spec.provision:
        where = f"provision[{p.index}]"
        if p.mode == "ansible":
            continue
        if p.mode not in allowed:
            raise LimapyError(f"{where}: provision mode `{p.mode}` is not supported for this guest")
        key = {"data": "content", "yq": "expression"}.get(p.mode, "script")
        if p.text is None:
            raise LimapyError(f"{where}: no `{key}` to put on the first-boot media",
                              hint="the configuration loader should have resolved `file:` into `script:`")
        # binary content is not templated (Lima runs it through its Go template too, where a binary file rarely
        # holds a `{{` action and one that does not parse leaves it as it is)
        text = p.text if isinstance(p.text, bytes) else expand_vars(p.text, fields, params, where=f"{where}.{key}")
        path, owner, permissions = (
            None if value is None else expand_vars(value, fields, params, where=f"{where}.{label}")
            for value, label in ((p.path, "path"), (p.owner, "owner"), (p.permissions, "permissions"))
        )
        out.append(Step(p, text, path, owner, permissions))
    return out
