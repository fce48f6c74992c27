"""Typing is total: no text in any CSV field, in any database collation, makes a load fail.

Every value either becomes its typed value or makes its row a reject with a reason; the load exits 0 and every
row is accounted for. Databases here are created by this module's own fixtures, on each target server: a plain
one (the server's default locale) and a "unicode" one whose collation widens regex classes such as \\d to every
script (ICU 'und' where the server has ICU, else PostgreSQL 18's builtin PG_UNICODE_FAST; the embedded server is
built without ICU).

The tests check three ways:
- the hand-written cases of hostile_values.py, in one file per database, through the real CLI;
- a reference implementation of the documented rules (``reference_row``), against the staging view, for
  thousands of generated values, in a plain and a unicode database at once (the two must agree);
- arbitrary text (hypothesis ``st.text()``) in every column of a few rows, through full ingests.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from helpers import Telemetry, with_dbname
from hostile_values import CASES, CSV_HEADER, HASH_OF_VALUES, NOTES_OF_THE_ROW, Rejected, base_row, session_hash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from loader import dbt

TARGETS = ["embedded", "external"] if os.environ.get("TELEMETRY_TEST_DATABASE_URL") else ["embedded"]

#: blank_characters() of macros/parse_values.sql: what is trimmed from both ends of every value but the notes.
BLANKS = (" \t\n\x0b\x0c\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
          "\u2028\u2029\u202f\u205f\u3000\u200b\ufeff")
OTHER_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५६७८९０１２３４５６７８９²³¹⁰𝟎𝟗"


# --- databases -------------------------------------------------------------------------------------------------


def _admin_url(request, target: str) -> str:
    if target == "embedded":
        return request.getfixturevalue("embedded_admin_url")
    return os.environ["TELEMETRY_TEST_DATABASE_URL"]


_UNICODE_COLLATIONS = (
    ("ICU 'und'", "template template0 encoding 'UTF8' locale_provider icu icu_locale 'und'"),
    ("builtin PG_UNICODE_FAST", "template template0 encoding 'UTF8' locale_provider builtin "
                                "builtin_locale 'PG_UNICODE_FAST'"),
)


@contextmanager
def _database(admin: str, collation: str) -> Iterator[str]:
    """A new database, plain or with a Unicode-aware collation (the first of _UNICODE_COLLATIONS the server
    supports); dropped afterwards."""
    name = f"telemetry_typing_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        if collation == "plain":
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        else:
            refusals = []
            for label, options in _UNICODE_COLLATIONS:
                try:
                    conn.execute(sql.SQL("create database {} " + options).format(sql.Identifier(name)))
                    break
                except psycopg.Error as error:
                    refusals.append(f"{label}: {str(error).strip()}")
            else:
                pytest.skip(f"the server supports no Unicode collation ({'; '.join(refusals)})")
    url = with_dbname(admin, name)
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        shutil.rmtree(dbt.target_path(url), ignore_errors=True)


@pytest.fixture(params=[(t, c) for t in TARGETS for c in ("plain", "unicode")], ids=lambda p: f"{p[0]}-{p[1]}")
def collated(request, tmp_path) -> Iterator[tuple[Telemetry, str]]:
    """(Telemetry on a new database, "plain" or "unicode") on each target server."""
    target, collation = request.param
    with _database(_admin_url(request, target), collation) as url:
        yield Telemetry(url=url, tmp_path=tmp_path), collation


@pytest.fixture(params=TARGETS)
def unicode_telemetry(request, tmp_path) -> Iterator[Telemetry]:
    """Telemetry on a new database with a Unicode-aware collation, on each target server."""
    with _database(_admin_url(request, request.param), "unicode") as url:
        yield Telemetry(url=url, tmp_path=tmp_path, retention_months=6)


@pytest.fixture(params=TARGETS)
def plain_and_unicode(request, tmp_path) -> Iterator[tuple[Telemetry, Telemetry]]:
    """A plain and a unicode database on one target server, each with its landing tables and staging view."""
    admin = _admin_url(request, request.param)
    with _database(admin, "plain") as plain, _database(admin, "unicode") as unicode:
        pair = (Telemetry(url=plain, tmp_path=tmp_path / "plain"), Telemetry(url=unicode, tmp_path=tmp_path / "icu"))
        for telemetry in pair:
            telemetry.ingest(telemetry.write("one.csv", "timestamp,model\n2026-01-15T10:00:00Z,m\n"))
        yield pair


def _query(url: str, statement: str, params: object = None) -> list[tuple]:
    """Rows of a query read in UTC (a year-1 timestamp in a zone west of UTC would be year 0 to Python)."""
    with psycopg.connect(url) as conn:
        conn.execute("set timezone to 'UTC'")
        return conn.execute(statement, params).fetchall()


def _unicode_digits_match_backslash_d(url: str) -> bool:
    return _query(url, r"select '٢' ~ '^\d$'")[0][0]


# --- writing CSV files -----------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict[str, str]]) -> list[int]:
    """Write rows under CSV_HEADER with Python's csv module (CRLF records); return each record's first line."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    lines, line = [], 2
    for row in rows:
        start = buffer.tell()
        writer.writerow([row[column] for column in CSV_HEADER])
        record = buffer.getvalue()[start:]
        lines.append(line)
        line += record.count("\n")  # as the loader counts lines: in a CRLF file a bare CR ends none
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    return lines


def _case_rows() -> list[dict[str, str]]:
    rows = []
    for number, case in enumerate(CASES, start=1):
        row = base_row(number) | case.others
        row[case.column] = case.raw
        rows.append(row)
    return rows


# --- the reference: the documented rules, in Python ------------------------------------------------------------

_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
                  r"(?:[Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)?")
_EPOCH = re.compile(r"[0-9]{9,10}(?:\.[0-9]{1,6})?")
_AMOUNT = re.compile(r"(?:[0-9]{1,12}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})(?:[eE][+-]?[0-9]{1,2})?")
_PHASE = re.compile(r"\b[Pp][Hh][Aa][Ss][Ee]\s*[:#-]?\s*([0-9]+(?:\.[0-9]+)*)", re.ASCII)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UNIX_TO_POSTGRES_EPOCH = 946_684_800
YEAR_1 = Decimal(-62_135_596_800)  # 0001-01-01T00:00:00Z in epoch seconds


def _trimmed(value: str | None) -> str | None:
    return (value.strip(BLANKS) or None) if value is not None else None


def reference_timestamp(text: str) -> Decimal | None:
    """Epoch seconds (exact to the microsecond, as PostgreSQL computes them) of an accepted spelling, else None."""
    if _EPOCH.fullmatch(text):  # to_timestamp(float8): rint of the microseconds since 2000-01-01, in doubles
        micros = round((float(text) - _UNIX_TO_POSTGRES_EPOCH) * 1_000_000)
        return Decimal(micros) / 1_000_000 + _UNIX_TO_POSTGRES_EPOCH
    match = _ISO.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute = (int(g) for g in match.group(1, 2, 3, 4, 5))
    second = int(match[6] or 0)
    sign, offset_hours, offset_minutes = match[8], int(match[9] or 0), int(match[10] or 0)
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour <= 23
            and minute <= 59 and second <= 59 and offset_hours <= 15 and offset_minutes <= 59):
        return None
    micros = round(float("." + match[7]) * 1_000_000) if match[7] else 0  # rint(strtod(fraction) * 1e6)
    days = (date(year, month, day) - date(1970, 1, 1)).days
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    if sign:
        seconds -= (1 if sign == "+" else -1) * (offset_hours * 3600 + offset_minutes * 60)
    return seconds + Decimal(micros) / 1_000_000


def reference_count(text: str) -> int | None:
    if re.fullmatch(r"[0-9]{1,18}", text):
        return int(text)
    match = re.fullmatch(r"([0-9]{1,18})\.0*", text)
    return int(match[1]) if match else None


def reference_amount(text: str) -> Decimal | None:
    return Decimal(text) if _AMOUNT.fullmatch(text) else None


def reference_boolean(text: str) -> bool | None:
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
        text.translate(_ASCII_LOWER))


def _typed(text: str | None, parse):
    """(value, rejected): NULL for an empty value, the parsed value, or a reject."""
    if text is None:
        return None, False
    value = parse(text)
    return value, value is None


COUNTS = (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens"), ("duration_ms", "duration_ms"),
          ("cache_read_tokens", "cache_read_tokens"), ("cache_write_tokens", "cache_write_tokens"))


def reference_row(raw: dict[str, str | None], now: datetime) -> dict[str, object]:
    """What the staging view must make of one landing row (README, "The CSV format"): the typed values, the
    rejection reason, and for a valid row its key's session_id. Timestamps as epoch seconds."""
    text = {column: _trimmed(value) for column, value in raw.items() if column != "notes"}
    notes = raw.get("notes")
    notes = notes.replace("\r\n", "\n") or None if notes is not None else None
    row: dict[str, object] = {"model": text["model"], "prompt_name": text["task_type"] or "(none)", "notes": notes}
    reasons = []
    if text["timestamp"] is None:
        reasons.append("timestamp is empty")
        row["timestamp"] = None
    else:
        row["timestamp"] = epoch = reference_timestamp(text["timestamp"])
        if epoch is None:
            reasons.append("timestamp is not ISO 8601 (e.g. 2026-02-23T22:19:28Z) or YYYY-MM-DD HH:MM:SS")
        elif epoch > Decimal(str((now + timedelta(days=1)).timestamp())):
            reasons.append("timestamp is more than a day in the future")
        elif epoch < YEAR_1:
            reasons.append("timestamp is before the year 1 (UTC)")
    if text["model"] is None:
        reasons.append("model is empty")
    for column, name in COUNTS:
        row[name], rejected = _typed(text[column], reference_count)
        if rejected:
            reasons.append(f"{column} is not a non-negative integer")
    row["success"], rejected = _typed(text["task_success"], reference_boolean)
    if rejected:
        reasons.append("task_success is not a boolean (true/false/1/0/yes/no)")
    row["cost_usd"], rejected = _typed(text["cost_usd"], reference_amount)
    if rejected:
        reasons.append("cost_usd is not a non-negative number")
    row["rejection_reason"] = reasons[0] if reasons else None
    match = _PHASE.search(notes or "")
    row["phase"] = match[1] if match else None
    success = row["success"]
    row["error_message"] = None if success else text["error_message"] or (notes if success is False else None)
    if not reasons:
        row["session_id"] = text["session_id"] or _session_hash(row, text["error_message"])
    return row


def _session_hash(row: dict[str, object], error_text: str | None) -> str:
    """The md5 of a valid row's normalised values (README, "Guarantees"): the staging model's session_id when the
    CSV gives none. Numbers as PostgreSQL prints them, the timestamp in UTC to the microsecond."""
    when = datetime(1970, 1, 1) + timedelta(microseconds=int(row["timestamp"] * 1_000_000))

    def text(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value).lower()
        return format(value, "f") if isinstance(value, Decimal) else str(value)

    values = [f"{when.year:04d}-{when:%m-%dT%H:%M:%S.%f}", row["model"], text(row["input_tokens"]),
              text(row["output_tokens"]), text(row["cache_read_tokens"]), text(row["cache_write_tokens"]),
              text(row["success"]), row["prompt_name"], text(row["duration_ms"]), row["notes"] or "",
              error_text or "", text(row["cost_usd"])]
    return hashlib.md5("\x1f".join(values).encode()).hexdigest()


# --- generated values ------------------------------------------------------------------------------------------

any_text = st.text(max_size=20)  # every code point but surrogates: control characters, NUL, quotes, commas, newlines
any_text_without_nul = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
blanks = st.text(st.sampled_from(BLANKS), max_size=2)
NOW = datetime.now(UTC).replace(microsecond=0)


def padded(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(blanks, values, blanks).map("".join)


def _two_digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


_signs = st.sampled_from("+-")
_offsets = (st.tuples(_signs, _two_digits(0, 15), st.sampled_from([":", ""]), _two_digits(0, 59)).map("".join)
            | st.tuples(_signs, _two_digits(0, 15)).map("".join))


@st.composite
def iso_timestamps(draw, *, valid: bool) -> str:
    """ISO spellings: every accepted form of an instant from year 1 to now (valid), or near-valid ones with fields
    in and just out of range, other separators, zone names and offsets beyond 15:59."""
    if valid:
        when = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=NOW.replace(tzinfo=None)))
        year, month, day, hour, minute, second = (f"{n:02d}" for n in (when.year, when.month, when.day, when.hour,
                                                                        when.minute, when.second))
        year = f"{when.year:04d}"
        separator, zone = draw(st.sampled_from("Tt ")), draw(st.sampled_from(["", "Z", "z"]) | _offsets)
    else:
        year = draw(st.sampled_from(["0000", "0001", "9999", "10000"]) | st.integers(0, 9999).map(lambda n: f"{n:04d}"))
        month, day = draw(st.sampled_from(["02", "11"]) | _two_digits(0, 13)), draw(_two_digits(0, 32))
        hour, minute, second = draw(_two_digits(0, 25)), draw(_two_digits(0, 61)), draw(_two_digits(0, 61))
        separator = draw(st.sampled_from("Tt _"))
        zone = draw(st.sampled_from(["", "Z", " UTC", " PST", " Europe/Paris"]) | st.tuples(
            _signs, _two_digits(0, 19), st.sampled_from([":", ""]), _two_digits(0, 99)).map("".join))
    text = f"{year}-{month}-{day}{separator}{hour}:{minute}"
    if draw(st.booleans()):
        text += f":{second}"
        if draw(st.booleans()):
            text += draw(st.sampled_from(".,")) + draw(st.text("0123456789", min_size=1, max_size=9 if valid else 11))
    return text + zone


@st.composite
def with_another_script(draw, values: st.SearchStrategy[str]) -> str:
    """A value with one of its ASCII digits replaced by a digit of another script (or a superscript)."""
    text = draw(values)
    places = [i for i, c in enumerate(text) if c in "0123456789"]
    if not places:
        return text
    i = draw(st.sampled_from(places))
    return text[:i] + draw(st.sampled_from(OTHER_DIGITS)) + text[i + 1:]


recent_timestamps = st.tuples(st.integers(0, 250 * 86400), st.sampled_from(
    ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%dT%H:%M:%S.000000Z"])).map(
    lambda age_and_format: (NOW - timedelta(seconds=age_and_format[0])).strftime(age_and_format[1]))
phase_notes = st.from_regex(
    r"\A[^\x00]{0,4}[Pp][Hh]ase[ \t\u00a0]{0,2}[:#-]?[ ]?[0-9٣]{1,3}(\.[0-9]{1,2})?[^\x00]{0,4}\Z")

#: Accepted spellings of the columns, possibly padded with blanks (error_message and notes take any text).
VALID = {
    "timestamp": padded(recent_timestamps | iso_timestamps(valid=True)
                        | st.from_regex(r"\A[1-9][0-9]{8,9}(\.[0-9]{1,6})?\Z")),
    "model": padded(st.sampled_from(["gpt-4o", "claude-3-opus", "openai/gpt-4.1"])),
    "task_success": padded(st.sampled_from(["true", "TRUE", "True", "false", "FaLsE", "yes", "No", "1", "0"])),
    "cost_usd": padded(st.decimals(0, 10**6, places=6).map(lambda d: format(d, "f"))
                       | st.sampled_from(["1e-05", ".5", "5.", "2.5E+3"])),
    "task_type": padded(st.sampled_from(["plan", "execute"])),
    "session_id": padded(st.sampled_from(["s-1", "s-2"])),
} | dict.fromkeys(("prompt_tokens", "completion_tokens", "duration_ms", "cache_read_tokens", "cache_write_tokens"),
                  padded(st.integers(0, 10**18 - 1).map(str) | st.integers(0, 10**6).map(lambda n: f"{n}.000")))

#: Spellings that are nearly accepted, or accepted only just.
NEAR_VALID = {
    "timestamp": padded(iso_timestamps(valid=False) | st.from_regex(r"\A[0-9]{8,11}(\.[0-9]{0,7})?\Z")
                        | with_another_script(iso_timestamps(valid=True))),
    "task_success": padded(st.sampled_from(["on", "t", "ｔｒｕｅ", "tru\u0435", "\u0661", "yes!"])),
    "cost_usd": padded(st.from_regex(r"\A[+-]?[0-9]{0,14}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?\Z")
                       | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", ".", "-0"])
                       | with_another_script(st.sampled_from(["0.5", "12", "1e-05"]))),
} | dict.fromkeys(("prompt_tokens", "completion_tokens", "duration_ms", "cache_read_tokens", "cache_write_tokens"),
                  padded(st.integers(10**17, 10**20).map(str)
                         | st.from_regex(r"\A[+-]?[0-9]{0,20}(\.[0-9]{0,3})?([eE][0-9])?\Z")
                         | st.sampled_from(["NaN", "Infinity", "0012", "12.", "-0", "1_000"])
                         | with_another_script(st.integers(0, 999).map(str))))


@st.composite
def rows_of(draw, text: st.SearchStrategy[str], absent: st.SearchStrategy[str | None],
            timestamps: st.SearchStrategy[str] = VALID["timestamp"]) -> dict[str, str | None]:
    """A row of accepted values (timestamps from `timestamps`) with up to three columns replaced by `text`, a
    near-valid spelling, or `absent` (the value of a column the file lacks): rows are rejected or valid, and
    valid ones carry odd text."""
    row = {column: draw(VALID.get(column, text)) for column in CSV_HEADER} | {"timestamp": draw(timestamps)}
    if draw(st.booleans()):
        row["notes"] = draw(phase_notes)
    for column in draw(st.sets(st.sampled_from(CSV_HEADER), max_size=3)):
        row[column] = draw(text | NEAR_VALID.get(column, text) | absent)
    return row


_TYPED_COLUMNS = ("rejection_reason", "timestamp", "model", "prompt_name", "input_tokens", "output_tokens",
                  "duration_ms", "cache_read_tokens", "cache_write_tokens", "success", "cost_usd", "notes", "phase",
                  "error_message", "session_id")
_TYPED_SELECT = (
    'select rejection_reason, extract(epoch from "timestamp"), model, prompt_name, input_tokens, output_tokens, '
    "duration_ms, cache_read_tokens, cache_write_tokens, success, cost_usd, notes, phase, error_message, session_id "
    "from telemetry.stg_telemetry__usage_rows where load_id = -1 order by record_number")


def _type_in_staging(url: str, rows: list[dict[str, str | None]]) -> tuple[datetime, list[dict[str, object]]]:
    """The staging view's typing of landing rows written straight into the landing table (rolled back)."""
    columns = list(rows[0])
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        copy = sql.SQL("copy {} (load_id, record_number, line_number, {}) from stdin").format(
            sql.Identifier("telemetry_raw", "usage_rows"), sql.SQL(", ").join(map(sql.Identifier, columns)))
        with conn.cursor().copy(copy) as writer:
            for number, row in enumerate(rows, start=1):
                writer.write_row([-1, number, number + 1, *(row[c] for c in columns)])
        now = conn.execute("select now()").fetchone()[0]
        return now, [dict(zip(_TYPED_COLUMNS, typed, strict=True)) for typed in conn.execute(_TYPED_SELECT)]


def _differences(expected: dict[str, object], got: dict[str, object], now: datetime) -> dict[str, tuple]:
    if expected["timestamp"] is not None and abs(
            expected["timestamp"] - Decimal(str((now + timedelta(days=1)).timestamp()))) < 120:
        return {}  # at the "more than a day in the future" boundary the reference's clock is not the database's
    return {k: (v, got[k]) for k, v in expected.items() if got[k] != v}


# --- the tests -------------------------------------------------------------------------------------------------


def test_the_reference_agrees_with_every_hostile_case():
    rows = _case_rows()
    now = datetime.now(UTC)
    for number, (case, row) in enumerate(zip(CASES, rows, strict=True), start=1):
        if "\x00" in case.raw:
            continue  # the loader's concern: the record is rejected before typing
        typed = reference_row(row, now)
        if isinstance(case.expected, Rejected):
            assert case.expected.reason in (typed["rejection_reason"] or ""), (case, typed)
            continue
        assert typed["rejection_reason"] is None, (case, typed)
        expected = _resolved(case.expected, number)
        got = typed[case.stored_column.replace("reported_", "")]
        if case.column == "timestamp":
            got = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(got * 1_000_000))
        assert got == expected, (case, typed)


def _resolved(expected: object, number: int) -> object:
    if expected == HASH_OF_VALUES:
        return session_hash(number)
    if expected == NOTES_OF_THE_ROW:
        return base_row(number)["notes"]
    return expected


def test_hostile_values_are_typed_or_rejected_and_the_load_exits_0(collated):
    telemetry, collation = collated
    if collation == "unicode":
        assert _unicode_digits_match_backslash_d(telemetry.url), "the collation this test needs: \\d matches ٢"
    path = telemetry.tmp_path / "hostile.csv"
    lines = _write_csv(path, _case_rows())
    accepted = sum(not isinstance(case.expected, Rejected) for case in CASES)
    counts = {"rows_read": len(CASES), "inserted": accepted, "duplicates": 0, "rejected": len(CASES) - accepted,
              "expired": 0}

    dry_run = telemetry.ingest(path, dry_run=True).as_dict()
    result = telemetry.cli("ingest", "csv", str(path), "--json")
    assert result.returncode == 0, result.stderr
    real = json.loads(result.stdout)
    assert {k: dry_run[k] for k in counts} == {k: real[k] for k in counts} == counts

    columns = sorted({case.stored_column for case in CASES})
    stored = {row[0]: dict(zip(columns, row[1:], strict=True)) for row in _query(
        telemetry.url, sql.SQL("select source_line_number, {} from telemetry.llm_calls").format(
            sql.SQL(", ").join(map(sql.Identifier, columns))))}
    rejected = dict(_query(telemetry.url, "select line_number, rejection_reason from telemetry.rejected_rows"))
    problems = []
    for number, (case, line) in enumerate(zip(CASES, lines, strict=True), start=1):
        if isinstance(case.expected, Rejected):
            if case.expected.reason not in (rejected.get(line) or ""):
                problems.append(f"line {line}, {case.column}={case.raw[:60]!r} ({case.why}): expected a reject "
                                f"{case.expected.reason!r}, got {rejected.get(line) or stored.get(line)!r}")
            continue
        got = stored.get(line, {}).get(case.stored_column, f"no call (reject: {rejected.get(line)!r})")
        if got != _resolved(case.expected, number):
            problems.append(f"line {line}, {case.column}={case.raw[:60]!r} ({case.why}): expected "
                            f"{_resolved(case.expected, number)!r:.80}, got {got!r:.80}")
    assert not problems, "\n".join(problems)
    assert len(stored) == accepted and len(rejected) == len(CASES) - accepted


def test_a_rotated_backup_with_hostile_rows_does_not_stop_later_loads(unicode_telemetry):
    telemetry = unicode_telemetry
    folder = telemetry.tmp_path / ".telemetry"
    _write_csv(folder / "usage_backup_20261103_100000.csv", _case_rows())
    now = datetime.now(UTC).replace(microsecond=0)
    _write_csv(folder / "usage.csv", [base_row(1) | {"timestamp": now.isoformat(), "notes": "after the backup"}])
    for _ in range(2):  # the second run finds both files unchanged
        result = telemetry.cli("ingest", "csv", str(folder / "*.csv"), "--json")
        assert result.returncode == 0, result.stderr
    assert _query(telemetry.url, "select count(*) from telemetry.llm_calls where notes = 'after the backup'") == [(1,)]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(rows_of(any_text_without_nul, st.none()), min_size=1, max_size=12))
def test_typing_follows_the_documented_rules_in_every_collation(plain_and_unicode, rows):
    """Every value is typed as the README says (reference_row), never an error, and identically in a plain and a
    unicode database. Rows go straight into the landing table (NUL bytes never reach it: the loader rejects them)."""
    plain, unicode = plain_and_unicode
    now, typed_plain = _type_in_staging(plain.url, rows)
    _, typed_unicode = _type_in_staging(unicode.url, rows)
    assert typed_plain == typed_unicode
    for raw, got in zip(rows, typed_plain, strict=True):
        expected = reference_row(raw, now)
        assert not _differences(expected, got, now), (raw, _differences(expected, got, now))


_example_files = itertools.count(1)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(rows_of(any_text, st.just(""), padded(recent_timestamps)), min_size=1, max_size=6))
def test_any_text_in_any_column_loads_and_every_row_is_accounted_for(unicode_telemetry, rows):
    """Arbitrary text in every column, written with the csv module: the ingest returns normally, exactly the rows
    the rules reject are rejected (with their reasons), the valid ones older than the retention window expire,
    the others are inserted or duplicates, and the calls stored hold exactly what the rules make of the text.
    One database for all examples (a new file each): keys of earlier examples make duplicates."""
    telemetry = unicode_telemetry
    path = telemetry.tmp_path / f"usage-{next(_example_files)}.csv"
    lines = _write_csv(path, rows)
    summary = telemetry.ingest(path)
    data = summary.as_dict()
    load_id, cutoff = summary.loads[0].load_id, datetime.fromisoformat(data["retention"]["cutoff"])
    assert data["rows_read"] == len(rows)
    assert data["rows_read"] == data["inserted"] + data["duplicates"] + data["rejected"] + data["expired"]

    now = datetime.now(UTC)
    expected = {line: reference_row({k: v.replace("\x00", "") for k, v in raw.items()}, now)
                for line, raw in zip(lines, rows, strict=True)}
    for line, raw in zip(lines, rows, strict=True):
        if any("\x00" in value for value in raw.values()):  # the loader's reject, before typing
            expected[line]["rejection_reason"] = "the record holds NUL bytes"
    old = {line for line, row in expected.items()
           if row["timestamp"] is not None and row["timestamp"] < Decimal(str(cutoff.timestamp()))}
    rejected = {line: row["rejection_reason"] for line, row in expected.items() if row["rejection_reason"]}
    expired = old - set(rejected)
    assert (data["rejected"], data["expired"]) == (len(rejected), len(expired))
    # Rejects with a timestamp before the cutoff are pruned; the others are kept with their reasons. The landing
    # and typed rows are gone once the load is done.
    assert _query(telemetry.url, "select count(*) from telemetry.int_usage_rows_typed") == [(0,)]
    assert dict(_query(telemetry.url, "select line_number, rejection_reason from telemetry.rejected_rows "
                       "where load_id = %s", [load_id])) == {k: v for k, v in rejected.items() if k not in old}
    # Every valid row newer than the cutoff has its key stored: inserted now, or a duplicate of a stored call.
    valid = [expected[line] for line in lines if line not in rejected and line not in old]
    stored = {(ts, session, prompt) for ts, session, prompt in _query(
        telemetry.url, 'select extract(epoch from "timestamp"), session_id, prompt_name from telemetry.llm_calls')}
    assert [row for row in valid if (row["timestamp"], row["session_id"], row["prompt_name"]) not in stored] == []

    calls = _query(telemetry.url, f"select source_line_number, {', '.join(_STORED)} from telemetry.llm_calls "
                   "where load_id = %s", [load_id])
    assert len(calls) == data["inserted"]
    for line, *values in calls:
        got = dict(zip(_TYPED_COLUMNS[1:], values, strict=True))
        want = {k: expected[line][k] for k in got}
        assert not _differences(want, got, now), (rows[lines.index(line)], _differences(want, got, now))


_STORED = ['extract(epoch from "timestamp")', "model", "prompt_name", "input_tokens", "output_tokens", "duration_ms",
           "cache_read_tokens", "cache_write_tokens", "success", "reported_cost_usd", "notes", "phase",
           "error_message", "session_id"]
