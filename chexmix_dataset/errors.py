"""The one exception type that the command line turns into a clean error line (exit code 2)."""

from __future__ import annotations

import os


class ChexmixInputError(Exception):
    """Bad input from the user: a missing or corrupt file, an inconsistent volume, a bad option.

    The message must name the offending file (when there is one) and say what is wrong; the
    command line prints it as one line on stderr and exits with code 2, without a traceback.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first line of an exception's message, for one-line error texts.

    Library messages often span lines (tracebacks of the format's own reader, hints); a CLI
    error must stay one line. Empty messages give the exception's type name; ``with_type``
    prefixes the type name to a non-empty message ("OSError: ...").
    """
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return f"{type(exc).__name__}: {line}" if with_type else line
