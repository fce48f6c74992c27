"""Reading the marts from Python: each function binds its parameters and returns plain rows (dicts).

Two parts. First, one function per mart: each takes an optional open ``conn``; without one it connects to the
configured database (TELEMETRY_DATABASE_URL, else the embedded server). Dates are UTC calendar days.

    >>> from loader import queries
    >>> queries.tokens_by_model(since=date(2026, 11, 1))
    [{'call_date': date(2026, 11, 3), 'model': 'gpt-4o', 'calls': 12, ...}, ...]

Second, the filtered analytics that ``telemetry stats`` and the dashboard both show (totals, breakdowns, the
daily trend, top errors, unpriced models), so that the two cannot disagree. They take a ``Filters`` and an open
connection, and read the smallest mart that has the dimensions asked for: every mart rolls up the same daily
grain, so their sums are equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from loader.config import Settings
from loader.connection import connect
from loader.database import resolve_url
from loader.errors import TelemetryError

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


# --- filtered analytics: telemetry stats and the dashboard ---------------------------------------------------

DIMENSIONS = ("model", "phase", "prompt_name")


@dataclass(frozen=True)
class Filters:
    """What to count: UTC days in [since, until] (inclusive), one model, phase and prompt_name; None = all."""

    since: date | None = None
    until: date | None = None
    model: str | None = None
    phase: str | None = None
    prompt_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}

    def replace(self, **changes: Any) -> Filters:
        return replace(self, **changes)


# Where the filtered analytics read, first match wins: the relation, the dimensions it has besides the day, and
# the condition that picks its rows. All roll up int_llm_calls__daily and carry calls, successes, failures,
# tokens, estimated_cost_usd and unpriced_calls. daily_usage_rollups (a few thousand rows per grain) and
# daily_usage (the full grain, indexed) are tables whatever the other marts are; a database built before they
# existed falls back to the older marts.
_SOURCES = (
    ("daily_usage_rollups", {"model"}, "grain = 'model'"),
    ("daily_usage_rollups", {"phase"}, "grain = 'phase'"),
    ("daily_usage_rollups", {"prompt_name"}, "grain = 'prompt_name'"),
    ("daily_usage", {"model", "phase", "prompt_name"}, "true"),
    ("cost_by_prompt_name", {"model", "prompt_name"}, "true"),
    ("cost_by_phase", {"model", "phase"}, "true"),
)

# The cost of rows of calls that are all unpriced is unknown (NULL), never 0: summed over the rows with a priced
# call only (a database built by 0.2.0 may still hold 0 for the others until its first run with this version).
KNOWN_COST = "sum(estimated_cost_usd) filter (where unpriced_calls < calls)"

MEASURES = sql.SQL("""
    sum(calls)::bigint as calls,
    sum(input_tokens)::bigint as input_tokens,
    sum(output_tokens)::bigint as output_tokens,
    sum(total_tokens)::bigint as total_tokens,
    {cost} as estimated_cost_usd,
    sum(unpriced_calls)::bigint as unpriced_calls,
    sum(successes)::bigint as successes,
    sum(failures)::bigint as failures,
    case when sum(successes + failures) > 0
         then round(sum(successes)::numeric / sum(successes + failures), 4) end as success_rate
""".replace("{cost}", KNOWN_COST))


def _source(conn: psycopg.Connection, filters: Filters, *group_by: str) -> sql.Composed:
    """``from <relation> where <filters>``: the smallest relation with every dimension filtered on or grouped by."""
    needed = {d for d in DIMENSIONS if getattr(filters, d) is not None or d in group_by}
    existing = {name for (name,) in conn.execute(
        "select name from unnest(%s::text[]) as name where to_regclass('telemetry.' || name) is not null",
        [sorted({name for name, _, _ in _SOURCES})])}
    try:
        name, condition = next((name, cond) for name, has, cond in _SOURCES if needed <= has and name in existing)
    except StopIteration:
        raise TelemetryError(
            "the marts that telemetry stats and the dashboard read are missing; run `telemetry prices reprice` "
            "to build them") from None
    conditions = [sql.SQL(condition)]
    if filters.since is not None:
        conditions.append(sql.SQL("call_date >= %(since)s::date"))
    if filters.until is not None:
        conditions.append(sql.SQL("call_date <= %(until)s::date"))
    for dimension in DIMENSIONS:
        if getattr(filters, dimension) is not None:
            conditions.append(sql.SQL("{} = %({})s::text").format(sql.Identifier(dimension), sql.SQL(dimension)))
    return sql.SQL("from {} where {}").format(sql.Identifier("telemetry", name), sql.SQL(" and ").join(conditions))


def _fetch(conn: psycopg.Connection, statement: sql.Composable, filters: Filters, **extra: Any) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, {**asdict(filters), **extra}).fetchall()


def has_marts(conn: psycopg.Connection) -> bool:
    """Whether the analytics marts exist (a database that was never loaded has none)."""
    return conn.execute("select to_regclass('telemetry.cost_by_phase') is not null").fetchone()[0]


def totals(conn: psycopg.Connection, filters: Filters) -> Row:
    """Calls, tokens, estimated cost, unpriced calls, successes, failures and success rate (4 decimals)."""
    return _fetch(conn, sql.SQL("select {} {}").format(MEASURES, _source(conn, filters)), filters)[0]


_ORDERS = {
    "cost": sql.SQL("estimated_cost_usd desc nulls last, calls desc, {}"),
    "calls": sql.SQL("calls desc, {}"),
    "name": sql.SQL("{}"),
}


def breakdown(conn: psycopg.Connection, filters: Filters, by: str, *, order: str = "cost") -> list[Row]:
    """The measures per model, phase, prompt_name or call_date, ordered by cost (desc), calls (desc) or name."""
    if by not in (*DIMENSIONS, "call_date"):
        raise ValueError(f"cannot break down by {by!r}")
    column = sql.Identifier(by)
    statement = sql.SQL("select {column}, {measures} {source} group by {column} order by {order}").format(
        column=column, measures=MEASURES, source=_source(conn, filters, by), order=_ORDERS[order].format(column))
    return _fetch(conn, statement, filters)


def daily_by(conn: psycopg.Connection, filters: Filters, by: str) -> list[Row]:
    """Calls, estimated cost and unpriced calls per day and model (or phase, prompt_name), for stacked charts."""
    if by not in DIMENSIONS:
        raise ValueError(f"cannot break down by {by!r}")
    statement = sql.SQL("""
        select call_date, {column}, sum(calls)::bigint as calls, {cost} as estimated_cost_usd,
               sum(unpriced_calls)::bigint as unpriced_calls
        {source} group by call_date, {column} order by call_date, {column}
    """.replace("{cost}", KNOWN_COST)).format(column=sql.Identifier(by), source=_source(conn, filters, by))
    return _fetch(conn, statement, filters)


_TREND = """
    with daily as (
        select call_date, sum(calls)::bigint as calls, sum(input_tokens)::bigint as input_tokens,
               sum(output_tokens)::bigint as output_tokens, sum(total_tokens)::bigint as total_tokens,
               {cost} as estimated_cost_usd, sum(unpriced_calls)::bigint as unpriced_calls
        {source}
        group by call_date
    ),
    calendar as (
        select generate_series(min(call_date), max(call_date), interval '1 day')::date as call_date from daily
    ),
    filled as (
        select c.call_date, coalesce(d.calls, 0) as calls, coalesce(d.input_tokens, 0) as input_tokens,
               coalesce(d.output_tokens, 0) as output_tokens, coalesce(d.total_tokens, 0) as total_tokens,
               case when d.call_date is null then 0 else d.estimated_cost_usd end as estimated_cost_usd,
               coalesce(d.unpriced_calls, 0) as unpriced_calls
        from calendar as c left join daily as d using (call_date)
    ),
    trend as (
        select *,
               case when sum(calls - unpriced_calls) over to_date > 0 then sum(estimated_cost_usd) over to_date end
                   as cumulative_cost_usd,
               case when sum(calls - unpriced_calls) over last_7_days > 0 or sum(calls) over last_7_days = 0
                   then round(avg(estimated_cost_usd) over last_7_days, 6) end as cost_7d_moving_avg_usd
        from filled
        window to_date as (order by call_date),
               last_7_days as (order by call_date rows between 6 preceding and current row)
    )
    select * from trend
    where %(days)s::int is null or call_date > (select max(call_date) from trend) - %(days)s::int
    order by call_date
""".replace("{cost}", KNOWN_COST)


def daily_trend(conn: psycopg.Connection, filters: Filters, *, days: int | None = None) -> list[Row]:
    """One row per day from the first to the last day with calls (quiet days as zeros), with the cumulative cost
    and the 7-day moving average (as in the daily_cost_trend mart, counted within the filters); only the last
    ``days`` days when given."""
    statement = sql.SQL(_TREND).format(source=_source(conn, filters))
    return _fetch(conn, statement, filters, days=days)


# The example of a pattern is the message of its latest failure. Found by joining back on last_seen rather than
# with an ordered aggregate, which would sort every row of error_summary by pattern; `filtered` is scanned twice
# rather than materialised (copying it costs more than reading it again).
_ERRORS_FROM_SUMMARY = """
    with filtered as not materialized (
        select error_pattern, failures, first_seen, last_seen, example_error_message
        from telemetry.error_summary
        where (%(since)s::date is null or call_date >= %(since)s::date)
          and (%(until)s::date is null or call_date <= %(until)s::date)
          and (%(model)s::text is null or model = %(model)s::text)
    ),
    patterns as (
        select error_pattern, sum(failures)::bigint as failures, min(first_seen) as first_seen,
               max(last_seen) as last_seen
        from filtered
        group by error_pattern
        order by failures desc, error_pattern
        limit %(limit)s
    ),
    examples as (
        select distinct on (f.error_pattern) f.error_pattern, f.example_error_message as example
        from filtered as f
        join patterns as p on p.error_pattern = f.error_pattern and p.last_seen = f.last_seen
        order by f.error_pattern, f.example_error_message
    )
    select p.error_pattern, p.failures, p.first_seen, p.last_seen, e.example
    from patterns as p
    left join examples as e using (error_pattern)
    order by p.failures desc, p.error_pattern
"""

# error_summary has no phase or prompt_name: with those filters, count the failed calls themselves.
_ERRORS_FROM_CALLS = """
    select error_pattern::text collate "default" as error_pattern, failures, first_seen, last_seen, example
    from (
        select error_pattern collate "C" as error_pattern, count(*) as failures, min("timestamp") as first_seen,
               max("timestamp") as last_seen, (array_agg(error_message order by "timestamp" desc))[1] as example
        from telemetry.failed_calls
        where (%(since)s::date is null or call_date >= %(since)s::date)
          and (%(until)s::date is null or call_date <= %(until)s::date)
          and (%(model)s::text is null or model = %(model)s::text)
          and (%(phase)s::text is null or phase = %(phase)s::text)
          and (%(prompt_name)s::text is null or prompt_name = %(prompt_name)s::text)
        group by 1
    ) as patterns
    order by failures desc, error_pattern::text collate "default"
    limit %(limit)s
"""


def top_errors(conn: psycopg.Connection, filters: Filters, *, limit: int | None = 5) -> list[Row]:
    """The most frequent error patterns: failures, first and last seen, and the latest message as an example."""
    by_call = filters.phase is not None or filters.prompt_name is not None
    return _fetch(conn, sql.SQL(_ERRORS_FROM_CALLS if by_call else _ERRORS_FROM_SUMMARY), filters, limit=limit)


def unpriced_models(conn: psycopg.Connection, filters: Filters, total_calls: int) -> list[Row]:
    """Models with unpriced calls, their count and their share of all ``total_calls`` (4 decimals)."""
    statement = sql.SQL("""
        select model, sum(unpriced_calls)::bigint as calls {source}
        group by model having sum(unpriced_calls) > 0
        order by calls desc, model
    """).format(source=_source(conn, filters, "model"))
    rows = _fetch(conn, statement, filters)
    for row in rows:
        row["share_of_calls"] = round(row["calls"] / total_calls, 4) if total_calls else None
    return rows
