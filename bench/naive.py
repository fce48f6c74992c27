"""The classic way to load a usage CSV, as a yardstick for the benchmark (``bench/run.py``).

    TELEMETRY_DATABASE_URL=postgresql://... python -m bench.naive usage.csv

Parse the CSV in Python, type every value, and run one ``INSERT ... ON CONFLICT DO NOTHING`` per row with
psycopg 3 (autocommit off, one commit at the end) into a table with a unique key on
(timestamp, model, md5 of notes). No staging table, no rejects table, no marts: it does strictly less than
``telemetry ingest csv`` and is still far slower. Prints one JSON object: rows_read, inserted, duplicates,
rejected, elapsed_seconds.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
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


def load(path: Path, url: str) -> dict[str, object]:
    started = time.monotonic()
    rows_read = inserted = rejected = 0
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(DDL)
        with conn.cursor() as cur, path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows_read += 1
                try:
                    values = parse_row(row)
                except (ValueError, KeyError):
                    rejected += 1
                    continue
                cur.execute(INSERT, values)
                inserted += cur.rowcount
        conn.commit()
    return {
        "rows_read": rows_read,
        "inserted": inserted,
        "duplicates": rows_read - inserted - rejected,
        "rejected": rejected,
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--database-url", default=os.environ.get("TELEMETRY_DATABASE_URL"),
                        help="default: $TELEMETRY_DATABASE_URL")
    args = parser.parse_args()
    if not args.database_url:
        print("error: set TELEMETRY_DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    print(json.dumps(load(args.path, args.database_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
