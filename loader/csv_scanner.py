"""The record scanner: where the records of a usage CSV begin and end, as bytes, with their line numbers.

The file is read as bytes and cut into records by a small scanner that follows the quoting rules of Python's csv
module (strict): a record ends at a line ending outside quotes. The kind of line ending is the file's, decided by
its header line: LF (or CRLF) in most files, a bare CR in old Mac files; a bare CR in a file whose lines end in LF
is data, kept in its field (as Python's csv module keeps it in a quoted field), never the end of a record. Each
record is then parsed on its own (``parse_record``), so one bad record rejects one row, not the file, and memory
holds one record at a time: a record longer than MAX_RECORD_BYTES is rejected without ever being held. The same
scanner tells where the last complete record of a file ends (``scan_complete_records``), so that a record a
writer has not finished is never read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

#: The longest record read, in bytes, line ending excluded; a longer one is rejected without being held in memory.
MAX_RECORD_BYTES = 1 << 20
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


def usable_end(buf: bytes, final: bool) -> int:
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
        n = usable_end(buf, final)
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


@dataclass


class ReadPosition:
    """How far a reader got: data records and physical lines (header included) consumed so far."""

    records: int
    lines: int
    #: Bytes at the end of the stream that were not read because their record has not ended.
    unfinished: int = 0


def split_records(stream: io.RawIOBase, position: ReadPosition,
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
        data = _Bytes(buf, usable_end(buf, final), cr_ends_lines)
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


def parse_record(raw: bytes) -> tuple[list[str], str | None]:
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


def first_record_end(buf: bytes, final: bool) -> tuple[int, bool]:
    """Where the first record of buf ends (just after its line ending; -1 when it does not end in buf), and whether
    buf ends inside one of its quoted fields. Any line ending ends it: a header line tells the file's kind."""
    end, _, state = _record_end(_Bytes(buf, usable_end(buf, final)), 0, _OUT, 0, final)
    return end, state == _IN
