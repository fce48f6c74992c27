"""The error hierarchy: every failure the CLI reports as one line, and the exit code it reports it with.

``TelemetryError`` is a problem the user can fix (exit 2): the message says what, where and how to fix it.
``InternalError`` and its subclasses are failures of ours (exit 1): please report them. Anything else that
escapes is a bug and shows a traceback.
"""

from __future__ import annotations

#: Exit codes of the ``telemetry`` command (documented in the README).
EXIT_OK = 0
EXIT_BUG = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class TelemetryError(Exception):
    """A problem the user can fix: the message says what, where and how to fix it."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InternalError(TelemetryError):
    """Something of ours failed (not the user's input): reported as one line with exit code 1."""

    exit_code = EXIT_BUG


class DbtError(InternalError):
    """dbt failed: a bug in the models or a database problem."""


class AccountingError(InternalError):
    """A load's rows do not add up (read != typed): never a silent loss."""
