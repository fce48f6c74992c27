"""Reading a usage CSV: the header check, the column mapping, and a stream of records with line numbers.

The file is read as bytes and decoded as UTF-8 record by record, so one bad byte rejects one row, not the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from loader.errors import TelemetryError

#: Columns of the landing table that come from the CSV, in landing-table order.
CSV_COLUMNS = (
    "timestamp",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "task_success",
    "task_type",
    "duration_ms",
    "notes",
    "session_id",
    "error_message",
    "cost_usd",
    "cache_read_tokens",
    "cache_write_tokens",
)
REQUIRED_COLUMNS = ("timestamp", "model")

#: Other names some writers use for our columns (matched like the canonical names, case-insensitively).
ALIASES = {
    "ts": "timestamp",
    "time": "timestamp",
    "created_at": "timestamp",
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "success": "task_success",
    "prompt_name": "task_type",
    "cost": "cost_usd",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
}

# Big notes fields are legitimate (tool output pasted into notes); the default limit is 128 KiB.
csv.field_size_limit(1 << 30)

_SURROGATES = re.compile("[\udc80-\udcff]")
_LOOKS_LIKE_DATA = re.compile(r"^\s*(\d[\d.:T+\-Z ]*|true|false)\s*$", re.IGNORECASE)


def _normalise_name(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


@dataclass(frozen=True)
class Header:
    """The header of a usage CSV and where each of its columns goes."""

    path: Path
    names: tuple[str, ...]
    #: For each CSV column, the landing-table column it fills, or None when it is ignored.
    targets: tuple[str | None, ...]
    #: Bytes taken by the header line, including its line ending.
    size: int
    #: Physical lines taken by the header (more than 1 only when a header name holds a newline).
    lines: int
    #: False for old Mac files whose lines end with a bare CR.
    lf_line_endings: bool = True

    @property
    def loaded_columns(self) -> tuple[str, ...]:
        return tuple(t for t in self.targets if t is not None)

    @property
    def ignored_columns(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.targets, strict=True) if t is None)


def _decode(raw: bytes, path: Path, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TelemetryError(
            f"{path}: the {what} is not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8"
        ) from None


def read_header(path: Path) -> Header:
    """Check a file's header; every problem is a TelemetryError naming the file and how to fix it."""
    if not path.exists():
        raise TelemetryError(
            f"{path}: no such file; pass a CSV path or set TELEMETRY_CSV_PATH (default .telemetry/usage.csv)"
        )
    if path.is_dir():
        raise TelemetryError(f"{path}: is a directory with no .csv files; pass a CSV file or a directory of them")
    try:
        with path.open("rb") as handle:
            skipped = b""  # blank lines before the header are not data
            line = handle.readline()
            while line and not line.strip(b"\r\n\t \xef\xbb\xbf"):
                skipped += line
                line = handle.readline()
            first = line
            cr = first.find(b"\r")
            if cr != -1 and first[cr + 1 : cr + 2] != b"\n":  # old Mac line endings: lines end at a bare CR
                first = first[: cr + 1]
            else:
                # A header name may legally hold a quoted newline: keep reading until the quotes balance.
                while first.count(b'"') % 2 == 1:
                    more = handle.readline()
                    if not more:
                        break
                    first += more
    except OSError as exc:
        raise TelemetryError(f"{path}: cannot read the file: {exc.strerror}") from None
    if not first.strip(b"\r\n\t \xef\xbb\xbf"):
        raise TelemetryError(
            f"{path}: the file is empty; expected a header line such as "
            "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes"
        )
    line_no = skipped.count(b"\n") + 1
    where = f"{path}: line {line_no}"
    if b"\x00" in first:
        raise TelemetryError(f"{where}: the header holds NUL bytes; this is not a text CSV file")
    text = _decode(first, path, "header").lstrip("\ufeff")
    try:
        names = next(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (csv.Error, StopIteration) as exc:
        raise TelemetryError(f"{where}: cannot read the header as CSV: {exc}") from None
    lines = line_no - 1 + max(1, len(io.StringIO(text, newline="").readlines()))

    targets: list[str | None] = []
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        key = _normalise_name(name)
        target = key if key in CSV_COLUMNS else ALIASES.get(key)
        if target is not None:
            if target in seen:
                raise TelemetryError(
                    f"{where}: columns {seen[target]} and {position} both give {target!r}; "
                    "rename or remove one of them"
                )
            seen[target] = position
        targets.append(target)

    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        found = ", ".join(repr(n.strip()) for n in names) or "none"
        if sum(bool(_LOOKS_LIKE_DATA.match(n)) for n in names) >= 2 and not seen:
            raise TelemetryError(
                f"{where} looks like data, not a header (found {found}); add the header line "
                "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes"
            )
        raise TelemetryError(
            f"{path}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; found columns {found}; the header needs at least timestamp and model"
        )
    return Header(path=path, names=tuple(names), targets=tuple(targets), size=len(skipped) + len(first), lines=lines,
                  lf_line_endings=first.endswith(b"\n"))


@dataclass
class ReadPosition:
    """How far a reader got: data records and physical lines (header included) consumed so far."""

    records: int
    lines: int


@dataclass
class Record:
    """One CSV record: its position in the file and its values by landing-table column."""

    record_number: int
    line_number: int
    values: list[str | None]
    parse_error: str | None


class HashingReader(io.RawIOBase):
    """A read-only byte stream over [start, end) of a file that hashes and counts what passes through."""

    def __init__(self, handle: BinaryIO, start: int, end: int) -> None:
        handle.seek(start)
        self._handle = handle
        self._left = end - start
        self.sha256 = hashlib.sha256()
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
    Blank lines are not records and are skipped. A record with the wrong number of fields, or one that cannot
    be stored as text, comes back with ``parse_error`` set so that it is rejected, never dropped.
    """
    text = io.TextIOWrapper(
        io.BufferedReader(stream, buffer_size=1 << 20), encoding="utf-8", errors="surrogateescape", newline=""
    )
    reader = csv.reader(text, strict=True)
    width = len(header.names)
    slots = [CSV_COLUMNS.index(t) if t is not None else None for t in header.targets]
    lines_before_stream = position.lines
    while True:
        start_line = position.lines + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            position.lines = lines_before_stream + reader.line_num
            position.records += 1
            reason = "unterminated quoted field" if "end of data" in str(exc) else f"malformed CSV: {exc}"
            yield Record(position.records, start_line, [None] * len(CSV_COLUMNS), reason)
            continue
        position.lines = lines_before_stream + reader.line_num
        if not row:
            continue
        position.records += 1
        values: list[str | None] = [None] * len(CSV_COLUMNS)
        problem = None
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
