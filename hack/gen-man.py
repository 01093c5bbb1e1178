#!/usr/bin/env python3
"""Write limapy's man pages (limapy.1, limapy-COMMAND.1, ...) into DIR, made from the CLI itself.

    hack/gen-man.py DIR            # then: man -l DIR/limapy-start.1

The wheel build does the same (hack/hatch_build.py) and installs them in share/man/man1.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    from limapy import cli
    from limapy.cli import manpage

    pages = manpage.write_pages(cli.build_group(), Path(sys.argv[1]))
    print(f"wrote {len(pages)} man pages in {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
