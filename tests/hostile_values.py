"""Hostile CSV values and what typing makes of each: the exact value stored in telemetry.llm_calls, or a reject.

Each case is one CSV row: a valid row (``base_row``) with one column replaced by the hostile text (and, for a few
cases, other columns set so that the column under test matters). tests/test_typing.py loads every case in one
file and checks each row. Every row is valid but for the column under test, and every row has its own notes, so
no two rows share a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

__all__ = ["CASES", "CSV_HEADER", "HASH_OF_VALUES", "NOTES_OF_THE_ROW", "STORED_AS", "Case", "Rejected", "base_row",
           "session_hash"]

CSV_HEADER = ("timestamp", "model", "prompt_tokens", "completion_tokens", "task_success", "task_type", "duration_ms",
              "notes", "session_id", "error_message", "cost_usd", "cache_read_tokens", "cache_write_tokens")

#: The llm_calls column that holds each CSV column's typed value.
STORED_AS = {"timestamp": "timestamp", "model": "model", "prompt_tokens": "input_tokens",
             "completion_tokens": "output_tokens", "task_success": "success", "task_type": "prompt_name",
             "duration_ms": "duration_ms", "notes": "notes", "session_id": "session_id",
             "error_message": "error_message", "cost_usd": "reported_cost_usd",
             "cache_read_tokens": "cache_read_tokens", "cache_write_tokens": "cache_write_tokens"}

BASE_TIMESTAMP = "2026-01-15T10:00:00Z"
NOT_A_TIMESTAMP = "timestamp is not ISO 8601"
NOT_A_COUNT = "is not a non-negative integer"
NOT_AN_AMOUNT = "cost_usd is not a non-negative number"
NOT_A_BOOLEAN = "task_success is not a boolean"
#: Expected values that depend on the row: its session hash (session_hash()), its notes (base_row()).
HASH_OF_VALUES = "<the md5 of the row's values>"
NOTES_OF_THE_ROW = "<the row's notes>"

# Blanks a value may be padded with (README, "The CSV format"); the notes keep theirs.
NBSP, FIGURE_SPACE, NARROW_NBSP, IDEOGRAPHIC_SPACE = "\u00a0", "\u2007", "\u202f", "\u3000"
ZERO_WIDTH_SPACE, BOM = "\u200b", "\ufeff"
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@dataclass(frozen=True)
class Rejected:
    """The row is rejected; its reason contains this text."""

    reason: str


@dataclass(frozen=True)
class Case:
    column: str
    raw: str
    #: The value stored in llm_calls (column STORED_AS[column], or stored_as), or Rejected(reason).
    expected: object
    why: str
    stored_as: str | None = None
    others: dict[str, str] = field(default_factory=dict)

    @property
    def stored_column(self) -> str:
        return self.stored_as or STORED_AS[self.column]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def base_row(number: int) -> dict[str, str]:
    """A valid row; its notes make its key unique (session_id is empty: the key's session_id is a hash)."""
    return {"timestamp": BASE_TIMESTAMP, "model": "m", "prompt_tokens": "1", "completion_tokens": "2",
            "task_success": "true", "task_type": "hostile", "duration_ms": "3", "notes": f"case {number}",
            "session_id": "", "error_message": "", "cost_usd": "", "cache_read_tokens": "", "cache_write_tokens": ""}


def session_hash(number: int) -> str:
    """The session_id of base_row(number): the md5 of its normalised values (README, "Guarantees"). Pinned here
    because a change to it would make every call already stored look new."""
    values = ["2026-01-15T10:00:00.000000", "m", "1", "2", "", "", "true", "hostile", "3", f"case {number}", "", ""]
    return hashlib.md5("\x1f".join(values).encode()).hexdigest()


CASES: list[Case] = [
    # --- timestamps: the fast path (translate() shapes) ------------------------------------------------------
    Case("timestamp", "2026-11-03T10:00:00+05:99", Rejected(NOT_A_TIMESTAMP), "offset minutes > 59 (fast path)"),
    Case("timestamp", "2026-11-03T10:00:00.000000-05:60", Rejected(NOT_A_TIMESTAMP), "offset minutes 60 (fast path)"),
    Case("timestamp", "2026-11-03T10:00:00+16:00", Rejected(NOT_A_TIMESTAMP), "offset hours > 15 (fast path)"),
    Case("timestamp", "2026-11-03T10:00:00-15:59", utc(2026, 11, 4, 1, 59), "the largest offset PostgreSQL takes"),
    Case("timestamp", "2016-12-31T23:59:60Z", Rejected(NOT_A_TIMESTAMP), "leap second"),
    Case("timestamp", "2026-11-03T24:00:00Z", Rejected(NOT_A_TIMESTAMP), "24:00 end of day"),
    Case("timestamp", "0000-01-01T00:00:00Z", Rejected(NOT_A_TIMESTAMP), "year 0000"),
    Case("timestamp", "0001-01-01T00:00:00Z", utc(1, 1, 1), "year 1, the first accepted"),
    Case("timestamp", "0001-01-01T00:00:00+01:00", Rejected("before the year 1"), "year 1 with an offset is year 0"),
    Case("timestamp", "2026-02-29T10:00:00Z", Rejected(NOT_A_TIMESTAMP), "29 February of a common year"),
    Case("timestamp", "2026-02-29 10:00:00", Rejected(NOT_A_TIMESTAMP), "29 February, naive shape"),
    Case("timestamp", "2024-02-29 10:00:00", utc(2024, 2, 29, 10), "29 February of a leap year, naive is UTC"),
    Case("timestamp", "2026-11-31T10:00:00Z", Rejected(NOT_A_TIMESTAMP), "31 November"),
    Case("timestamp", "2026-13-01T10:00:00Z", Rejected(NOT_A_TIMESTAMP), "month 13"),
    Case("timestamp", "2999-01-01T00:00:00Z", Rejected("more than a day in the future"), "far future"),
    Case("timestamp", f"{NBSP}2026-11-03T10:00:00Z{FIGURE_SPACE}", utc(2026, 11, 3, 10), "Unicode spaces trimmed"),
    Case("timestamp", f"\t2026-11-03 10:00:00{ZERO_WIDTH_SPACE}", utc(2026, 11, 3, 10), "tab and ZWSP trimmed"),
    Case("timestamp", f"{IDEOGRAPHIC_SPACE}{BOM}", Rejected("timestamp is empty"), "only blanks: empty"),
    # --- timestamps: the regex path ---------------------------------------------------------------------------
    Case("timestamp", "2026-11-03T10:00+05:99", Rejected(NOT_A_TIMESTAMP), "offset minutes > 59 (regex path)"),
    Case("timestamp", "2026-11-03T10:00:00.5+0599", Rejected(NOT_A_TIMESTAMP), "compact offset minutes > 59"),
    Case("timestamp", "2026-11-03T10:00:00+0530", utc(2026, 11, 3, 4, 30), "compact offset"),
    Case("timestamp", "2026-11-03T10:00:00,25+01", utc(2026, 11, 3, 9, 0, 0, 250000), "comma fraction, hour offset"),
    Case("timestamp", "2026-11-03t10:00:00z", utc(2026, 11, 3, 10), "lower-case t and z (RFC 3339)"),
    Case("timestamp", "2026-11-03T10:00:00.123456789Z", utc(2026, 11, 3, 10, 0, 0, 123457), "9 decimals, rounded"),
    Case("timestamp", "10000-01-01T00:00:00Z", Rejected(NOT_A_TIMESTAMP), "year 10000"),
    Case("timestamp", "2026-01-01 10:00:00 Europe/Paris", Rejected(NOT_A_TIMESTAMP), "zone name"),
    Case("timestamp", "2026-01-01 10:00:00 PST", Rejected(NOT_A_TIMESTAMP), "zone abbreviation"),
    Case("timestamp", "2026-11-03T10:00:00+05:30:00", Rejected(NOT_A_TIMESTAMP), "offset with seconds"),
    Case("timestamp", "now", Rejected(NOT_A_TIMESTAMP), "PostgreSQL's special value"),
    Case("timestamp", "infinity", Rejected(NOT_A_TIMESTAMP), "PostgreSQL's special value"),
    Case("timestamp", "2026-11-03T10:00:00Z".translate(ARABIC_INDIC), Rejected(NOT_A_TIMESTAMP),
         "Arabic-Indic digits (\\d in an ICU collation)"),
    Case("timestamp", "2026-11-03 10:00:00".translate(FULLWIDTH), Rejected(NOT_A_TIMESTAMP), "fullwidth digits"),
    Case("timestamp", "2026-11-0\u00b3T10:00:00Z", Rejected(NOT_A_TIMESTAMP), "a superscript digit"),
    Case("timestamp", "2026-11-03T1\u0660:00:00Z", Rejected(NOT_A_TIMESTAMP), "one Arabic-Indic digit in the hour"),
    # --- timestamps: epoch seconds ----------------------------------------------------------------------------
    Case("timestamp", "1762164000.5", utc(2025, 11, 3, 10, 0, 0, 500000), "epoch seconds with a fraction"),
    Case("timestamp", "1762164000".translate(ARABIC_INDIC), Rejected(NOT_A_TIMESTAMP), "Arabic-Indic epoch"),
    Case("timestamp", "99999999999", Rejected(NOT_A_TIMESTAMP), "11-digit epoch"),
    Case("timestamp", "9" * 400, Rejected(NOT_A_TIMESTAMP), "an epoch that overflows everything"),
    # --- counts -----------------------------------------------------------------------------------------------
    Case("prompt_tokens", "12".translate(ARABIC_INDIC), Rejected(f"prompt_tokens {NOT_A_COUNT}"), "Arabic-Indic"),
    Case("prompt_tokens", "12".translate(FULLWIDTH), Rejected(f"prompt_tokens {NOT_A_COUNT}"), "fullwidth"),
    Case("prompt_tokens", "+12", Rejected(f"prompt_tokens {NOT_A_COUNT}"), "a sign"),
    Case("prompt_tokens", "-0", Rejected(f"prompt_tokens {NOT_A_COUNT}"), "minus zero"),
    Case("prompt_tokens", "1e3", Rejected(f"prompt_tokens {NOT_A_COUNT}"), "an exponent"),
    Case("prompt_tokens", "12.5", Rejected(f"prompt_tokens {NOT_A_COUNT}"), "a fraction"),
    Case("prompt_tokens", "999999999999999999", 999_999_999_999_999_999, "18 digits, the largest"),
    Case("prompt_tokens", "1000000000000000000", Rejected(f"prompt_tokens {NOT_A_COUNT}"), "19 digits"),
    Case("prompt_tokens", "9" * 40, Rejected(f"prompt_tokens {NOT_A_COUNT}"), "40 digits"),
    Case("prompt_tokens", f"{NBSP}12{FIGURE_SPACE}", 12, "Unicode spaces trimmed"),
    Case("prompt_tokens", "0012.000", 12, "leading zeros, .000"),
    Case("prompt_tokens", "12 345", Rejected(f"prompt_tokens {NOT_A_COUNT}"), "a space inside"),
    Case("prompt_tokens", f"\t{NBSP}", None, "only blanks: empty, NULL, not a reject"),
    Case("completion_tokens", "NaN", Rejected(f"completion_tokens {NOT_A_COUNT}"), "NaN"),
    Case("duration_ms", "\r\n250\n", 250, "line breaks around (a quoted field)"),
    Case("duration_ms", ".", Rejected(f"duration_ms {NOT_A_COUNT}"), "a lone point"),
    Case("cache_read_tokens", "\u00b2", Rejected(f"cache_read_tokens {NOT_A_COUNT}"), "a superscript"),
    Case("cache_write_tokens", "999999999999999999.000", 999_999_999_999_999_999, "18 digits and .000"),
    # --- amounts ----------------------------------------------------------------------------------------------
    Case("cost_usd", "0.0123", Decimal("0.0123"), "a plain decimal"),
    Case("cost_usd", "1e-05", Decimal("0.00001"), "Python's spelling of a small float"),
    Case("cost_usd", ".5", Decimal("0.5"), "no integer part"),
    Case("cost_usd", "1e999", Rejected(NOT_AN_AMOUNT), "an exponent of 3 digits"),
    Case("cost_usd", "NaN", Rejected(NOT_AN_AMOUNT), "NaN"),
    Case("cost_usd", "Infinity", Rejected(NOT_AN_AMOUNT), "Infinity"),
    Case("cost_usd", "-0", Rejected(NOT_AN_AMOUNT), "minus zero"),
    Case("cost_usd", ".", Rejected(NOT_AN_AMOUNT), "a lone point"),
    Case("cost_usd", "1,5", Rejected(NOT_AN_AMOUNT), "a decimal comma"),
    Case("cost_usd", "0.5".translate(ARABIC_INDIC), Rejected(NOT_AN_AMOUNT), "Arabic-Indic"),
    Case("cost_usd", "1" * 13, Rejected(NOT_AN_AMOUNT), "13 integer digits"),
    # --- booleans ---------------------------------------------------------------------------------------------
    Case("task_success", "ｔｒｕｅ", Rejected(NOT_A_BOOLEAN), "fullwidth letters"),
    Case("task_success", "tru\u0435", Rejected(NOT_A_BOOLEAN), "a Cyrillic e"),
    Case("task_success", "on", Rejected(NOT_A_BOOLEAN), "not one of the six words"),
    Case("task_success", f"TRUE{ZERO_WIDTH_SPACE}", True, "ZWSP trimmed"),
    Case("task_success", f" No{NBSP}", False, "NBSP trimmed"),
    # --- text columns -----------------------------------------------------------------------------------------
    Case("model", f"{NBSP}gpt-4o\t", "gpt-4o", "blanks trimmed"),
    Case("model", f"{ZERO_WIDTH_SPACE}{NARROW_NBSP}", Rejected("model is empty"), "only blanks"),
    Case("model", "gpt\x1b[31m-red", "gpt\x1b[31m-red", "control characters are kept"),
    Case("model", "m" * 5000, "m" * 5000, "longer than a btree index row"),
    Case("model", "gpt\x00-4o", Rejected("NUL"), "a NUL byte (the loader rejects it)"),
    Case("task_type", f"{IDEOGRAPHIC_SPACE}plan{IDEOGRAPHIC_SPACE}", "plan", "ideographic spaces trimmed"),
    Case("task_type", f"{NBSP}\n", "(none)", "only blanks: (none)"),
    Case("session_id", f" s-1{NARROW_NBSP}", "s-1", "blanks trimmed"),
    Case("session_id", "s" * 3000, "s" * 3000, "longer than a btree index row"),
    Case("session_id", f"{NBSP}\t", HASH_OF_VALUES, "only blanks: the md5 of the values"),
    Case("error_message", f"{NBSP}rate limited{NBSP}", "rate limited", "blanks trimmed",
         others={"task_success": "false"}),
    Case("error_message", f"{IDEOGRAPHIC_SPACE}", NOTES_OF_THE_ROW, "only blanks: a failed call's notes",
         others={"task_success": "false"}),
    # --- notes and the phase parsed from them ------------------------------------------------------------------
    Case("notes", "  kept as written\r\n  ", "  kept as written\n  ", "not trimmed; CRLF made LF"),
    Case("notes", f"Phase{NBSP}5", None, "no phase across a no-break space", stored_as="phase"),
    Case("notes", "phase ٥", None, "no phase from an Arabic-Indic digit", stored_as="phase"),
    Case("notes", "PHASE 2.1.3 done", "2.1.3", "any case, dotted", stored_as="phase"),
    Case("notes", "phase (*+?[\\ 7 \\d{1,", None, "regex-like text is plain text", stored_as="phase"),
    Case("notes", "phase " * 40000 + "Phase 7", "7", "240 kB of notes", stored_as="phase"),
    Case("notes", "éphase 4", "4", "ASCII word boundary, in every collation", stored_as="phase"),
]
