"""Progress messages: long work reports what it is doing through a callable the CLI prints to stderr."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def silent(_: str) -> None:
    """The default: library callers that pass no progress callable see nothing."""
