"""`validate FILE...`: load, embed, fill and check each file; one line per problem; exit 1 if any is invalid.

A file that passed is remembered (the memo in the cache dir, `validated/`): the lines it printed, keyed by
limapy's version, the host facts the fill reads, `$LIMAPY_TEMPLATES_PATH`, and the size, mtime, inode and ctime of
every file it was read from (itself, its bases and provision files, the schema, `_config/*.yaml`), and of
every template file that would shadow one it used. Validating it again while all of that holds prints the
same lines without parsing (ruamel.yaml alone costs more than the 4x-the-interpreter budget of the
command). Stdin, `--fill`, failures and anything read over the network are never memoized.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from limapy.base.errors import EXIT_INVALID, ConfigError, LimapyError

MEMO_DIR = "validated"
MEMO_VERSION = 2  # 2: issue 27's rules (file names, `~user`, yq steps)


class Memo:
    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key


def _memo(f: str) -> Memo | None:
    import os
    import zlib

    from limapy.base import dirs

    if f == "-" or "://" in f or not os.path.isfile(f):
        return None
    key = "\0".join([os.path.abspath(f), os.environ.get(dirs.ENV_TEMPLATES_PATH, ""), str(dirs.limapy_home())])
    name = f"{zlib.crc32(key.encode()):08x}-{len(key)}.json"  # the key itself is in the memo and compared
    return Memo(dirs.cache_dir() / MEMO_DIR / name, key)


def _replay(m: Memo | None) -> bool:
    """Print a fresh memo's lines; False when there is none."""
    import json

    from limapy.base import cachedir, stamps

    if m is None:
        return False
    raw = cachedir.read_memo(m.path)  # only a memo of the user's own, in the user's own directories
    try:
        memo = json.loads(raw) if raw is not None else None
    except ValueError:
        return False
    if not (isinstance(memo, dict) and memo.get("v") == MEMO_VERSION and memo.get("key") == m.key
            and memo.get("host") == stamps.host()):  # fmt: skip
        return False
    out, err = memo.get("out"), memo.get("err")
    if not (isinstance(out, str) and isinstance(err, str) and stamps.unchanged(memo.get("files"))):
        return False
    sys.stdout.write(out)
    sys.stderr.write(err)
    return True


def _remember(m: Memo, doc: object, out: str, err: str) -> None:
    import json

    from limapy.base import cachedir, dirs, stamps

    if not getattr(doc, "local", False):
        return
    files = [*getattr(doc, "files", []), dirs.schema_path(), dirs.config_dir() / "default.yaml",
             dirs.config_dir() / "override.yaml"]  # fmt: skip
    memo = {"v": MEMO_VERSION, "key": m.key, "host": stamps.host(), "files": stamps.record(files), "out": out,
            "err": err}  # fmt: skip
    cachedir.write_memo(m.path, json.dumps(memo).encode())  # False for a read-only cache: validated in full


def validate_files(files: Sequence[str], *, fill: bool = False, allow_local: bool = False) -> int:
    bad = 0
    for f in files:
        memo = None if fill or allow_local else _memo(f)
        if _replay(memo):
            continue
        bad += _validate(f, fill=fill, allow_local=allow_local, memo=memo, stream=len(files) > 1)
    return EXIT_INVALID if bad else 0


def _validate(f: str, *, fill: bool, allow_local: bool, memo: Memo | None, stream: bool = False) -> int:
    """Validate one file, printing its lines; 1 when it is invalid."""
    from limapy.config import check
    from limapy.config.load import dump_yaml, load
    from limapy.ops.fetch import template_fetcher

    try:
        doc = load(f, fetcher=template_fetcher, allow_local=allow_local, check_name=True)
        loaded = check(doc)
    except ConfigError as e:
        for w in getattr(e, "warnings", []):
            print(w, file=sys.stderr)
        for line in e.problems:
            positioned = line.startswith(f) or ":" in line.split(" ", 1)[0]
            print(f"limapy: {line if positioned else f'{f}: {line}'}", file=sys.stderr)
        if e.hint:
            print(f"limapy: hint: {e.hint}", file=sys.stderr)
        return 1
    except LimapyError as e:
        print(f"limapy: {f}: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"limapy: hint: {e.hint}", file=sys.stderr)
        return 1
    err = "".join(f"{w}\n" for w in loaded.warnings)
    # several documents with --fill: a YAML stream, each one after `---` (Lima)
    out = ("---\n" if stream else "") + dump_yaml(loaded.cfg) if fill else f"{f}: OK\n"
    sys.stderr.write(err)
    sys.stdout.write(out)
    if memo is not None:
        _remember(memo, doc, out, err)
    return 0
