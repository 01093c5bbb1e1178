"""hatchling hooks (pyproject.toml names this file):

- the PyPI description is README.md's user part (everything before `## Developing`, whose build and test
  timings are for developers), with its relative links made absolute;
- the wheel carries man pages made from the CLI itself (limapy.cli.manpage) in share/man/man1, where pip and
  pipx install them.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

REPO_URL = "https://github.com/limapy/limapy"
DEVELOPING = "\n## Developing"


def user_readme(text: str) -> str:
    """README.md up to its developers' part, relative links pointing at the repository."""
    head = text.split(DEVELOPING, 1)[0].rstrip() + "\n"
    return re.sub(r"\]\((?!https?://|#)([^)]+)\)", lambda m: f"]({REPO_URL}/blob/main/{m.group(1)})", head)


class ReadmeHook(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        text = (Path(self.root) / "README.md").read_text(encoding="utf-8")
        metadata["readme"] = {"content-type": "text/markdown", "text": user_readme(text)}


class ManPagesHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        sys.path.insert(0, self.root)
        from limapy import cli
        from limapy.cli import manpage

        self._tmp = tempfile.TemporaryDirectory(prefix="limapy-man-")
        for page in manpage.write_pages(cli.build_group(), Path(self._tmp.name)):
            build_data["shared_data"][str(page)] = f"share/man/man1/{page.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if hasattr(self, "_tmp"):
            self._tmp.cleanup()
