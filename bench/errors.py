"""The one exception type the CLI turns into a one-line message and exit code 2, and the one
way an exception becomes a line of text (for a row's `error`, a message, a log)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a flag, a name, a file. Printed as one line, exit code 2."""


def one_line(exc: BaseException, limit: int = 500) -> str:
    """``"TypeName: message"`` with all whitespace folded to single spaces, at most `limit` chars."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:limit]
