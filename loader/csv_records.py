"""The records of a usage CSV after its header: each with its record and line number and its values by
landing-table column, or the reason it is rejected; and the byte stream they are read from, hashed as it is read.

Records are cut by loader.csv_scanner and mapped by the header (loader.csv_header).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from loader.csv_header import CSV_COLUMNS, Header
from loader.csv_scanner import TOO_LONG, ReadPosition, parse_record, split_records

_SURROGATES = re.compile("[\udc80-\udcff]")


@dataclass


class Record:
    """One CSV record: its position in the file and its values by landing-table column."""

    record_number: int
    line_number: int
    values: list[str | None]
    parse_error: str | None


class HashingReader(io.RawIOBase):
    """A read-only byte stream over [start, end) of a file that hashes and counts what passes through.

    ``fingerprint``, when given, is a hash object of the bytes before ``start``; it is fed the same bytes, so that
    it ends as the hash of [0, end).
    """

    def __init__(self, handle: BinaryIO, start: int, end: int, fingerprint: Any = None) -> None:
        handle.seek(start)
        self._handle = handle
        self._left = end - start
        self.sha256 = hashlib.sha256()
        self.fingerprint = fingerprint
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        count = self._handle.readinto(view)
        if count:
            self.sha256.update(view[:count])
            if self.fingerprint is not None:
                self.fingerprint.update(view[:count])
            self.bytes_read += count
            self._left -= count
        return count or 0


def _clean(field: str) -> tuple[str, str | None]:
    """A field as PostgreSQL can store it, and the problem when it had to be changed."""
    problem = None
    if "\x00" in field:
        field = field.replace("\x00", "")
        problem = "the record holds NUL bytes"
    if _SURROGATES.search(field):
        field = field.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        problem = problem or "the record is not valid UTF-8 (save the file as UTF-8)"
    return field, problem


def iter_records(stream: io.RawIOBase, header: Header, position: ReadPosition) -> Iterator[Record]:
    """The records of a byte stream positioned just after the header (or at a resume point).

    ``position`` says how many records and lines came before the stream, and is advanced as records are read.
    Blank lines are not records and are skipped. A record with the wrong number of fields, one that cannot be
    stored as text, or one longer than MAX_RECORD_BYTES comes back with ``parse_error`` set so that it is
    rejected, never dropped. A last record whose line ending is missing is not read (``position.unfinished``).
    """
    width = len(header.names)
    slots = [CSV_COLUMNS.index(t) if t is not None else None for t in header.targets]
    for raw, lines in split_records(stream, position, cr_ends_lines=not header.lf_line_endings):
        start_line = position.lines + 1
        position.lines += lines
        if raw is None:
            position.records += 1
            yield Record(position.records, start_line, [None] * len(CSV_COLUMNS), TOO_LONG)
            continue
        row, problem = parse_record(raw)
        if problem is not None:
            position.records += 1
            yield Record(position.records, start_line, [None] * len(CSV_COLUMNS), problem)
            continue
        if not row:
            continue
        position.records += 1
        values: list[str | None] = [None] * len(CSV_COLUMNS)
        for slot, field in zip(slots, row, strict=False):
            if slot is not None:
                if "\x00" in field or _SURROGATES.search(field):
                    field, problem = _clean(field)
                values[slot] = field
        if problem is None:
            for field in row[width:]:
                if "\x00" in field or _SURROGATES.search(field):
                    problem = _clean(field)[1]
        if len(row) != width:
            problem = f"the record has {len(row)} fields, the header has {width}"
        yield Record(position.records, start_line, values, problem)
