"""The error types limapy raises on purpose; the CLI turns them into one line each and an exit code."""

from __future__ import annotations

#: Every failure exits 1, as every limactl failure does (logrus.Fatal, cobra's usage errors): a script written
#: for Lima that tests `$? -eq 1` works unchanged (DESIGN.md, "Exit codes"). The kinds stay apart in the code
#: and in the message; the status does not tell them apart.
EXIT_FAILED = 1
EXIT_USAGE = 1
EXIT_INVALID = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def shown(value: object) -> str:
    """`value` for a message: unchanged when printable, control characters escaped (`\\n`) otherwise, so a
    hostile name cannot split an error line or a table row."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class LimapyError(Exception):
    """An error meant for the user: a message, an optional hint and the exit code to leave with."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def lines(self) -> list[str]:
        out = [f"limapy: {self.message}"]
        if self.hint:
            out.append(f"limapy: hint: {self.hint}")
        return out


class UsageError(LimapyError):
    exit_code = EXIT_USAGE


class ConfigError(LimapyError):
    """A lima.yaml that cannot be read or is invalid; carries every problem found."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        # one line per problem: a value quoted in a problem cannot break it (\x1e, \u2028 and the other
        # characters str.splitlines() breaks at, control characters)
        problems = [shown(p) for p in problems]
        super().__init__("\n".join(problems), hint)
        self.problems = problems


class NotFoundError(LimapyError):
    pass


class InstanceError(LimapyError):
    pass


class ExternalToolError(LimapyError):
    """A tool limapy depends on (qemu, swtpm, ssh, qemu-img) is missing or failed."""
