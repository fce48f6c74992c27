"""The one exception type for problems the user can fix.

Everything else is a bug: the CLI lets it show a traceback and exits with 1.
"""

from __future__ import annotations

#: Exit codes of the ``telemetry`` command (documented in the README).
EXIT_OK = 0
EXIT_BUG = 1
EXIT_USER_ERROR = 2


class TelemetryError(Exception):
    """A problem the user can fix: the message says what, where and how to fix it."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
