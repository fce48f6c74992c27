"""Reading a usage CSV: the header check, the column mapping, and the records of a file with their line numbers.

The file is read as bytes and cut into records by a small scanner that follows the quoting rules of Python's csv
module (strict): a record ends at a line ending outside quotes. The kind of line ending is the file's, decided by
its header line: LF (or CRLF) in most files, a bare CR in old Mac files; a bare CR in a file whose lines end in LF
is data, kept in its field (as Python's csv module keeps it in a quoted field), never the end of a record. Each
record is then
decoded as UTF-8 and parsed on its own, so one bad byte rejects one row, not the file, and memory holds one record
at a time: a record longer than MAX_RECORD_BYTES is rejected without ever being held, and the header may not be
longer than MAX_HEADER_BYTES. The same scanner tells where the last complete record of a file ends
(``scan_complete_records``), so that a record a writer has not finished is never read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from loader.errors import TelemetryError
from loader.sources import open_regular

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

#: The longest record read, in bytes, line ending excluded; a longer one is rejected without being held in memory.
MAX_RECORD_BYTES = 1 << 20
#: The longest header line, in bytes; a longer one (or a quote in it that never closes) is refused.
MAX_HEADER_BYTES = 64 << 10
# The scanner bounds every record before the csv module sees it; its own field limit (128 KiB) would be lower.
csv.field_size_limit(1 << 30)
TOO_LONG = "the record is longer than 1 MiB, the limit for one record; shorten its fields (e.g. the notes)"

_CHUNK = 1 << 20
_QUOTE, _COMMA, _CR, _LF = 0x22, 0x2C, 0x0D, 0x0A
# Characters of Unicode's private use area, one of which a record does not hold (it holds fewer than 2 MB).
_CR_STAND_INS = range(0xF0000, 0xFFFFE)
# Where the scanner stands: outside quotes, inside a quoted field, or in the rest of a line that holds a CSV
# error (text after a closing quote): Python's csv module drops that rest, and the record ends with the line.
_OUT, _IN, _DROP = 0, 1, 2

_SURROGATES = re.compile("[\udc80-\udcff]")
_LOOKS_LIKE_DATA = re.compile(r"^\s*(\d[\d.:T+\-Z ]*|true|false)\s*$", re.IGNORECASE)
_BLANK = b"\r\n\t \xef\xbb\xbf"  # bytes of the lines skipped before the header (a BOM counts as blank)
_EXCEL_SEP = re.compile(rb'(?:\xef\xbb\xbf)?"?sep=([^\r\n"]?)"?[ \t]*(?:\r\n|\n|\r)', re.IGNORECASE)
_DELIMITERS = ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"))
_CANONICAL_HEADER = "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes"

#: Files that are not text CSVs, by their first bytes: what the file is, and what to do.
_SIGNATURES = (
    (b"\xff\xfe\x00\x00", "is UTF-32 encoded (it starts with a UTF-32 byte order mark); save it as UTF-8"),
    (b"\x00\x00\xfe\xff", "is UTF-32 encoded (it starts with a UTF-32 byte order mark); save it as UTF-8"),
    (b"\xff\xfe", "is UTF-16 encoded (it starts with a UTF-16 byte order mark); save it as UTF-8 "
                  "(iconv -f UTF-16 -t UTF-8, or in Excel: Save As > CSV UTF-8)"),
    (b"\xfe\xff", "is UTF-16 encoded (it starts with a UTF-16 byte order mark); save it as UTF-8 "
                  "(iconv -f UTF-16 -t UTF-8, or in Excel: Save As > CSV UTF-8)"),
    (b"\x1f\x8b", "is gzip-compressed; decompress it first (gunzip -c FILE > usage.csv) and pass the CSV"),
    (b"PK\x03\x04", "is a ZIP archive (an Excel .xlsx workbook is one), not a CSV; extract the CSV from it, or "
                    "open it in Excel and save it as CSV UTF-8"),
    (b"PK\x05\x06", "is an empty ZIP archive, not a CSV; pass the CSV file itself"),
    (b"\xfd7zXZ\x00", "is xz-compressed; decompress it first (unxz -c FILE > usage.csv) and pass the CSV"),
    (b"\x28\xb5\x2f\xfd", "is zstd-compressed; decompress it first (unzstd -c FILE > usage.csv) and pass the CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "is an Excel 97-2003 workbook (.xls), not a CSV; open it in Excel and save "
                                      "it as CSV UTF-8"),
    (b"%PDF-", "is a PDF document, not a CSV; pass the CSV file the telemetry script writes"),
    (b"\x89PNG\r\n\x1a\n", "is a PNG image, not a CSV; pass the CSV file the telemetry script writes"),
    (b"\xff\xd8\xff", "is a JPEG image, not a CSV; pass the CSV file the telemetry script writes"),
    (b"SQLite format 3\x00", "is an SQLite database, not a CSV; export the table as CSV first"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")


def _normalise_name(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


@dataclass(frozen=True)
class Header:
    """The header of a usage CSV and where each of its columns goes."""

    path: Path
    names: tuple[str, ...]
    #: For each CSV column, the landing-table column it fills, or None when it is ignored.
    targets: tuple[str | None, ...]
    #: Bytes before the first record: blank lines, an Excel ``sep=,`` line, the header and its line ending.
    size: int
    #: Physical lines taken by all that (more than 1 when blank lines come first or a header name holds a newline).
    lines: int
    #: False for old Mac files whose lines end with a bare CR.
    lf_line_endings: bool = True

    @property
    def loaded_columns(self) -> tuple[str, ...]:
        return tuple(t for t in self.targets if t is not None)

    @property
    def ignored_columns(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.targets, strict=True) if t is None)


# --- the record scanner ------------------------------------------------------------------------------------------


def count_line_endings(buf: bytes, start: int = 0, end: int | None = None, *, cr_ends_lines: bool = True) -> int:
    """Physical lines ending in buf[start:end]: LF, CRLF (one) and, when ``cr_ends_lines``, bare CR (as Python's
    universal newlines count); in a file whose lines end in LF a bare CR is data and ends no line."""
    end = len(buf) if end is None else end
    if not cr_ends_lines:
        return buf.count(b"\n", start, end)
    return buf.count(b"\n", start, end) + buf.count(b"\r", start, end) - buf.count(b"\r\n", start, end)


class _Bytes:
    """A buffer with the next LF, CR and quote at or after a position, cached: scans only move forward, so each
    byte is searched once however long the lines (no quadratic rescans of a long line or a CR-only file)."""

    __slots__ = ("buf", "n", "cr_ends_lines", "_found")
    _LF, _CR, _QUOTE = 0, 1, 2
    _BYTES = (b"\n", b"\r", b'"')

    def __init__(self, buf: bytes, n: int, cr_ends_lines: bool = True) -> None:
        self.buf, self.n, self.cr_ends_lines = buf, n, cr_ends_lines
        self._found = [-1, -1, -1]  # the last position found of each of _BYTES

    def _next(self, which: int, i: int) -> int:
        if self._found[which] < i:
            found = self.buf.find(self._BYTES[which], i, self.n)
            self._found[which] = self.n if found < 0 else found
        return self._found[which]

    def lf(self, i: int) -> int:
        return self._next(self._LF, i)

    def cr(self, i: int) -> int:
        return self._next(self._CR, i)

    def quote(self, i: int) -> int:
        return self._next(self._QUOTE, i)

    def eol(self, i: int) -> int:
        """The first line ending (an LF, or a CR when CRs end lines) at or after i, or n."""
        return min(self.lf(i), self.cr(i)) if self.cr_ends_lines else self.lf(i)

    def after_eol(self, t: int) -> int:
        """Just after the line ending at t (CRLF is one line ending)."""
        buf = self.buf
        return t + 2 if buf[t] == _CR and t + 1 < len(buf) and buf[t + 1] == _LF else t + 1


def _usable_end(buf: bytes, final: bool) -> int:
    """How much of buf the scanner may look at: a last CR or quote waits for the next byte (CRLF, or "")."""
    n = len(buf)
    return n - 1 if not final and n and buf[n - 1] in (_CR, _QUOTE) else n


def _record_end(data: _Bytes, i: int, state: int, record_start: int, final: bool) -> tuple[int, int, int]:
    """Scan data.buf[i:data.n] for the end of the record in progress.

    ``state`` is where the scan stands at i; ``record_start`` is the index of the record's first byte (-1 when it
    is no longer in the buffer), where a quote opens a quoted field as it does after a comma. Returns
    (end, i, state): end is the index just after the record's line ending, or -1 when the record goes on past
    n, in which case the scan resumes at (i, state). buf[n - 1] is a CR or a quote only when ``final``.
    """
    buf, n = data.buf, data.n
    while i < n:
        if state == _OUT:
            eol = data.eol(i)
            q = data.quote(i)
            if q > eol:
                q = eol
            if q == eol:
                if eol == n:
                    return -1, n, _OUT
                end = data.after_eol(eol)
                return end, end, _OUT
            if q == record_start or buf[q - 1] == _COMMA:
                state = _IN
            i = q + 1  # a quote inside an unquoted field is an ordinary character
        elif state == _IN:
            q = data.quote(i)
            if q == n:
                return -1, n, _IN
            if q + 1 == len(buf):  # only when final: the quote closes the field at the end of the data
                return -1, n, _OUT
            after = buf[q + 1]  # may be the byte held back at n: a doubled quote then moves i past n
            if after == _QUOTE:
                i = q + 2
            else:
                closed = _after_closing_quote(buf, q + 1, data.cr_ends_lines, final)
                if closed is None:
                    return -1, q, _IN
                i, state = q + 1, closed
        else:
            t = data.eol(i)
            if t == n:
                return -1, n, _DROP
            end = data.after_eol(t)
            return end, end, _OUT
    return -1, i, state


def _after_closing_quote(buf: bytes, j: int, cr_ends_lines: bool, final: bool) -> int | None:
    """The state after a quote that closes a field, followed by buf[j] (not a quote): outside after a comma or a
    line ending, a malformed record after anything else (a CR that is data, in a file whose lines end in LF);
    None when that cannot be told yet (a CR at the end of the data, whose LF may follow)."""
    byte = buf[j]
    if byte == _COMMA or byte == _LF or (byte == _CR and cr_ends_lines):
        return _OUT
    if byte != _CR:
        return _DROP
    if j + 1 < len(buf):
        return _OUT if buf[j + 1] == _LF else _DROP
    return _OUT if final else None


def _opens_field(byte: int, cr_ends_lines: bool) -> bool:
    """Whether a quote after this byte opens a quoted field: after a comma or a line ending."""
    return byte == _COMMA or byte == _LF or (cr_ends_lines and byte == _CR)


def _advance(buf: bytes, n: int, state: int, previous: int, cr_ends_lines: bool = True,
             final: bool = False) -> tuple[int, int, int]:
    """Scan all of buf[:n] from ``state``; ``previous`` is the byte before buf[0] (LF at a record boundary).

    Returns (state, index just after the last record that ends in buf[:n] or -1, where the scan stopped: n, or
    n + 1 when a doubled quote took the byte held back at n). Jumps from quote to quote and looks for line endings
    only in the last stretch outside quotes that has one, so most of the text is searched once, by find.
    """
    outside: list[int] = []  # start and stop of each stretch scanned outside quotes
    i = 0
    data = None
    while i < n:
        if state == _OUT:
            q = buf.find(b'"', i, n)
            if q < 0:
                outside += (i, n)
                i = n
                break
            outside += (i, q)
            if _opens_field(buf[q - 1] if q else previous, cr_ends_lines):
                state = _IN
            i = q + 1
        elif state == _IN:
            q = buf.find(b'"', i, n)
            if q < 0:
                i = n
                break
            if q + 1 == len(buf):
                state, i = _OUT, n
                break
            after = buf[q + 1]
            if after == _QUOTE:
                i = q + 2
            else:
                closed = _after_closing_quote(buf, q + 1, cr_ends_lines, final)
                if closed is None:
                    i = q
                    break
                i, state = q + 1, closed
        else:
            data = data or _Bytes(buf, n, cr_ends_lines)
            t = data.eol(i)
            if t == n:
                i = n
                break
            outside += (t, data.after_eol(t))  # the line ending that ends the malformed record
            i = outside[-1]
            state = _OUT
    crs = cr_ends_lines and b"\r" in buf
    for k in range(len(outside) - 2, -1, -2):
        start, stop = outside[k], outside[k + 1]
        t = buf.rfind(b"\n", start, stop)
        if crs:
            t = max(t, buf.rfind(b"\r", start, stop))
        if t >= 0:
            return state, t + 1, i
    return state, -1, i


@dataclass(frozen=True)
class Scan:
    """Where the complete records of a byte range end (see ``scan_complete_records``)."""

    #: Offset just after the last complete record (the range's start when there is none).
    end: int
    #: Physical lines in [start, end).
    lines: int
    #: Whether [start, end) holds anything but line endings (at least one record, maybe a rejected one).
    has_records: bool
    #: Whether the unfinished rest [end, stop) is inside a quoted field.
    open_quote: bool


def scan_complete_records(handle: BinaryIO, start: int, stop: int, *, cr_line_endings: bool = False) -> Scan:
    """Find where the last complete record in [start, stop) of a file ends; ``start`` must be a record boundary.

    A record is complete when its line ending (outside quotes) has been written. At the end of the file a bare
    CR completes a record only in a CR-only file (elsewhere the LF of a CRLF may still be coming). One
    sequential read; memory stays at one chunk.
    """
    handle.seek(start)
    position, left, carry = start, stop - start, b""
    state, previous = _OUT, _LF
    end, end_lines, lines, first_data = start, 0, 0, -1
    while True:
        chunk = handle.read(min(_CHUNK, left)) if left > 0 else b""
        left -= len(chunk)
        final = not chunk or left <= 0
        buf = carry + chunk
        n = _usable_end(buf, final)
        if final and n and buf[n - 1] == _CR and not cr_line_endings:
            n -= 1
        state, last, n = _advance(buf, n, state, previous, cr_line_endings, final)
        if first_data < 0:
            skipped = n - len(buf[:n].lstrip(b"\r\n"))
            if skipped < n:
                first_data = position + skipped
        if last >= 0:
            end, end_lines = position + last, lines + count_line_endings(buf, 0, last, cr_ends_lines=cr_line_endings)
        lines += count_line_endings(buf, 0, n, cr_ends_lines=cr_line_endings)
        if n:
            previous = buf[n - 1]
        carry, position = buf[n:], position + n
        if final:
            return Scan(end, end_lines, 0 <= first_data < end, state == _IN)


# --- the header --------------------------------------------------------------------------------------------------


def _refuse_non_text(path: Path, head: bytes) -> None:
    """Files that are not text CSVs get a message naming what they are, not "NUL bytes" or "not UTF-8"."""
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise TelemetryError(f"{path}: the file {what}")
    if _BZIP2.match(head):
        raise TelemetryError(
            f"{path}: the file is bzip2-compressed; decompress it first (bunzip2 -c FILE > usage.csv) and pass the CSV"
        )
    sample = head[:512]
    even, odd = sample[0::2], sample[1::2]
    if len(odd) >= 4:
        for zeros, text, order in ((odd, even, "little"), (even, odd, "big")):
            if zeros.count(0) >= 0.9 * len(zeros) and 0 not in text[: len(zeros)]:
                raise TelemetryError(
                    f"{path}: the file is UTF-16 encoded ({order}-endian, without a byte order mark); save it as "
                    "UTF-8 (iconv -f UTF-16 -t UTF-8, or in Excel: Save As > CSV UTF-8)"
                )


def _skip_blank_lines(handle: BinaryIO, offset: int) -> tuple[int, int, bool]:
    """From a line start, skip lines made only of spaces, tabs, BOM bytes and line endings.

    Returns (offset of the first other line, line endings skipped, whether there is such a line). Reads in
    chunks: a million blank lines cost time, not memory.
    """
    handle.seek(offset)
    position = line_start = offset
    lines, carry = 0, b""
    while True:
        chunk = handle.read(16 << 10)  # small: the header is usually right there
        buf = carry + chunk
        rest = buf.lstrip(_BLANK)
        blank = len(buf) - len(rest)
        if rest:
            t = max(buf.rfind(b"\n", 0, blank), buf.rfind(b"\r", 0, blank))
            if t >= 0:
                lines += count_line_endings(buf, 0, t + 1)
                line_start = position + t + 1
            return line_start, lines, True
        if not chunk:
            return line_start, lines, False
        n = _usable_end(buf, False)
        t = max(buf.rfind(b"\n", 0, n), buf.rfind(b"\r", 0, n))
        if t >= 0:
            line_start = position + t + 1
        lines += count_line_endings(buf, 0, n)
        carry, position = buf[n:], position + n


def _decode(raw: bytes, path: Path, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TelemetryError(
            f"{path}: the {what} is not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8"
        ) from None


def _other_delimiter(text: str, names: list[str]) -> str | None:
    """The delimiter a header uses when it is not a comma (Excel in many locales writes semicolons)."""
    best, best_fields = None, 1
    for delimiter, name in _DELIMITERS:
        if delimiter not in text:
            continue
        try:
            fields = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        known = {_normalise_name(f) for f in fields} & {*CSV_COLUMNS, *ALIASES}
        if (known or len(names) == 1) and len(fields) > best_fields:
            best, best_fields = name, len(fields)
    return best


def read_header(path: Path) -> Header:
    """Check a file's header; every problem is a TelemetryError naming the file and how to fix it."""
    handle, _ = open_regular(path)
    with handle:
        try:
            return _read_header(handle, path)
        except OSError as exc:
            raise TelemetryError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _read_header(handle: BinaryIO, path: Path) -> Header:
    _refuse_non_text(path, handle.read(512))
    offset, lines_before, found = _skip_blank_lines(handle, 0)
    if found:
        handle.seek(offset)
        excel = _EXCEL_SEP.match(handle.read(64))
        if excel:  # Excel's "sep=," hint line before the header
            delimiter = excel.group(1).decode("utf-8", "replace")
            if delimiter != ",":
                name = dict(_DELIMITERS).get(delimiter, f"{delimiter!r}")
                raise TelemetryError(
                    f"{path}: line {lines_before + 1}: the file is {name}-delimited (its first line says "
                    f"sep={delimiter}); llm-telemetry reads comma-separated files: re-export with commas"
                )
            offset, skipped, found = _skip_blank_lines(handle, offset + excel.end())
            lines_before += 1 + skipped
    if not found:
        raise TelemetryError(
            f"{path}: the file is empty; expected a header line such as {_CANONICAL_HEADER}"
        )
    line_no = lines_before + 1
    where = f"{path}: line {line_no}"
    handle.seek(offset)
    buf = handle.read(MAX_HEADER_BYTES + 3)
    final = len(buf) < MAX_HEADER_BYTES + 3
    end, _, state = _record_end(_Bytes(buf, _usable_end(buf, final)), 0, _OUT, 0, final)
    if end < 0 and state == _IN:
        raise TelemetryError(
            f"{where}: the header opens a quote that never closes"
            + ("" if final else f" within {MAX_HEADER_BYTES // 1024} KiB")
            + "; close the quote or remove it from the header"
        )
    raw = buf if end < 0 else buf[:end]
    content = raw.rstrip(b"\r\n") if end >= 0 else raw
    if len(content) > MAX_HEADER_BYTES or end < 0 and not final:
        raise TelemetryError(
            f"{where}: the header is longer than {MAX_HEADER_BYTES // 1024} KiB, the limit; a usage CSV needs a "
            f"header of column names such as {_CANONICAL_HEADER}"
        )
    if b"\x00" in raw:
        raise TelemetryError(f"{where}: the header holds NUL bytes; this is not a text CSV file")
    text = _decode(raw, path, "header").lstrip("\ufeff")
    try:
        names = next(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (csv.Error, StopIteration) as exc:
        raise TelemetryError(f"{where}: cannot read the header as CSV: {exc}") from None
    lines = lines_before + count_line_endings(raw) + (0 if end >= 0 else 1)

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
        found_names = ", ".join(repr(n.strip()) for n in names) or "none"
        delimiter = _other_delimiter(text, names)
        if delimiter:
            raise TelemetryError(
                f"{where}: the file is {delimiter}-delimited; llm-telemetry reads comma-separated files: "
                "re-export with commas (in Excel: Save As > CSV UTF-8)"
            )
        if sum(bool(_LOOKS_LIKE_DATA.match(n)) for n in names) >= 2 and not seen:
            raise TelemetryError(
                f"{where} looks like data, not a header (found {found_names}); add the header line "
                f"{_CANONICAL_HEADER}"
            )
        raise TelemetryError(
            f"{path}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; found columns {found_names}; the header needs at least timestamp and model"
        )
    return Header(path=path, names=tuple(names), targets=tuple(targets), size=offset + len(raw), lines=lines,
                  lf_line_endings=raw.endswith(b"\n"))


# --- records -----------------------------------------------------------------------------------------------------


@dataclass
class ReadPosition:
    """How far a reader got: data records and physical lines (header included) consumed so far."""

    records: int
    lines: int
    #: Bytes at the end of the stream that were not read because their record has not ended.
    unfinished: int = 0


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


def _split_records(stream: io.RawIOBase, position: ReadPosition,
                   cr_ends_lines: bool = False) -> Iterator[tuple[bytes | None, int]]:
    """The records of a stream that starts at a record boundary: (bytes without the line ending, lines).

    A record longer than MAX_RECORD_BYTES comes as (None, lines): its bytes are dropped as they are scanned, so
    memory holds at most about MAX_RECORD_BYTES plus one chunk. A last record without its line ending is not
    returned; ``position.unfinished`` counts its bytes.
    """
    buf = b""
    start = i = 0  # the record in progress starts at buf[start]; the scan resumes at buf[i]
    state = _OUT
    dropped_lines = -1  # >= 0 while an over-long record is being skipped: its line endings already dropped
    dropped_bytes = 0
    final = False
    while not final:
        chunk = stream.read(_CHUNK)
        final = not chunk
        buf += chunk
        data = _Bytes(buf, _usable_end(buf, final), cr_ends_lines)
        slow_until = 0  # the fast path found bare CRs before this index
        while True:
            if state == _OUT and i == start and dropped_lines < 0 and start >= slow_until:
                # Fast path: the lines before the next quote are records as they are, unless a bare CR splits one
                # (in a file whose lines end in CR; elsewhere it is data).
                quote = data.quote(start)
                last_lf = buf.rfind(b"\n", start, quote)
                if last_lf >= 0:
                    crs = buf.count(b"\r", start, last_lf)
                    if crs and cr_ends_lines and crs != buf.count(b"\r\n", start, last_lf + 1):
                        slow_until = quote
                    else:
                        for line in buf[start:last_lf].split(b"\n"):
                            if crs and line.endswith(b"\r"):
                                line = line[:-1]
                            yield (line if len(line) <= MAX_RECORD_BYTES else None), 1
                        start = i = last_lf + 1
            end, i, state = _record_end(data, i, state, start if dropped_lines < 0 else -1, final)
            if end < 0:
                break
            content_end = end - (2 if buf[end - 1] == _LF and end - 2 >= 0 and buf[end - 2] == _CR else 1)
            lines = count_line_endings(buf, start, end, cr_ends_lines=cr_ends_lines)
            if dropped_lines >= 0 or content_end - start > MAX_RECORD_BYTES:
                yield None, lines + max(dropped_lines, 0)
            else:
                yield buf[start:content_end], lines
            start, dropped_lines, dropped_bytes = end, -1, 0
        if final:
            position.unfinished = dropped_bytes + len(buf) - start
            return
        if dropped_lines < 0 and i - start > MAX_RECORD_BYTES:
            dropped_lines = 0  # too long already: skip the rest of it without keeping it
        if dropped_lines >= 0:
            dropped_lines += count_line_endings(buf, start, i, cr_ends_lines=cr_ends_lines)
            dropped_bytes += i - start
            buf, start, i = buf[i - 1 :], 1, 1  # keep one byte: a quote after a comma opens a field
        else:
            buf, i, start = buf[start:], i - start, 0


def _parse_record(raw: bytes) -> tuple[list[str], str | None]:
    text = raw.decode("utf-8", "surrogateescape")
    if '"' not in text:
        return (text.split(",") if text else []), None
    # The scanner has decided where the record ends: a CR left in it is data (Python's csv module would end the
    # record there), so it stands in as a character the text does not hold while the record is parsed.
    stand_in = next(c for c in map(chr, _CR_STAND_INS) if c not in text) if "\r" in text else None
    try:
        rows = list(csv.reader(io.StringIO(text.replace("\r", stand_in) if stand_in else text, newline=""),
                               strict=True))
    except csv.Error as exc:
        return [], ("unterminated quoted field" if "end of data" in str(exc) else f"malformed CSV: {exc}")
    row = rows[0] if rows else []
    return ([field.replace(stand_in, "\r") for field in row] if stand_in else row), None


def iter_records(stream: io.RawIOBase, header: Header, position: ReadPosition) -> Iterator[Record]:
    """The records of a byte stream positioned just after the header (or at a resume point).

    ``position`` says how many records and lines came before the stream, and is advanced as records are read.
    Blank lines are not records and are skipped. A record with the wrong number of fields, one that cannot be
    stored as text, or one longer than MAX_RECORD_BYTES comes back with ``parse_error`` set so that it is
    rejected, never dropped. A last record whose line ending is missing is not read (``position.unfinished``).
    """
    width = len(header.names)
    slots = [CSV_COLUMNS.index(t) if t is not None else None for t in header.targets]
    for raw, lines in _split_records(stream, position, cr_ends_lines=not header.lf_line_endings):
        start_line = position.lines + 1
        position.lines += lines
        if raw is None:
            position.records += 1
            yield Record(position.records, start_line, [None] * len(CSV_COLUMNS), TOO_LONG)
            continue
        row, problem = _parse_record(raw)
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
