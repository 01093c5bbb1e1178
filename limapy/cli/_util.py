"""Small helpers shared by the command modules."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # `say` is on the fast path of `list`; typing costs ~4 ms there
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypedDict

    class CommandDoc(TypedDict, total=False):
        help: str
        epilog: str


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def doc(summary: str, *details: str, examples: Sequence[str] = ()) -> CommandDoc:
    """A command's help (`summary`, then `details` as paragraphs) and its examples (its epilog, as limactl's
    help shows them; cli/examples.py adds its aliases), for `app.command(NAME, **doc(...))`. click rewraps
    paragraphs; the `\b` line keeps the examples' lines as written."""
    out: CommandDoc = {"help": "\n\n".join([summary, *details])}
    if examples:
        out["epilog"] = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples)
    return out


def complete_instances(incomplete: str) -> list[str]:
    """Shell completion of an instance argument (the one source of instance names for completion)."""
    from limapy.ops.completion import instance_names

    return [n for n in instance_names() if n.startswith(incomplete)]


def instances_for(command: str) -> Callable[[str], list[str]]:
    """Completion of `command`'s instance argument: only the instances it can act on (`start` also offers
    `template:NAME`s); limapy.ops.completion decides, for typer and the fast completer alike."""

    def complete(incomplete: str) -> list[str]:
        from limapy.ops.completion import candidates

        return candidates(command, incomplete)

    return complete


def values_of(flag: str) -> Callable[[str], list[str]]:
    """Completion of a fixed-value flag (`--driver`, `--mount-type`, `list --format`, ...)."""

    def complete(incomplete: str) -> list[str]:
        from limapy.ops.completion import values

        return values(flag, incomplete)

    return complete


def instance_arg(help_: str = "An instance (name or unique prefix)", default: Any = ...) -> Any:
    """A typer Argument naming one instance, completed with the instance names."""
    import typer

    return typer.Argument(default, help=help_, autocompletion=complete_instances)


def instance_names_arg(help_: str = "Instances (names or unique prefixes)", default: Any = ...) -> Any:
    """A typer Argument naming one or more instances, completed with the instance names."""
    return instance_arg(help_, default)
