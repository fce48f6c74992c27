"""Reading the marts from Python: each function binds its parameters and returns plain rows (dicts).

Every function takes an optional open ``conn``; without one it connects to the configured database
(TELEMETRY_DATABASE_URL, else the embedded server). Dates are UTC calendar days.

    >>> from loader import queries
    >>> queries.tokens_by_model(since=date(2026, 11, 1))
    [{'call_date': date(2026, 11, 3), 'model': 'gpt-4o', 'calls': 12, ...}, ...]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from loader.config import Settings
from loader.database import connect, resolve_url

Row = dict[str, Any]


@contextmanager
def _connection(conn: psycopg.Connection | None) -> Iterator[psycopg.Connection]:
    if conn is not None:
        yield conn
        return
    with connect(resolve_url(Settings.from_env())) as own:
        yield own


def _rows(statement: str, params: dict[str, Any], conn: psycopg.Connection | None) -> list[Row]:
    with _connection(conn) as c, c.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, params).fetchall()


def tokens_by_model(
    since: date | None = None, until: date | None = None, *, conn: psycopg.Connection | None = None
) -> list[Row]:
    """Calls, tokens, estimated cost and unpriced calls per day and model, for days in [since, until]."""
    return _rows(
        """
        select * from telemetry.tokens_by_model
        where (%(since)s::date is null or call_date >= %(since)s::date)
          and (%(until)s::date is null or call_date <= %(until)s::date)
        order by call_date, model
        """,
        {"since": since, "until": until},
        conn,
    )


def cost_by_phase(phase: str | None = None, *, conn: psycopg.Connection | None = None) -> list[Row]:
    """Cost breakdown per phase, day and model; one phase when given ('(none)' = calls without a phase)."""
    return _rows(
        """
        select * from telemetry.cost_by_phase
        where %(phase)s::text is null or phase = %(phase)s::text
        order by phase, call_date, model
        """,
        {"phase": phase},
        conn,
    )


def cost_by_prompt_name(prompt_name: str | None = None, *, conn: psycopg.Connection | None = None) -> list[Row]:
    """Cost breakdown per prompt_name, day and model; one prompt_name when given."""
    return _rows(
        """
        select * from telemetry.cost_by_prompt_name
        where %(prompt_name)s::text is null or prompt_name = %(prompt_name)s::text
        order by prompt_name, call_date, model
        """,
        {"prompt_name": prompt_name},
        conn,
    )


def success_rate_by_phase(phase: str | None = None, *, conn: psycopg.Connection | None = None) -> list[Row]:
    """Calls, successes, failures, success rate and cost per successful call, per phase and day."""
    return _rows(
        """
        select * from telemetry.success_rate_by_phase
        where %(phase)s::text is null or phase = %(phase)s::text
        order by phase, call_date
        """,
        {"phase": phase},
        conn,
    )


def daily_cost_trend(days: int | None = None, *, conn: psycopg.Connection | None = None) -> list[Row]:
    """The daily trend (no gaps), oldest first; only the last ``days`` days up to the latest call when given."""
    return _rows(
        """
        select * from telemetry.daily_cost_trend
        where %(days)s::int is null
           or call_date > (select max(call_date) from telemetry.daily_cost_trend) - %(days)s::int
        order by call_date
        """,
        {"days": days},
        conn,
    )


def error_summary(since: date | None = None, *, conn: psycopg.Connection | None = None) -> list[Row]:
    """Failed calls per normalised error, model and day, from ``since`` on; most frequent first."""
    return _rows(
        """
        select * from telemetry.error_summary
        where %(since)s::date is null or call_date >= %(since)s::date
        order by failures desc, error_pattern, model, call_date
        """,
        {"since": since},
        conn,
    )
