"""The competent 20-line loader, as a yardstick for the benchmark (``python -m bench.run``).

    TELEMETRY_DATABASE_URL=postgresql://... python -m bench.naive usage.csv               # executemany
    TELEMETRY_DATABASE_URL=postgresql://... python -m bench.naive usage.csv --per-row     # one execute a row

``csv.DictReader``, every value typed in Python, and ``INSERT ... ON CONFLICT DO NOTHING`` into a table with a
unique key on (timestamp, model, md5 of notes), with psycopg 3 (autocommit off, one commit at the end). By
default the rows go through one ``executemany`` over the whole file, which psycopg 3 sends as a pipeline (no
round trip per row) with a prepared statement; ``--per-row`` runs one ``execute`` per row instead (one round
trip each). No staging table, no rejects table, no marts, no retention: it does strictly less than
``telemetry ingest csv``. Prints one JSON object: mode, rows_read, inserted, duplicates, rejected,
elapsed_seconds.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg

TABLE = "naive_llm_calls"

DDL = f"""
create table if not exists {TABLE} (
    "timestamp"        timestamptz not null,
    model              text        not null,
    prompt_tokens      bigint,
    completion_tokens  bigint,
    task_success       boolean,
    task_type          text,
    duration_ms        bigint,
    notes              text,
    notes_md5          text        not null,
    unique ("timestamp", model, notes_md5)
)
"""

INSERT = f"""
insert into {TABLE} ("timestamp", model, prompt_tokens, completion_tokens, task_success, task_type, duration_ms,
                     notes, notes_md5)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
on conflict do nothing
"""

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 with Z or an offset, or ``YYYY-MM-DD HH:MM:SS`` taken as UTC."""
    value = datetime.fromisoformat(text.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(float(text)) if text else None


def parse_row(row: dict[str, str]) -> tuple:
    """The typed values of one CSV row, in INSERT order; ValueError when a value cannot be typed."""
    model = (row.get("model") or "").strip()
    if not model:
        raise ValueError("model is empty")
    success_text = (row.get("task_success") or "").strip().lower()
    notes = row.get("notes") or ""
    return (
        parse_timestamp(row["timestamp"]),
        model,
        _count(row.get("prompt_tokens")),
        _count(row.get("completion_tokens")),
        _BOOLEANS[success_text] if success_text else None,
        (row.get("task_type") or "").strip() or None,
        _count(row.get("duration_ms")),
        notes or None,
        hashlib.md5(notes.encode()).hexdigest(),
    )


def key(values: tuple) -> tuple:
    """The unique key of a parsed row (what ON CONFLICT compares)."""
    return values[0], values[1], values[8]


def load(path: Path, url: str, *, per_row: bool = False) -> dict[str, object]:
    started = time.monotonic()
    rows_read = inserted = rejected = 0

    def typed_rows(handle) -> Iterator[tuple]:
        nonlocal rows_read, rejected
        for row in csv.DictReader(handle):
            rows_read += 1
            try:
                yield parse_row(row)
            except (ValueError, KeyError):
                rejected += 1

    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(DDL)
        with conn.cursor() as cur, path.open(newline="", encoding="utf-8") as handle:
            if per_row:
                for values in typed_rows(handle):
                    cur.execute(INSERT, values)
                    inserted += cur.rowcount
            else:
                cur.executemany(INSERT, typed_rows(handle))
                inserted = cur.rowcount  # psycopg 3: the rows all the statements affected
        conn.commit()
    return {
        "mode": "per-row" if per_row else "executemany",
        "rows_read": rows_read,
        "inserted": inserted,
        "duplicates": rows_read - inserted - rejected,
        "rejected": rejected,
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--per-row", action="store_true", help="one execute per row instead of one executemany")
    parser.add_argument("--database-url", default=os.environ.get("TELEMETRY_DATABASE_URL"),
                        help="default: $TELEMETRY_DATABASE_URL")
    args = parser.parse_args()
    if not args.database_url:
        print("error: set TELEMETRY_DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    print(json.dumps(load(args.path, args.database_url, per_row=args.per_row)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
