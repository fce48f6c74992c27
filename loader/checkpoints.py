"""Incremental file reads: where each file was read up to, and what to read next time.

A checkpoint holds the byte offset, line and record counts reached in a file, and a fingerprint of the file's
head. Next time: the same head and the same size means unchanged (nothing to read); the same head and more bytes
means the file grew (read only the new bytes); anything else means the file was truncated, rewritten or rotated
(read it all; deduplication does the rest). Checkpoints move in the same transaction as the rows they cover.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from loader.contract import FILE_CHECKPOINTS
from loader.csvfile import Header, ReadPosition

HEAD_BYTES = 64 * 1024
#: A last line without a newline, in a file changed this recently, may still be being written: leave it.
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class ReadPlan:
    """Which bytes of a file to load, and the record/line numbering they continue."""

    path: Path
    start: int
    end: int
    position: ReadPosition
    reason: str  # "new file", "grown", "unchanged", "changed"

    @property
    def unchanged(self) -> bool:
        return self.start >= self.end


def _head_digest(path: Path, length: int) -> str:
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(length)).hexdigest()


def _complete_end(path: Path, size: int) -> int:
    """The size to read: all of it, unless an unterminated last line is probably still being written."""
    if size == 0 or time.time() - path.stat().st_mtime > SETTLE_SECONDS:
        return size
    with path.open("rb") as handle:
        handle.seek(max(0, size - HEAD_BYTES))
        tail = handle.read()
    if tail.endswith(b"\n"):
        return size
    cut = tail.rfind(b"\n")
    return size - len(tail) + cut + 1 if cut >= 0 else size


def plan_read(conn: psycopg.Connection, header: Header) -> ReadPlan:
    path = header.path
    size = path.stat().st_size
    end = _complete_end(path, size)
    fresh = ReadPlan(path, header.size, end, ReadPosition(records=0, lines=header.lines), "new file")
    row = conn.execute(
        sql.SQL("select head_bytes, head_fingerprint, bytes_read, lines_read, records_read, clean_end "
                "from {} where source_file = %s").format(FILE_CHECKPOINTS),
        [str(path.resolve())],
    ).fetchone()
    if row is None:
        return fresh
    head_bytes, fingerprint, bytes_read, lines_read, records_read, clean_end = row
    if size < bytes_read or _head_digest(path, head_bytes) != fingerprint:
        return ReadPlan(path, header.size, end, fresh.position, "changed")
    if end <= bytes_read:
        return ReadPlan(path, bytes_read, bytes_read, ReadPosition(records_read, lines_read), "unchanged")
    if not clean_end:  # the last read ended inside a line: its rows may be incomplete, so read it all again
        return ReadPlan(path, header.size, end, fresh.position, "changed")
    return ReadPlan(path, bytes_read, end, ReadPosition(records_read, lines_read), "grown")


def save_checkpoint(conn: psycopg.Connection, plan: ReadPlan, position: ReadPosition, clean_end: bool) -> None:
    head_bytes = min(plan.end, HEAD_BYTES)
    conn.execute(
        sql.SQL("""
        insert into {} as c
            (source_file, head_bytes, head_fingerprint, bytes_read, lines_read, records_read, clean_end, updated_at)
        values (%s, %s, %s, %s, %s, %s, %s, now())
        on conflict (source_file) do update set
            head_bytes = excluded.head_bytes, head_fingerprint = excluded.head_fingerprint,
            bytes_read = excluded.bytes_read, lines_read = excluded.lines_read,
            records_read = excluded.records_read, clean_end = excluded.clean_end, updated_at = excluded.updated_at
        """).format(FILE_CHECKPOINTS),
        [str(plan.path.resolve()), head_bytes, _head_digest(plan.path, head_bytes), plan.end, position.lines,
         position.records, clean_end],
    )
