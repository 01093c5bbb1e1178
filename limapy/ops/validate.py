"""`validate FILE...`: load, embed, fill and check each file; one line per problem; exit 3 if any is invalid."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from limapy.errors import EXIT_INVALID, ConfigError, LimapyError


def validate_files(files: Sequence[str], *, fill: bool = False, allow_local: bool = False) -> int:
    from limapy.config import check
    from limapy.config.load import dump_yaml, load
    from limapy.ops.fetch import template_fetcher

    bad = 0
    for f in files:
        try:
            doc = load(f, fetcher=template_fetcher, allow_local=allow_local)
            loaded = check(doc)
        except ConfigError as e:
            for w in getattr(e, "warnings", []):
                print(w, file=sys.stderr)
            for line in e.problems:
                positioned = line.startswith(f) or ":" in line.split(" ", 1)[0]
                print(f"limapy: {line if positioned else f'{f}: {line}'}", file=sys.stderr)
            if e.hint:
                print(f"hint: {e.hint}", file=sys.stderr)
            bad += 1
            continue
        except LimapyError as e:
            print(f"limapy: {f}: {e.message}", file=sys.stderr)
            if e.hint:
                print(f"hint: {e.hint}", file=sys.stderr)
            bad += 1
            continue
        for w in loaded.warnings:
            print(w, file=sys.stderr)
        if fill:  # several documents: a YAML stream, each one after `---` (Lima)
            sys.stdout.write(("---\n" if len(files) > 1 else "") + dump_yaml(loaded.cfg))
        else:
            print(f"{f}: OK")
    return EXIT_INVALID if bad else 0
