"""Shell completion without typer (limapy.cli.complete) answers exactly as typer's completion does, for every
shell, and leaves to typer what it does not know."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from limapy import cli
from limapy.cli import complete

REPO = Path(__file__).resolve().parents[2]
INSTANCES = ("alpha", "alps", "beta")
#: command lines whose last word is being completed (a trailing space: a new, empty word)
FAST = [
    "limapy ", "limapy s", "limapy st", "limapy sh", "limapy x", "limapy stop ", "limapy stop al",
    "limapy stop alpha b", "limapy shell a", "limapy rm ", "limapy remove al", "limapy clone b", "limapy list ",
    "limapy ls alpha ", "limapy info z", "limapy start ", "limapy protect alpha alps ", "limapy factory-reset a",
    "limapy show-ssh ", "limapy suspend b", "limapy rdp ", "limapy screenshot al",
    "limapy validate ", "limapy create t", "limapy create template:de", "limapy start template:ub", "limapy doctor a",
    "limapy start al",
]  # fmt: skip
TYPER = [
    "limapy -", "limapy --debug s", "limapy stop -", "limapy stop -f a", "limapy start --name ",
    "limapy clone alpha ", "limapy snapshot ", "limapy snapshot create a", "limapy shell alpha l",
    "limapy disk ", "limapy --log-level=", "limapy create --driver ", "limapy list --format j",
]  # fmt: skip
SHELLS = ["bash", "zsh", "fish:get-args", "fish:is-args", "powershell"]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    for name in INSTANCES:
        (tmp_path / "home" / name).mkdir(parents=True)
        (tmp_path / "home" / name / "lima.yaml").write_text("images: [{location: /x}]\n")
    (tmp_path / "home" / "_config").mkdir()


def request_env(shell: str, line: str) -> dict[str, str]:
    """The environment typer's completion script for `shell` gives `limapy` when Tab is pressed after `line`."""
    shell, _, action = shell.partition(":")
    env = {complete.COMPLETE_VAR: f"complete_{shell}"}
    if shell == "bash":  # the script passes "${COMP_WORDS[*]}" joined by IFS, a newline
        words = line.split(" ")
        env.update(COMP_WORDS="\n".join(words), COMP_CWORD=str(len(words) - 1))
    elif shell == "powershell":
        env.update(_TYPER_COMPLETE_ARGS=line.rstrip(" "), _TYPER_COMPLETE_WORD_TO_COMPLETE=line.split(" ")[-1])
    else:
        env["_TYPER_COMPLETE_ARGS"] = line
        if action:
            env["_TYPER_COMPLETE_FISH_ACTION"] = action
    return env


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (complete.COMPLETE_VAR, "COMP_WORDS", "COMP_CWORD", "_TYPER_COMPLETE_ARGS",
                "_TYPER_COMPLETE_WORD_TO_COMPLETE", "_TYPER_COMPLETE_FISH_ACTION"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


def _typer_answer(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    _clear(monkeypatch)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        try:
            rc = cli._typer([])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue()


def _fast_answer(env: dict[str, str], build: bool = True) -> tuple[int | None, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = complete.answer(cli.COMMANDS, cli.build_app if build else None, env)
    return rc, out.getvalue()


@pytest.mark.parametrize("shell", SHELLS)
def test_fast_answers_are_typers(shell: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for line in FAST:
        env = request_env(shell, line)
        want = _typer_answer(env, monkeypatch)
        assert _fast_answer(env) == want, line  # the first one builds the command table ...
    assert list((tmp_path / "cache" / complete.CACHE_DIR).iterdir())
    for line in FAST:
        env = request_env(shell, line)
        assert _fast_answer(env, build=False) == _typer_answer(env, monkeypatch), line  # ... later ones read it


@pytest.mark.parametrize("shell", SHELLS)
def test_the_rest_is_left_to_typer(shell: str) -> None:
    for line in TYPER:
        assert _fast_answer(request_env(shell, line)) == (None, ""), line
    assert complete.answer(cli.COMMANDS, None, {complete.COMPLETE_VAR: "source_bash"}) is None
    assert complete.answer(cli.COMMANDS, None, {complete.COMPLETE_VAR: "complete_tcsh"}) is None


def test_some_answers_as_a_user_sees_them() -> None:
    assert _fast_answer(request_env("bash", "limapy start al")) == (0, "alpha\nalps\n")
    assert _fast_answer(request_env("bash", "limapy stop al")) == (0, "\n")  # all stopped: nothing to stop
    assert _fast_answer(request_env("bash", "limapy s"))[1].split() == [
        "start", "stop", "suspend", "shell", "screenshot", "show-ssh", "snapshot"]  # fmt: skip
    assert _fast_answer(request_env("bash", "limapy r"))[1].split() == ["rdp", "restart", "rename"]  # no rm
    assert _fast_answer(request_env("zsh", "limapy stop z")) == (0, "_files\n")
    assert _fast_answer(request_env("fish:is-args", "limapy stop z")) == (1, "")
    assert _fast_answer(request_env("powershell", "limapy shell b")) == (0, "beta::: \n")


def test_instance_args_match_the_typer_commands() -> None:
    import typer.main

    group = typer.main.get_command(cli.build_app())  # type: ignore[arg-type]
    ctx = group.make_context("limapy", [], resilient_parsing=True)
    found: dict[str, int] = {}
    for name in group.list_commands(ctx):  # type: ignore[attr-defined]
        cmd = group.get_command(ctx, name)  # type: ignore[attr-defined]
        if name == "completion":
            continue  # its argument is a shell's name, which typer completes
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        completed = [getattr(p, "_custom_shell_complete", None) is not None for p in args]
        if any(completed):
            assert completed[0] and not any(completed[1:]), f"{name}: only the first argument names an instance"
            found[name] = complete.ALL if args[0].nargs == -1 else 1
    assert found == complete.INSTANCE_ARGS


def test_a_completion_request_imports_no_typer(tmp_path: Path) -> None:
    code = "import sys\nfrom limapy.cli import main\nrc = main([])\nprint('typer' in sys.modules, file=sys.stderr)\n"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("_LIMAPY", "_TYPER", "COMP_"))}
    for line in ("limapy s", "limapy s", "limapy start a"):  # the first builds the command table once
        env = {**base, **request_env("bash", line)}
        cp = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "alpha\nalps\n"
    assert cp.stderr.strip() == "False"
    env = {**base, **request_env("bash", "limapy s")}
    cp = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert cp.stdout.split()[:2] == ["start", "stop"] and cp.stderr.strip() == "False"


def test_instance_names_per_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stop`/`suspend` offer what runs, `start` what does not (and the templates), the others every instance."""
    from limapy import driver
    from limapy.instance import store

    monkeypatch.setattr(driver, "status", lambda inst: store.RUNNING if inst.name == "alpha" else store.STOPPED)
    for line, want in (("limapy stop ", ["alpha"]), ("limapy suspend a", ["alpha"]), ("limapy start al", ["alps"]),
                       ("limapy delete ", list(INSTANCES)), ("limapy shell a", ["alpha", "alps"])):  # fmt: skip
        env = request_env("bash", line)
        fast = _fast_answer(env)
        assert fast == _typer_answer(env, monkeypatch), line
        assert fast[1].split() == want, line
    names = _fast_answer(request_env("bash", "limapy start "))[1].split()
    assert names[:2] == ["alps", "beta"] and "template:debian" in names and "template:experimental/windows" in names


@pytest.mark.parametrize(
    ("line", "want"),
    [("limapy create template:ubuntu-2", ["template:ubuntu-22.04", "template:ubuntu-24.04", "template:ubuntu-25.10"]),
     ("limapy validate template:alp", ["template:alpine", "template:alpine-3.23"]),
     ("limapy start --driver ", ["qemu", "libvirt"]), ("limapy create --driver l", ["libvirt"]),
     ("limapy create --mount-type ", ["reverse-sshfs", "9p", "virtiofs", "smb"]),
     ("limapy start --mount-type v", ["virtiofs"]),
     ("limapy edit alpha --vm-type ", ["qemu"]), ("limapy create --containerd u", ["user", "user+system"]),
     ("limapy --log-level ", ["trace", "debug", "info", "warn", "error"]), ("limapy stop --log-level w", ["warn"]),
     ("limapy list --log-format ", ["text", "json"]), ("limapy list --format ", ["table", "json", "yaml"]),
     ("limapy show-ssh alpha --format c", ["cmd", "config"]), ("limapy doctor --arch a", ["aarch64", "all"]),
     ("limapy completion p", ["powershell"])],
)  # fmt: skip
def test_templates_and_flag_values_complete(monkeypatch: pytest.MonkeyPatch, line: str, want: list[str]) -> None:
    rc, out = _typer_answer(request_env("bash", line), monkeypatch)
    assert rc == 0 and out.split() == want, (line, out)
