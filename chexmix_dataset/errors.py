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
