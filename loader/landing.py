"""Copying a file's records into the landing table (telemetry_raw.usage_rows).

Two paths. The bulk path hands the file's bytes to PostgreSQL's own CSV parser (COPY ... FORMAT csv), the
fastest way there is; the careful path parses record by record in Python, so that every bad record (ragged,
bad UTF-8, NUL bytes, broken quotes) becomes a reject with its line number instead of failing the load.
Memory does not grow with the file on either path, and both reject a record longer than MAX_RECORD_BYTES the same
way: the bulk path leaves any file with such a line to the careful path, which rejects it without holding it.
Both read exactly the planned range, which ends after a complete record, and extend the plan's fingerprint with it.
"""

from __future__ import annotations

import csv
import io
import re
import time

import psycopg
from psycopg import sql

from loader.checkpoints import Fingerprint, ReadPlan
from loader.contract import USAGE_ROWS, USAGE_ROWS_RECORD_NUMBER
from loader.csv_header import CSV_COLUMNS, Header
from loader.csv_records import HashingReader, iter_records
from loader.csv_scanner import MAX_RECORD_BYTES
from loader.progress import Progress
from loader.sources import open_regular


class _NeedsCarefulPath(Exception):
    """The bytes cannot go to COPY as they are (blank lines, NUL bytes, bad UTF-8, quoted line breaks...)."""


# A line that fits in a chunk is shorter than the record limit, so only a block's first line (which continues the
# previous block's tail) needs measuring.
_BULK_CHUNK = 1 << 20
assert _BULK_CHUNK <= MAX_RECORD_BYTES


def copy_records(
    conn: psycopg.Connection, header: Header, plan: ReadPlan, load_id: int, progress: Progress
) -> tuple[HashingReader, bool]:
    """Stream the planned bytes into the landing table with COPY; memory does not grow with the file.

    The bulk path hands the file's bytes to PostgreSQL's own CSV parser, the fastest way there is. It is taken
    when the header maps every column and each block of lines passes cheap checks; anything else (or a COPY
    error such as a ragged row) rolls it back and the careful path parses record by record in Python, so that
    each bad record becomes a reject with its line number. Returns the reader (hash, bytes) and whether the
    read ended cleanly: the planned range was there in full and ends after a complete record (if not, the file
    changed while it was read, and the checkpoint makes the next run read it in full).
    """
    if all(header.targets) and header.lf_line_endings:
        records, lines = plan.position.records, plan.position.lines
        try:
            with conn.transaction():
                fingerprint = fingerprint_from_start(plan)
                stream, clean_end = _copy_bulk(conn, header, plan, load_id, progress, fingerprint)
                return stream, finish_read(plan, stream, fingerprint, clean_end)
        except (_NeedsCarefulPath, psycopg.errors.DataError, psycopg.errors.QueryCanceled):
            plan.position.records, plan.position.lines = records, lines
    fingerprint = fingerprint_from_start(plan)
    stream, clean_end = _copy_careful(conn, header, plan, load_id, progress, fingerprint)
    return stream, finish_read(plan, stream, fingerprint, clean_end)


def fingerprint_from_start(plan: ReadPlan) -> Fingerprint | None:
    return plan.fingerprint.copy() if plan.fingerprint is not None and plan.fingerprint.length == plan.start else None


def finish_read(plan: ReadPlan, stream: HashingReader, fingerprint: Fingerprint | None, clean_end: bool) -> bool:
    """Whether the read ended cleanly; the plan's fingerprint then covers [0, end), ready for the checkpoint."""
    complete = stream.bytes_read == plan.end - plan.start  # else the file shrank while it was read
    if complete and fingerprint is not None:
        fingerprint.length = plan.end
        plan.fingerprint = fingerprint
    return clean_end and complete


def _check_block(block: bytes, width: int) -> None:
    """Raise _NeedsCarefulPath unless every line of the block is one well-formed record."""
    if b"\x00" in block or block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block:
        raise _NeedsCarefulPath
    if b"\\." in block and re.search(rb"(?:^|\n)\\\.\r?(?:\n|$)", block):  # COPY's end-of-data marker
        raise _NeedsCarefulPath
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise _NeedsCarefulPath from None
    if '"' in text:
        # Quotes mean different things to PostgreSQL and to the careful path when they are not around a whole
        # field (PostgreSQL reads a"b"c as abc): bulk-load only lines that are exactly what Python's csv
        # module writes for the values it reads from them.
        quoted = [line.rstrip("\r") for line in text.split("\n") if '"' in line]
        try:
            rows = list(csv.reader(quoted, strict=True))
        except csv.Error:
            raise _NeedsCarefulPath from None
        if len(rows) != len(quoted) or any(len(row) != width for row in rows):
            raise _NeedsCarefulPath
        rewritten = io.StringIO()
        csv.writer(rewritten, lineterminator="\n").writerows(rows)
        if rewritten.getvalue().split("\n")[:-1] != quoted:
            raise _NeedsCarefulPath


def _first_line_too_long(block: bytes) -> bool:
    first = block.find(b"\n")
    return first - (1 if first > 0 and block[first - 1] == 0x0D else 0) > MAX_RECORD_BYTES


def _copy_bulk(
    conn: psycopg.Connection, header: Header, plan: ReadPlan, load_id: int, progress: Progress,
    fingerprint: Fingerprint | None,
) -> tuple[HashingReader, bool]:
    position = plan.position
    conn.execute(
        "select set_config('telemetry.load_id', %s, true), set_config('telemetry.line_delta', %s, true), "
        "setval(%s::regclass, %s, false)",
        [str(load_id), str(position.lines - position.records), str(USAGE_ROWS_RECORD_NUMBER), position.records + 1],
    )
    statement = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        USAGE_ROWS, sql.SQL(", ").join(sql.Identifier(t) for t in header.targets if t))
    width = len(header.names)
    handle, _ = open_regular(plan.path)
    with handle, conn.cursor() as cursor:
        stream = HashingReader(handle, plan.start, plan.end, fingerprint.digest if fingerprint else None)
        next_report = time.monotonic() + 5
        with cursor.copy(statement) as copy:
            tail = b""
            while chunk := stream.read(_BULK_CHUNK):
                block = tail + chunk
                cut = block.rfind(b"\n") + 1
                block, tail = block[:cut], block[cut:]
                if block:
                    if _first_line_too_long(block):
                        raise _NeedsCarefulPath
                    _check_block(block, width)
                    copy.write(block)
                if len(tail) > MAX_RECORD_BYTES + 1:
                    raise _NeedsCarefulPath
                if time.monotonic() > next_report:
                    progress(f"{plan.path.name}: {(plan.start + stream.bytes_read) * 100 // max(plan.end, 1)}% read")
                    next_report = time.monotonic() + 5
            if tail:  # the range does not end with a line ending: only the careful path tells what is unfinished
                raise _NeedsCarefulPath
        count = cursor.rowcount
    position.records += count
    position.lines += count
    return stream, True


def _copy_careful(
    conn: psycopg.Connection, header: Header, plan: ReadPlan, load_id: int, progress: Progress,
    fingerprint: Fingerprint | None,
) -> tuple[HashingReader, bool]:
    columns = [c for c in CSV_COLUMNS if c in header.loaded_columns]
    positions = [CSV_COLUMNS.index(c) for c in columns]
    statement = sql.SQL("copy {} (load_id, record_number, line_number, {}, parse_error) from stdin").format(
        USAGE_ROWS, sql.SQL(", ").join(map(sql.Identifier, columns)))
    plan.position.unfinished = 0
    handle, _ = open_regular(plan.path)
    with handle:
        stream = HashingReader(handle, plan.start, plan.end, fingerprint.digest if fingerprint else None)
        next_report = time.monotonic() + 5
        with conn.cursor().copy(statement) as copy:
            for record in iter_records(stream, header, plan.position):
                values = record.values
                copy.write_row(
                    (load_id, record.record_number, record.line_number, *[values[p] for p in positions],
                     record.parse_error)
                )
                if time.monotonic() > next_report:
                    progress(f"{plan.path.name}: {plan.position.records:,} rows read "
                             f"({(plan.start + stream.bytes_read) * 100 // max(plan.end, 1)}%)")
                    next_report = time.monotonic() + 5
    return stream, plan.position.unfinished == 0
