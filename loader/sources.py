"""Which files an ``ingest csv`` PATH names (a file, a directory of .csv files, or a glob), and opening them.

Only regular files are read: a FIFO would block forever, a link to /dev/zero never ends, a directory named
``x.csv`` is not a CSV. Anything else is refused with one line that says what the path is, before anything is
written. Symbolic links to regular files are fine.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from pathlib import Path
from typing import BinaryIO

from loader.errors import TelemetryError

_HOW = "pass a CSV path or set TELEMETRY_CSV_PATH (default .telemetry/usage.csv)"

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def resolve_paths(path: Path | str) -> list[Path]:
    """A file, a directory (its *.csv files) or a glob pattern; several files are read oldest first.

    Every path returned is a regular file (or a symbolic link to one); anything else is a TelemetryError.
    """
    if isinstance(path, str):
        if not path.strip():
            raise TelemetryError(f"the path is empty ({path!r}); pass a CSV file, a directory or a glob")
        path = Path(path)
    text = str(path)
    if any(ch in text for ch in "*?[") and _stat_or_none(path) is None:
        found = [Path(p) for p in glob.glob(text)]
        if not found:
            raise TelemetryError(f"{text}: no file matches this pattern")
    else:
        info = file_status(path)
        if not stat.S_ISDIR(info.st_mode):
            _require_regular(path, info)
            return [path]
        found = _csv_entries(path)
        if not found:
            raise TelemetryError(f"{path}: the directory holds no .csv files; pass a CSV file or a directory of them")
    statuses = [(p, file_status(p)) for p in found]
    for p, info in statuses:
        _require_regular(p, info)
    return [p for p, info in sorted(statuses, key=lambda item: (item[1].st_mtime, item[0].name))]


def _csv_entries(directory: Path) -> list[Path]:
    """The directory's entries named *.csv in any case (USAGE.CSV too), hidden files (.name) excepted."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise TelemetryError(_os_error_message(directory, exc, "list")) from None
    return [directory / n for n in names if n.lower().endswith(".csv") and not n.startswith(".")]


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def file_status(path: Path) -> os.stat_result:
    """``os.stat`` (following links), with every failure as a one-line TelemetryError."""
    try:
        return os.stat(path)
    except ValueError:  # an embedded NUL in the name
        raise TelemetryError(f"{path!r}: not a valid path (it holds a NUL character)") from None
    except OSError as exc:
        raise TelemetryError(_os_error_message(path, exc, "open")) from None


def _os_error_message(path: Path, exc: OSError, doing: str) -> str:
    code = exc.errno
    if code == errno.ENOENT:
        target = _link_target(path)
        if target is not None:
            return f"{path}: no such file: it is a symbolic link to {target}, which does not exist; {_HOW}"
        return f"{path}: no such file; {_HOW}"
    if code == errno.ELOOP:
        return (f"{path}: symbolic link loop (the links point at each other and never reach a file); "
                "fix the links or pass the CSV file itself")
    if code in (errno.EACCES, errno.EPERM):
        return (f"{path}: permission denied: cannot {doing} it as this user; make the file readable and its "
                "directories traversable (chmod), or run as a user who can read it")
    if code == errno.ENOTDIR:
        return f"{path}: no such file (a part of the path is a file, not a directory); {_HOW}"
    if code == errno.ENAMETOOLONG:
        return f"{str(path)[:200]}...: the path is too long for the file system; pass a shorter path"
    if code == errno.ENXIO:
        return f"{path}: is a socket or a device without a reader, not a regular file; pass a regular CSV file"
    return f"{path}: cannot {doing} the file: {exc.strerror or exc}"


def _link_target(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except (OSError, ValueError):
        return None


def _require_regular(path: Path, info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
    target = _link_target(path)
    link = f"a symbolic link to {target}, which is " if target is not None else ""
    raise TelemetryError(
        f"{path}: is {link}{kind}, not a regular file; llm-telemetry reads regular CSV files: "
        "pass a CSV file, or a directory or glob that names only CSV files"
    )


def open_regular(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """Open a regular file for reading, never blocking (a FIFO is refused, not waited on), with its status.

    The status is taken from the open file, so it describes exactly what is read.
    """
    info = file_status(path)
    _require_regular(path, info)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise TelemetryError(_os_error_message(path, exc, "open")) from None
    try:
        info = os.fstat(fd)
        _require_regular(path, info)  # swapped for something else since the stat above
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb"), info
