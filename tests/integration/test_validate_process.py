"""`python -m limapy validate` as a process: exit codes, no traceback, one line per problem, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str], tmp_path: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIMAPY_HOME=str(tmp_path / "home"), LIMAPY_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("LIMAPY_TEMPLATES_PATH", None)
    env.pop("LIMAPY_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "limapy", *args], cwd=REPO, env=env, capture_output=True, timeout=60, check=False,
        input=stdin.decode("utf-8", "surrogateescape") if stdin is not None else None, text=True,
        errors="replace",
    )


def test_version(tmp_path: Path) -> None:
    from limapy import __version__

    cp = run(["--version"], tmp_path)
    assert cp.returncode == 0 and cp.stdout.strip() == __version__


def test_good_template(tmp_path: Path) -> None:
    cp = run(["validate", "templates/default.yaml"], tmp_path)
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "templates/default.yaml: OK\n", "")


def test_stdin(tmp_path: Path) -> None:
    cp = run(["validate", "-"], tmp_path, stdin=b"images: [{location: /}]\n")
    assert (cp.returncode, cp.stdout) == (0, "-: OK\n")


def test_fill_output_validates(tmp_path: Path) -> None:
    cp = run(["validate", "--fill", "templates/experimental/windows.yaml"], tmp_path)
    assert cp.returncode == 0, cp.stderr
    out = tmp_path / "filled.yaml"
    out.write_text(cp.stdout)
    again = run(["validate", str(out)], tmp_path)
    assert (again.returncode, again.stdout) == (0, f"{out}: OK\n"), again.stderr


BAD = {
    "syntax.yaml": b"images: [\n",
    "tab.yaml": b"images:\n\t- location: /\n",
    "types.yaml": b"cpus: four\nimages: [{location: /}]\n",
    "dup.yaml": b"cpus: 1\ncpus: 2\nimages: [{location: /}]\n",
    "empty.yaml": b"",
    "multi.yaml": b"cpus: 1\n---\ncpus: 2\n",
    "scalar.yaml": b"42\n",
    "list.yaml": b"- a\n- b\n",
    "nonutf8.yaml": b"images: [{location: \"\xff\xfe\"}]\n",
    "bomb.yaml": b"a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
    + b"".join(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n".encode() for i in range(1, 10)),
    "deepflow.yaml": b"x: " + b"[" * 20000 + b"]" * 20000 + b"\n",
    "deepblock.yaml": b"x:\n" + b"- " * 20000 + b"a\n",
    "big.yaml": b'message: "' + b"a" * (5 << 20) + b'"\n',
    "loop.yaml": b"base: loop2.yaml\nimages: [{location: /}]\n",
    "loop2.yaml": b"base: loop.yaml\n",
    "missingbase.yaml": b"base: nothere.yaml\nimages: [{location: /}]\n",
}


@pytest.mark.parametrize("name", [*sorted(BAD), "a-directory", "missing.yaml"])
def test_bad_input_exits_3_without_traceback(tmp_path: Path, name: str) -> None:
    for fname, raw in BAD.items():
        (tmp_path / fname).write_bytes(raw)
    (tmp_path / "a-directory").mkdir()
    target = tmp_path / name
    cp = run(["validate", str(target)], tmp_path)
    assert cp.returncode == 1, cp.stderr
    assert "Traceback" not in cp.stderr and "internal error" not in cp.stderr
    assert cp.stdout == ""
    lines = cp.stderr.splitlines()
    assert lines and all(line.startswith(f"limapy: {tmp_path}") for line in lines), lines
    assert len(cp.stderr) < 2000  # problems are summarised, never the whole input echoed back


def test_usage_error_exit_2(tmp_path: Path) -> None:
    cp = run(["validate", "--no-such-flag", "x.yaml"], tmp_path)
    assert cp.returncode == 1 and "Traceback" not in cp.stderr
