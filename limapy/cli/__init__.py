"""The `limapy` command line: typer app, one module per command; LimapyError -> one line + exit code.

Start-up time is a feature: only typer and light limapy modules are imported here; each command
imports what it needs when it runs.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

from limapy.base.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, LimapyError
from limapy.cli._report import report as report  # the one error format (also the fast path's)

TYPE_CHECKING = False

COMMANDS = (
    "create", "start", "stop", "suspend", "delete", "list", "shell", "copy", "rdp", "validate", "info", "screenshot",
    "hostagent",
    # issue 13 (module cmd_<name>; the command itself may be spelled with a dash)
    "restart", "edit", "clone", "factory_reset", "protect", "show_ssh", "tunnel", "snapshot", "disk", "prune",
    "template", "completion",
    "doctor", "windows", "help",  # issue 28
    # issue 27: Lima 2.x's
    "watch", "yq",
)


def _no_space(e: OSError) -> LimapyError:
    import tempfile
    from pathlib import Path

    from limapy.base import dirs
    from limapy.base.fsutil import no_space

    return no_space(e, [dirs.limapy_home(), dirs.cache_dir(), Path(tempfile.gettempdir())])


def _debug_env() -> bool:
    from limapy.base.dirs import ENV_DEBUG

    return os.environ.get(ENV_DEBUG) not in (None, "", "0")


def _debug() -> bool:
    from limapy.cli import globalflags

    return globalflags.CURRENT.debug


def build_app() -> object:
    import importlib

    import typer

    from limapy import __version__
    from limapy.cli._util import values_of as _values

    app = typer.Typer(
        name="limapy",
        help="limapy: Lima-compatible virtual machines, Windows guests included.",
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _version(value: bool) -> None:
        if value:
            typer.echo(__version__)
            raise typer.Exit()

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
        debug: bool = typer.Option(False, "--debug", help="Debug logging and tracebacks."),
        log_level: str | None = typer.Option(
            None, "--log-level", help="debug, info, warn or error.", autocompletion=_values("--log-level")
        ),
        log_format: str = typer.Option(
            "text", "--log-format", help="text or json (one object per line).", autocompletion=_values("--log-format")
        ),
        tty: str | None = typer.Option(
            None, "--tty", help="true/false: live progress and prompts (default: when stderr is a terminal)."
        ),
        yes: bool = typer.Option(False, "-y", "--yes", help="Alias of --tty=false."),
    ) -> None:
        """limapy: Lima-compatible virtual machines, Windows guests included."""

    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"limapy.cli.cmd_{name}")
        except ModuleNotFoundError as e:
            if e.name == f"limapy.cli.cmd_{name}":
                continue
            raise
        mod.register(app)
    return app


def build_group() -> object:
    """The typer app as the click group that runs it: every command given the global flags (globalflags), its
    aliases and its examples (examples)."""
    import typer.main

    from limapy.cli import examples, globalflags

    group = typer.main.get_command(build_app())  # type: ignore[arg-type]
    globalflags.attach(group)
    examples.apply(group)
    return group


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so `finally` blocks and temp-dir cleanups run."""


class Interrupted(BaseException):
    """Ctrl-C (SIGINT). Not KeyboardInterrupt, which typer turns into a silent exit 130."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise Terminated()


def _on_sigint(_signum: int, _frame: object) -> None:
    raise Interrupted()


def _click_message(e: object) -> str:
    """click's message in limapy's voice: `no such option: --bogus`, not `Error: No such option: --bogus.`"""
    text = str(getattr(e, "format_message", lambda: str(e))()).strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def _command_path(args: list[str]) -> str:
    """`limapy CMD` for an error click raised without a context (an option missing its value)."""
    first = next((a for a in args if not a.startswith("-")), "")
    return f"limapy {first}" if first.replace("-", "_") in COMMANDS else "limapy"


def _typer(args: list[str]) -> int:
    """The typer app; click's own errors (a bad value, an unknown option, a missing argument) are one
    `limapy:` line and a hint naming the command's help, as every other error."""
    from typer._click import exceptions as click_exc

    from limapy.cli import globalflags

    try:
        group = build_group()
        before = globalflags.CURRENT.key()
        args = globalflags.take_click(group, args, globalflags.CURRENT)
        if globalflags.CURRENT.key() != before:
            globalflags.apply(globalflags.CURRENT)
        rv = group.main(args=args, prog_name="limapy", standalone_mode=False)  # type: ignore[attr-defined]
    except click_exc.NoArgsIsHelpError as e:
        e.show()
        return 0
    except click_exc.UsageError as e:
        command = e.ctx.command_path if e.ctx is not None else _command_path(args)
        report(LimapyError(_click_message(e), hint=f"see `{command} --help`"))
        return EXIT_USAGE
    except click_exc.ClickException as e:
        report(LimapyError(_click_message(e)))
        return e.exit_code or EXIT_FAILED
    return int(rv) if isinstance(rv, int) else 0


def _dispatch(args: list[str]) -> int:
    """The fast path (limapy.cli.fast) for what people run all day, else the typer app."""
    from limapy.cli import fast

    answer = fast.dispatch(args, COMMANDS, _typer, build_group)
    return answer if answer is not None else _typer(args)


def main(argv: Sequence[str] | None = None) -> int:
    """The one error ladder: every LimapyError is `limapy: ...` lines and its exit code, Ctrl-C and SIGTERM one
    line each, a bug one line (a traceback with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    from limapy.cli import globalflags

    try:
        settings, args = globalflags.take(args)
    except LimapyError as e:
        report(e)
        return e.exit_code
    settings.debug = settings.debug or _debug_env()
    globalflags.CURRENT = settings  # the fast path and typer add the flags that follow the command
    globalflags.apply(settings)
    # `_signal`, which `signal` wraps: `signal`'s enums cost ~1 ms of every command's start-up (issue 29)
    if TYPE_CHECKING:
        import signal as _signal
    else:
        import _signal

    _signal.signal(_signal.SIGTERM, _on_sigterm)
    _signal.signal(_signal.SIGINT, _on_sigint)
    try:
        return _dispatch(args)
    except LimapyError as e:
        if _debug():
            raise
        report(e)
        return e.exit_code
    except (KeyboardInterrupt, Interrupted):
        print("limapy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("limapy: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        return EXIT_FAILED
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_FAILED
    except Exception as e:  # a bug: one line unless --debug
        if _debug():
            raise
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):  # not a bug: a full disk
            full = _no_space(e)
            report(full)
            return full.exit_code
        print(f"limapy: internal error: {type(e).__name__}: {e} (run with --debug for a traceback)", file=sys.stderr)
        return EXIT_FAILED
