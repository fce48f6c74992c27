"""The header of a usage CSV: the columns we load and their other names, the header rules, and where each of
the file's columns goes.

A file that is not a text CSV, an empty one, one delimited by something else than commas, a header without a
timestamp or a model column, or one that repeats a column is refused with one line that says how to fix it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from loader.csv_scanner import count_line_endings, first_record_end, usable_end
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
#: The longest header line, in bytes; a longer one (or a quote in it that never closes) is refused.
MAX_HEADER_BYTES = 64 << 10
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
        n = usable_end(buf, False)
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
    end, open_quote = first_record_end(buf, final)
    if end < 0 and open_quote:
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
