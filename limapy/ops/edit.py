"""`edit`: change a stopped instance's lima.yaml with `--set` / shortcut flags, or in $EDITOR.

The result is validated (Lima's rules, positions naming the flag that set a field) before a byte is written;
the disk may only grow (Lima's message otherwise); lima.yaml is replaced atomically. An edit in $EDITOR that
does not validate is kept as ./lima.REJECTED.yaml, as Lima does, and lima.yaml stays as it was.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from limapy.base.errors import ConfigError, LimapyError, UsageError
from limapy.base.units import format_size
from limapy.expr.edits import Edit
from limapy.instance import store

Say = Callable[[str], None]
REJECTED = "lima.REJECTED.yaml"


def require_stopped(inst: store.Instance, what: str = "edit") -> None:
    from limapy import driver

    st = driver.status(inst)
    if st != store.STOPPED:
        raise LimapyError(
            f"cannot {what} a running instance: `{inst.name}` is {st}", hint=f"`limapy stop {inst.name}` first"
        )


def _current_disk(inst: store.Instance, configured: int | None) -> int:
    from limapy.instance import disk

    sizes = [configured or 0]
    if inst.disk.exists():
        try:
            sizes.append(disk.virtual_size(inst.disk))
        except LimapyError:
            pass
    return max(sizes)


def _write(inst: store.Instance, doc: object, old_disk: int, *, say: Say) -> None:
    """Validate `doc` as the instance's new lima.yaml, then write it (and a product key, apart)."""
    from limapy.config import check
    from limapy.config.load import stored_yaml

    loaded = check(doc, name=inst.name, instance_dir=inst.dir)
    for w in loaded.warnings:
        say(w)
    new = loaded.spec.disk
    if new < old_disk:
        where = doc.where(("disk",))  # type: ignore[attr-defined]
        raise ConfigError(
            [f"{where}: field `disk`: shrinking the disk ({format_size(old_disk)} --> {format_size(new)}) "
             "is not supported"]
        )  # fmt: skip
    text, key = stored_yaml(doc.data, doc)  # type: ignore[attr-defined,arg-type]
    if key is not None:
        store.atomic_write(inst.product_key_file, (key + "\n").encode(), 0o600)
    store.atomic_write(inst.lima_yaml, text.encode(), 0o644)


def _old_disk(inst: store.Instance) -> int:
    from limapy import config

    try:
        configured: int | None = config.instance_spec(inst).disk
    except LimapyError:
        configured = None  # a broken lima.yaml can be repaired by an edit
    return _current_disk(inst, configured)


def apply_edits(inst: store.Instance, sets: Sequence[str | Edit], *, say: Say) -> None:
    """Apply `sets` to the stopped instance's lima.yaml (validated first; nothing written on error)."""
    from limapy.ops.create import load_template

    if not sets:
        return
    require_stopped(inst)
    with store.lock(inst, what="edit"):
        old = _old_disk(inst)
        doc = load_template(str(inst.lima_yaml), sets, allow_local=True)
        _write(inst, doc, old, say=say)


def edit_interactively(inst: store.Instance, *, say: Say, editor: str | None = None) -> bool:
    """Open lima.yaml in $EDITOR; False when nothing changed."""
    from limapy.base import proc
    from limapy.config.load import load

    require_stopped(inst)
    command = editor or os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with store.lock(inst, what="edit"):
        old_text = inst.lima_yaml.read_bytes()
        old = _old_disk(inst)
        fd, tmp = tempfile.mkstemp(prefix="lima-", suffix=".yaml", dir=inst.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(old_text)
            rc = proc.call([*shlex.split(command), tmp])
            if rc != 0:
                raise LimapyError(f"the editor `{command}` exited with {rc}; lima.yaml is unchanged")
            new_text = Path(tmp).read_bytes()
            if new_text == old_text:
                return False
            try:
                _write(inst, load(tmp, embed=True, allow_local=True), old, say=say)
            except LimapyError as e:
                shutil.copyfile(tmp, REJECTED)
                e.hint = f"the edited file is saved as ./{REJECTED}; lima.yaml is unchanged"
                raise
        finally:
            Path(tmp).unlink(missing_ok=True)
    return True


def edit(inst: store.Instance, sets: Sequence[str | Edit], *, say: Say, interactive: bool) -> bool:
    """`limapy edit`: the edits when given, else $EDITOR on a terminal; True when lima.yaml changed."""
    if sets:
        apply_edits(inst, sets, say=say)
        return True
    if not interactive:
        raise UsageError("no edit given and not on a terminal", hint="use --set EXPR or --cpus/--memory/--disk ...")
    return edit_interactively(inst, say=say)
