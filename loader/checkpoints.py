"""Incremental file reads: where each file was read up to, and what to read next time.

A checkpoint holds the byte offset, line and record counts reached in a file, what the file looked like then
(size, mtime, ctime, device and inode) and two fingerprints: SHA-256 of its head (the first 64 KiB) and of every
byte read, [0, bytes_read). Next time:

- the same size, times and inode, and the same head: unchanged, nothing is read (one stat, one 64 KiB read, one
  query);
- anything else: the bytes [0, bytes_read) are hashed (one sequential read) and compared with the checkpoint. The
  same bytes mean the file only grew: only the new bytes are read. Other bytes mean it was edited (anywhere),
  truncated, rewritten or rotated: it is read in full, and deduplication keeps the calls already stored from
  counting twice.

Only complete records are read. A last record whose line ending has not been written yet (a writer in the middle
of it, however long it stalls) is left where it is; the checkpoint stops before it and it is read once finished.
``ReadPlan.pending_notice`` says so. Checkpoints move in the same transaction as the rows they cover.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psycopg
from psycopg import sql

from loader.contract import FILE_CHECKPOINTS, LOAD_AUDIT, LoadStatus
from loader.csv_header import Header
from loader.csv_scanner import MAX_RECORD_BYTES, ReadPosition, Scan, scan_complete_records
from loader.errors import TelemetryError
from loader.sources import open_regular

HEAD_BYTES = 64 * 1024
#: A file modified this recently may be modified again within the same timestamp tick, which its mtime would not
#: show: its checkpoint then keeps no mtime, so that the next run verifies the bytes instead of trusting the stat.
RACY_SECONDS = 2.0
_CHUNK = 1 << 20

#: How a file was read (``ReadPlan.reason``, ``LoadResult.read``), in the words of the CLI summary.
READ_DESCRIPTIONS = {
    "new file": "read in full",
    "changed": "changed since the last load, read in full",
    "grown": "read the bytes appended since the last load",
    "unchanged": "unchanged since the last load, nothing read",
    "no rows yet": "a header and no rows yet, nothing read",
}

#: What a checkpoint holds, in order (the columns of telemetry_raw.file_checkpoints but its key and updated_at).
CHECKPOINT_COLUMNS = ("head_bytes", "head_fingerprint", "bytes_read", "lines_read", "records_read", "clean_end",
                      "file_size", "mtime_ns", "ctime_ns", "file_id", "prefix_fingerprint")
_SELECT = sql.SQL("select {} from {} where source_file = %s").format(
    sql.SQL(", ").join(map(sql.Identifier, CHECKPOINT_COLUMNS)), FILE_CHECKPOINTS)
_UPSERT = sql.SQL("""
    insert into {} as c (source_file, {}, updated_at)
    values (%s, {}, now())
    on conflict (source_file) do update set {}, updated_at = excluded.updated_at
""").format(
    FILE_CHECKPOINTS,
    sql.SQL(", ").join(map(sql.Identifier, CHECKPOINT_COLUMNS)),
    sql.SQL(", ").join(sql.Placeholder() * len(CHECKPOINT_COLUMNS)),
    sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in CHECKPOINT_COLUMNS),
)
_REFRESH = sql.SQL(
    "update {} set file_size = %s, mtime_ns = %s, ctime_ns = %s, file_id = %s, prefix_fingerprint = %s, "
    "updated_at = now() where source_file = %s"
).format(FILE_CHECKPOINTS)
# Checkpoints of 0.1.0 have no prefix fingerprint: the loads' own SHA-256 (of [byte_offset, byte_offset + bytes))
# verify the bytes instead, newest load first.
_LOADS_OF_FILE = sql.SQL(
    "select byte_offset, bytes, sha256 from {} where source_file = %s and status <> %s order by load_id desc"
).format(LOAD_AUDIT)


class PostgresCheckpoints:
    """The checkpoints of a database (telemetry_raw.file_checkpoints); moves in the caller's transaction.

    ``plan_read`` and ``save_checkpoint`` take this or any object with the same four methods (the Spark engine
    keeps its checkpoints in its load events, loader.spark_ingest)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def checkpoint(self, source_file: str) -> tuple | None:
        """The stored row, in the order of CHECKPOINTCHECKPOINT_COLUMNS, or None."""
        return self.conn.execute(_SELECT, [source_file]).fetchone()

    def refresh(self, source_file: str, status_values: list[object], prefix_fingerprint: str) -> None:
        """The same bytes with a new stat: the checkpoint takes the stat."""
        self.conn.execute(_REFRESH, [*status_values, prefix_fingerprint, source_file])

    def loads_of_file(self, source_file: str) -> list[tuple[int, int, str]]:
        """(byte_offset, bytes, sha256) of the file's loads, newest first (for 0.1.0's checkpoints)."""
        return self.conn.execute(_LOADS_OF_FILE, [source_file, LoadStatus.ABORTED.value]).fetchall()

    def save(self, source_file: str, values: list[object]) -> None:
        self.conn.execute(_UPSERT, [source_file, *values])


def _store(conn_or_store):
    return PostgresCheckpoints(conn_or_store) if isinstance(conn_or_store, psycopg.Connection) else conn_or_store




@dataclass
class Fingerprint:
    """SHA-256 of a file's bytes [0, length)."""

    digest: Any  # a hashlib object, still open for more bytes
    length: int

    def copy(self) -> Fingerprint:
        return Fingerprint(self.digest.copy(), self.length)


@dataclass
class ReadPlan:
    """Which bytes of a file to load, the record/line numbering they continue, and what is left for later."""

    path: Path
    start: int
    end: int
    position: ReadPosition
    reason: str  # a key of READ_DESCRIPTIONS
    #: Bytes after ``end`` that are not read: a last record whose line ending is not written yet.
    pending_bytes: int = 0
    #: The line where that unfinished record starts.
    pending_line: int = 0
    #: Whether it is unfinished inside a quoted field (else it only lacks its line ending).
    pending_open_quote: bool = False
    #: The file's status when the plan was made (stored with the checkpoint), and the time just before it was taken.
    status: os.stat_result | None = None
    status_time_ns: int = 0
    #: SHA-256 of [0, start); ``copy_records`` extends it with the bytes it loads, to [0, end).
    fingerprint: Fingerprint | None = None
    #: (bytes, SHA-256) of the file's head, [0, min(end, HEAD_BYTES)), when the plan was made.
    head: tuple[int, str] | None = None

    @property
    def unchanged(self) -> bool:
        """Nothing to read: the file is unchanged, or holds no complete record after the checkpoint."""
        return self.start >= self.end

    @property
    def pending_notice(self) -> str | None:
        """One line about the unfinished last record, for the CLI to print as a warning; None when there is none."""
        if not self.pending_bytes:
            return None
        if self.pending_open_quote:
            what = (f"the record that starts on line {self.pending_line} has not ended yet (a quoted field in it is "
                    "still open); it is loaded once the writer finishes it (if the file is complete, close the "
                    "quote)")
        else:
            what = (f"line {self.pending_line} has no line ending yet; it is loaded once the writer finishes it (if "
                    "the file is complete, end that line with a newline)")
        if self.pending_bytes > MAX_RECORD_BYTES:
            what += "; it is longer than 1 MiB already, so it will be rejected as too long"
        return f"{self.path}: {what}"


@dataclass(frozen=True)
class _Checkpoint:
    head_bytes: int
    head_fingerprint: str
    bytes_read: int
    lines_read: int
    records_read: int
    clean_end: bool
    # None in checkpoints written by 0.1.0, and mtime_ns when the file was changing as it was read.
    file_size: int | None
    mtime_ns: int | None
    ctime_ns: int | None
    file_id: str | None
    prefix_fingerprint: str | None

    def describes(self, status: os.stat_result) -> bool:
        """The file has the size, times and identity it had when the checkpoint was written."""
        return (self.mtime_ns is not None and self.file_size == status.st_size
                and self.mtime_ns == status.st_mtime_ns and self.ctime_ns == status.st_ctime_ns
                and self.file_id == _file_id(status))


def _file_id(status: os.stat_result) -> str:
    return f"{status.st_dev}:{status.st_ino}"


def _status_values(status: os.stat_result, taken_ns: int) -> list[object]:
    """size, mtime_ns, ctime_ns, file_id as stored; mtime_ns is None when the file had changed too shortly before
    the status was taken (``taken_ns``) to tell a later change within the same timestamp tick."""
    recent = taken_ns - max(status.st_mtime_ns, status.st_ctime_ns) < RACY_SECONDS * 1e9
    return [status.st_size, None if recent else status.st_mtime_ns, status.st_ctime_ns, _file_id(status)]


def _head(handle: BinaryIO, end: int) -> tuple[int, str]:
    length = min(end, HEAD_BYTES)
    handle.seek(0)
    return length, hashlib.sha256(handle.read(length)).hexdigest()


def _fingerprint(handle: BinaryIO, length: int) -> Fingerprint:
    digest = hashlib.sha256()
    handle.seek(0)
    left = length
    while left > 0:
        chunk = handle.read(min(_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return Fingerprint(digest, length - left)


def plan_read(conn: psycopg.Connection | PostgresCheckpoints, header: Header) -> ReadPlan:
    """What to read of a file now: nothing, the bytes appended since its checkpoint, or all of it."""
    conn = _store(conn)
    taken_ns = time.time_ns()
    handle, status = open_regular(header.path)
    with handle:
        try:
            plan = _plan(conn, header, handle, status, taken_ns)
            plan.status_time_ns = taken_ns
            return plan
        except OSError as exc:
            raise TelemetryError(f"{header.path}: cannot read the file: {exc.strerror or exc}") from None


def _plan(conn: PostgresCheckpoints, header: Header, handle: BinaryIO, status: os.stat_result, taken_ns: int
          ) -> ReadPlan:
    path = header.path
    row = conn.checkpoint(str(path.resolve()))
    if row is None:
        return _plan_full(handle, header, status, "new file")
    checkpoint = _Checkpoint(*row)
    if not checkpoint.clean_end or status.st_size < checkpoint.bytes_read or checkpoint.bytes_read < header.size:
        return _plan_full(handle, header, status, "changed")
    position = ReadPosition(checkpoint.records_read, checkpoint.lines_read)
    if checkpoint.describes(status) and _head(handle, checkpoint.head_bytes)[1] == checkpoint.head_fingerprint:
        scan = _scan(handle, header, checkpoint.bytes_read, status)
        if scan.end == checkpoint.bytes_read:  # what follows the checkpoint, if anything, is still unfinished
            return _plan_rest(path, checkpoint.bytes_read, position, "unchanged", scan, status, None, None)
    fingerprint = _verify_prefix(conn, handle, path, checkpoint)
    if fingerprint is None:
        return _plan_full(handle, header, status, "changed")
    scan = _scan(handle, header, checkpoint.bytes_read, status)
    if scan.end == checkpoint.bytes_read:
        # The same bytes with a new stat (touched, or a writer's unfinished line grew): nothing to read, and the
        # checkpoint takes the new stat so that the next run is cheap again.
        conn.refresh(str(path.resolve()), _status_values(status, taken_ns), fingerprint.digest.hexdigest())
        return _plan_rest(path, checkpoint.bytes_read, position, "unchanged", scan, status, None, None)
    return _plan_rest(path, checkpoint.bytes_read, position, "grown", scan, status, fingerprint,
                      _head(handle, scan.end))


def _scan(handle: BinaryIO, header: Header, start: int, status: os.stat_result) -> Scan:
    return scan_complete_records(handle, start, status.st_size, cr_line_endings=not header.lf_line_endings)


def _plan_full(handle: BinaryIO, header: Header, status: os.stat_result, reason: str) -> ReadPlan:
    position = ReadPosition(0, header.lines)
    scan = _scan(handle, header, header.size, status)
    if not scan.has_records:  # a header, maybe blank lines, maybe a record the writer has not finished
        return ReadPlan(header.path, header.size, header.size, position, "no rows yet",
                        pending_bytes=status.st_size - scan.end, pending_line=header.lines + scan.lines + 1,
                        pending_open_quote=scan.open_quote, status=status)
    return _plan_rest(header.path, header.size, position, reason, scan, status, _fingerprint(handle, header.size),
                      _head(handle, scan.end))


def _plan_rest(path: Path, start: int, position: ReadPosition, reason: str, scan: Scan, status: os.stat_result,
               fingerprint: Fingerprint | None, head: tuple[int, str] | None) -> ReadPlan:
    return ReadPlan(
        path, start, scan.end, position, reason,
        pending_bytes=status.st_size - scan.end, pending_line=position.lines + scan.lines + 1,
        pending_open_quote=scan.open_quote, status=status, fingerprint=fingerprint, head=head,
    )


def _verify_prefix(conn: PostgresCheckpoints, handle: BinaryIO, path: Path, checkpoint: _Checkpoint
                   ) -> Fingerprint | None:
    """SHA-256 of [0, bytes_read) when those are still the bytes the checkpoint covers, else None.

    One sequential read. A checkpoint of 0.1.0 has no fingerprint of them: its head fingerprint and the SHA-256
    each load recorded of the bytes it read verify them instead; without a chain of loads up to the head it is
    "changed".
    """
    ranges: list[tuple[int, int, str]] = []
    if checkpoint.prefix_fingerprint is None:
        chain = _loads_covering(conn, path, checkpoint)
        if chain is None:
            return None
        ranges = chain
    whole, head = hashlib.sha256(), hashlib.sha256()
    pieces = [hashlib.sha256() for _ in ranges]
    handle.seek(0)
    offset = 0
    while offset < checkpoint.bytes_read:
        chunk = handle.read(min(_CHUNK, checkpoint.bytes_read - offset))
        if not chunk:
            return None
        view = memoryview(chunk)
        whole.update(view)
        if offset < checkpoint.head_bytes:
            head.update(view[: checkpoint.head_bytes - offset])
        for (low, high, _), piece in zip(ranges, pieces, strict=True):
            a, b = max(low, offset), min(high, offset + len(chunk))
            if a < b:
                piece.update(view[a - offset : b - offset])
        offset += len(chunk)
    if checkpoint.prefix_fingerprint is not None:
        same = whole.hexdigest() == checkpoint.prefix_fingerprint
    else:
        same = head.hexdigest() == checkpoint.head_fingerprint and all(
            piece.hexdigest() == digest for (_, _, digest), piece in zip(ranges, pieces, strict=True))
    return Fingerprint(whole, offset) if same else None


def _loads_covering(conn: PostgresCheckpoints, path: Path, checkpoint: _Checkpoint
                    ) -> list[tuple[int, int, str]] | None:
    """The loads whose bytes lead, back to back, from the head to bytes_read: [(start, end, sha256)], or None."""
    need = checkpoint.bytes_read
    chain: list[tuple[int, int, str]] = []
    for offset, length, digest in conn.loads_of_file(str(path.resolve())):
        if need <= checkpoint.head_bytes:
            break
        if length <= 0 or offset + length != need:
            return None
        chain.append((offset, need, digest))
        need = offset
    return chain if need <= checkpoint.head_bytes else None


def save_checkpoint(conn: psycopg.Connection | PostgresCheckpoints, plan: ReadPlan, position: ReadPosition,
                    clean_end: bool) -> None:
    """Record how far the file was read; in the transaction of the rows read."""
    status, taken_ns = (plan.status, plan.status_time_ns) if plan.status else (os.stat(plan.path), time.time_ns())
    head = plan.head
    if head is None:
        handle, _ = open_regular(plan.path)
        with handle:
            head = _head(handle, plan.end)
    fingerprint = plan.fingerprint
    complete = clean_end and fingerprint is not None and fingerprint.length == plan.end
    _store(conn).save(str(plan.path.resolve()), [
        head[0], head[1], plan.end, position.lines, position.records, clean_end,
        *_status_values(status, taken_ns), fingerprint.digest.hexdigest() if complete else None,
    ])
