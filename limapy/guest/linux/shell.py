"""`limapy shell` in a Linux guest: Lima's semantics (lima-reference.md §1.3): `cd` to the host's directory when
a mount holds it, then `exec $SHELL -l -c 'ARGS'`, leading `NAME=value` arguments kept as assignments."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False  # `shell` runs this on its hot path: typing costs milliseconds to import
if TYPE_CHECKING:
    from typing import Any

_ENV_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def shell_script(
    spec: Any,
    command: Sequence[str],
    *,
    workdir: str | None = None,
    shell: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    host_home: Path | None = None,
) -> str:
    """The remote command `limapy shell` sends (`spec`: limapy.ssh.ShellSpec)."""
    cd = _linux_cd(spec, workdir, cwd or Path.cwd(), host_home or Path.home())
    sh = shell or spec.user.shell or "$SHELL"
    sh_word = sh if sh == "$SHELL" else shlex.quote(sh)
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    script = f"{cd} ; exec {'env ' + env_words + ' ' if env_words else ''}{sh_word} -l"
    if command:
        words = []
        parsing_env = True
        for arg in command:
            if parsing_env and _ENV_ARG.match(arg):
                words.append(_quote_env(arg))
            else:
                parsing_env = False
                words.append(shlex.quote(arg))
        script += f" -c {shlex.quote(' '.join(words))}"
    return script


def _quote_env(arg: str) -> str:
    key, _, value = arg.partition("=")
    return f"{key}={shlex.quote(value)}"


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _linux_cd(spec: Any, workdir: str | None, cwd: Path, home: Path) -> str:
    if workdir:
        return f"cd {shlex.quote(workdir)} || exit 1"
    locations = [Path(os.path.expanduser(m.location)) for m in spec.mounts if m.location]
    if any(_within(cwd, loc) for loc in locations):
        return f"cd {shlex.quote(str(cwd))} || cd {shlex.quote(str(home))}"
    if any(_within(home, loc) for loc in locations):
        return f"cd {shlex.quote(str(home))}"
    return "false"  # the host's cwd is not in the guest: stay in the guest home
