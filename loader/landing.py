"""Copying a file's records into the landing table (telemetry_raw.usage_rows).

Two paths. The bulk path hands the file's bytes to PostgreSQL's own CSV parser (COPY ... FORMAT csv), the
fastest way there is; the careful path parses record by record in Python, so that every bad record (ragged,
bad UTF-8, NUL bytes, broken quotes) becomes a reject with its line number instead of failing the load.
Memory does not grow with the file on either path.
"""

from __future__ import annotations

import csv
import io
import re
import time

import psycopg
from psycopg import sql

from loader.checkpoints import ReadPlan
from loader.contract import USAGE_ROWS, USAGE_ROWS_RECORD_NUMBER
from loader.csvfile import CSV_COLUMNS, HashingReader, Header, iter_records
from loader.progress import Progress


class _NeedsCarefulPath(Exception):
    """The bytes cannot go to COPY as they are (blank lines, NUL bytes, bad UTF-8, quoted line breaks...)."""


_BULK_CHUNK = 1 << 20


def copy_records(
    conn: psycopg.Connection, header: Header, plan: ReadPlan, load_id: int, progress: Progress
) -> tuple[HashingReader, bool]:
    """Stream the planned bytes into the landing table with COPY; memory does not grow with the file.

    The bulk path hands the file's bytes to PostgreSQL's own CSV parser, the fastest way there is. It is taken
    when the header maps every column and each block of lines passes cheap checks; anything else (or a COPY
    error such as a ragged row) rolls it back and the careful path parses record by record in Python, so that
    each bad record becomes a reject with its line number. Returns the reader (hash, bytes) and whether the
    read ended cleanly (after a newline, outside quotes).
    """
    if all(header.targets) and header.lf_line_endings:
        records, lines = plan.position.records, plan.position.lines
        try:
            with conn.transaction():
                return _copy_bulk(conn, header, plan, load_id, progress)
        except (_NeedsCarefulPath, psycopg.errors.DataError, psycopg.errors.QueryCanceled):
            plan.position.records, plan.position.lines = records, lines
    return _copy_careful(conn, header, plan, load_id, progress)


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


def _copy_bulk(
    conn: psycopg.Connection, header: Header, plan: ReadPlan, load_id: int, progress: Progress
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
    with plan.path.open("rb") as handle, conn.cursor() as cursor:
        stream = HashingReader(handle, plan.start, plan.end)
        next_report = time.monotonic() + 5
        with cursor.copy(statement) as copy:
            tail = b""
            while chunk := stream.read(_BULK_CHUNK):
                block = tail + chunk
                cut = block.rfind(b"\n") + 1
                block, tail = block[:cut], block[cut:]
                if block:
                    _check_block(block, width)
                    copy.write(block)
                if time.monotonic() > next_report:
                    progress(f"{plan.path.name}: {(plan.start + stream.bytes_read) * 100 // max(plan.end, 1)}% read")
                    next_report = time.monotonic() + 5
            if tail.strip(b"\r\n"):
                _check_block(tail, width)
                copy.write(tail)
        count = cursor.rowcount
    position.records += count
    position.lines += count
    return stream, plan.end > 0 and not tail.strip(b"\r\n")


def _copy_careful(
    conn: psycopg.Connection, header: Header, plan: ReadPlan, load_id: int, progress: Progress
) -> tuple[HashingReader, bool]:
    columns = [c for c in CSV_COLUMNS if c in header.loaded_columns]
    positions = [CSV_COLUMNS.index(c) for c in columns]
    statement = sql.SQL("copy {} (load_id, record_number, line_number, {}, parse_error) from stdin").format(
        USAGE_ROWS, sql.SQL(", ").join(map(sql.Identifier, columns)))
    clean_end = True
    with plan.path.open("rb") as handle:
        stream = HashingReader(handle, plan.start, plan.end)
        next_report = time.monotonic() + 5
        with conn.cursor().copy(statement) as copy:
            for record in iter_records(stream, header, plan.position):
                values = record.values
                copy.write_row(
                    (load_id, record.record_number, record.line_number, *[values[p] for p in positions],
                     record.parse_error)
                )
                clean_end = record.parse_error != "unterminated quoted field"
                if time.monotonic() > next_report:
                    progress(f"{plan.path.name}: {plan.position.records:,} rows read "
                             f"({(plan.start + stream.bytes_read) * 100 // max(plan.end, 1)}%)")
                    next_report = time.monotonic() + 5
        if plan.end > 0:
            handle.seek(plan.end - 1)
            clean_end = clean_end and handle.read(1) == b"\n"
    return stream, clean_end
