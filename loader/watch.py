"""``telemetry ingest csv --watch``: stay running and load what a writer appends to its CSV as it appends it.

Each time a watched file changes (its size, modification time or inode: a rotation), one ``ingest_csv`` run
loads its new complete records, exactly as a cron run would: the same lock, checkpoints, recovery, counts and
exactly-once guarantees, so a watch and cron runs may share a database. What the watch saves is the process: dbt
and the loader stay imported, and dbt's partial parse stays warm on disk. A record the writer has not finished
(no line ending yet) waits for the next change.

Changes are seen through inotify on Linux (the folders of the watched files, so that a file that is created or
rotated in is seen too) and by a look at each file's status every POLL_SECONDS in any case (the only way where
inotify is missing, and a safety net where its events are lost). Stopping (``stop()`` true, e.g. after SIGINT or
SIGTERM) lets the load in progress finish: a load is a transaction, so even a kill loses nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loader.config import Settings
from loader.errors import TelemetryError
from loader.ingest import IngestSummary, ingest_csv
from loader.progress import Progress, silent
from loader.sources import resolve_paths

#: The longest wait between two looks at the files' status (with inotify, events wake the watch sooner).
POLL_SECONDS = 0.1

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100

Signature = tuple[tuple[str, int, int, int], ...]


class _Inotify:
    """Wakes the watch when a file in one of its folders is written, created or moved in (Linux only)."""

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc, self._fd, self._folders = libc, fd, set()

    @classmethod
    def open(cls) -> _Inotify | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        return cls(libc, fd) if fd >= 0 else None

    def watch(self, folder: Path) -> None:
        if folder in self._folders:
            return
        mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
        if self._libc.inotify_add_watch(self._fd, os.fsencode(folder), mask) >= 0:
            self._folders.add(folder)

    def wait(self, seconds: float) -> None:
        """Until an event comes or ``seconds`` pass; the events are drained (the files' status says what changed)."""
        ready, _, _ = select.select([self._fd], [], [], seconds)
        if ready:
            try:
                while os.read(self._fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self._fd)


def _files(target: Path) -> list[Path]:
    """The files the PATH names now; none while it names nothing (a file the writer has not created yet)."""
    try:
        return resolve_paths(target)
    except TelemetryError:
        if glob.has_magic(str(target)) or not target.exists() or target.is_dir():  # a folder with no CSV yet
            return []
        raise


def _signature(files: list[Path]) -> Signature:
    found = []
    for path in files:
        try:
            status = path.stat()
        except OSError:
            continue
        found.append((str(path), status.st_size, status.st_mtime_ns, status.st_ino))
    return tuple(found)


def _folders(target: Path, files: list[Path]) -> set[Path]:
    """The folders whose events matter: those of the files, and the one the PATH itself names or lies in."""
    base = Path(str(target).split("*", 1)[0].split("?", 1)[0].split("[", 1)[0] or ".")
    named = base if base.is_dir() else base.parent
    return {p for p in {*(f.parent for f in files), named} if p.is_dir()}


def watch_csv(
    path: Path | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress = silent,
    report: Callable[[IngestSummary], None] = lambda summary: None,
    on_error: Callable[[TelemetryError], None] = lambda error: None,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Load the CSV (file, directory or glob; default TELEMETRY_CSV_PATH) now and again after every change,
    until ``stop()`` is true. ``report`` gets the summary of each run that loaded something; a run that fails
    with a TelemetryError (a bad header, the database down) goes to ``on_error`` and the watch goes on: the next
    change tries again."""
    settings = settings or Settings.from_env()
    target = settings.csv_path if path is None else path
    notifier = _Inotify.open()
    seen: Signature | None = None
    try:
        while not stop():
            files = _files(target)
            now = _signature(files)
            if now != seen:
                if files:
                    try:
                        summary = ingest_csv(target, settings=settings, progress=progress)
                    except TelemetryError as exc:
                        on_error(exc)
                    else:
                        if any(load.load_id is not None for load in summary.loads) or (
                                summary.pruned and summary.pruned.anything):
                            report(summary)
                elif seen is None:
                    progress(f"waiting for {target} to appear")
                seen = now  # taken before the run: what the writer appended meanwhile is a change next time
            if notifier is not None:
                for folder in _folders(target, files):
                    notifier.watch(folder)
                notifier.wait(POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)
    finally:
        if notifier is not None:
            notifier.close()
