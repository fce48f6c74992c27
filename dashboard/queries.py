"""SQL that only the dashboard needs: the call log, one call with its lineage, sessions, the calls behind an
error pattern, and the lists for the filter form. What ``telemetry stats`` shows too lives in loader.queries.

Long lists are keyset-paginated on llm_calls' key index ("timestamp", md5(session_id), md5(prompt_name)),
newest first: a page costs the same at the start of the log and a million calls into it.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from loader.queries import Filters, Row

PAGE_SIZE = 50
SESSIONS_SHOWN = 100

# The marts this version of the dashboard reads; a database built by an older version lacks the newer ones.
REQUIRED_MARTS = ("daily_usage", "daily_usage_rollups", "error_summary", "failed_calls", "cost_by_session", "loads",
                  "llm_calls")


class BadToken(ValueError):
    """A ``_next`` token this dashboard did not write."""


def _rows(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, params).fetchall()


def missing_marts(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select name from unnest(%s::text[]) as name where to_regclass('telemetry.' || quote_ident(name)) is null",
        [list(REQUIRED_MARTS)],
    ).fetchall()
    return [r[0] for r in rows]


_CHOICES = """
    select grain, coalesce(model, phase, prompt_name) as value
    from telemetry.daily_usage_rollups
    group by grain, value
    order by grain, value
"""


def filter_choices(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The models, phases and prompt_names there are, for the filter form."""
    choices: dict[str, list[str]] = {"model": [], "phase": [], "prompt_name": []}
    for grain, value in conn.execute(_CHOICES):
        choices[grain].append(value)
    return choices


def data_bounds(conn: psycopg.Connection) -> tuple[date | None, date | None]:
    """The first and last UTC day with calls."""
    return conn.execute(
        "select min(call_date), max(call_date) from telemetry.daily_usage_rollups where grain = 'model'").fetchone()


# --- keyset pagination -----------------------------------------------------------------------------------------

def encode_cursor(row: Row) -> str:
    key = [row["timestamp"].isoformat(), row["session_id"], row["prompt_name"]]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(token: str | None) -> dict[str, Any] | None:
    """The key a ``_next`` token carries; None for no token. A token that is not ours raises BadToken."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        timestamp, session_id, prompt_name = json.loads(text)
        return {"after_ts": datetime.fromisoformat(timestamp), "after_session": str(session_id),
                "after_prompt": str(prompt_name)}
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadToken(f"_next={token[:40]!r} is not a page token of this dashboard") from exc


# Conditions shared by the call log and the calls behind an error pattern (both have these columns).
_CALL_FILTERS = """
    (%(since)s::date is null or "timestamp" >= %(since)s::date::timestamp at time zone 'UTC')
    and (%(until)s::date is null or "timestamp" < (%(until)s::date + 1)::timestamp at time zone 'UTC')
    and (%(model)s::text is null or model = %(model)s::text)
    and (%(phase)s::text is null or coalesce(phase, '(none)') = %(phase)s::text)
    and (%(prompt_name)s::text is null or prompt_name = %(prompt_name)s::text)
    and (%(session_id)s::text is null or session_id = %(session_id)s::text)
    and (%(after_ts)s::timestamptz is null
         or ("timestamp", md5(session_id), md5(prompt_name))
            < (%(after_ts)s::timestamptz, md5(%(after_session)s::text), md5(%(after_prompt)s::text)))
"""
_NEWEST_FIRST = 'order by "timestamp" desc, md5(session_id) desc, md5(prompt_name) desc limit %(limit)s'

_CALL_LOG = f"""
    select "timestamp", session_id, prompt_name, model, coalesce(phase, '(none)') as phase, success,
           input_tokens, output_tokens, total_tokens, estimated_cost_usd, cost_source, duration_ms,
           error_message, load_id, source_line_number
    from telemetry.llm_calls
    where {_CALL_FILTERS}
    {_NEWEST_FIRST}
"""

_PATTERN_CALLS = f"""
    select "timestamp", session_id, prompt_name, model, phase, error_message, estimated_cost_usd, load_id,
           source_line_number
    from telemetry.failed_calls
    where error_pattern = %(pattern)s and {_CALL_FILTERS}
    {_NEWEST_FIRST}
"""


def _page(conn: psycopg.Connection, statement: str, filters: Filters, cursor: str | None,
          **extra: Any) -> tuple[list[Row], str | None]:
    params = {**filters.__dict__, "session_id": None, **extra, "limit": PAGE_SIZE + 1}
    params.update(decode_cursor(cursor) or {"after_ts": None, "after_session": None, "after_prompt": None})
    rows = _rows(conn, statement, params)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, (encode_cursor(rows[-1]) if more else None)


def call_log(conn: psycopg.Connection, filters: Filters, *, session_id: str | None = None,
             cursor: str | None = None) -> tuple[list[Row], str | None]:
    """A page of calls, newest first, and the token of the next page (None on the last one)."""
    return _page(conn, _CALL_LOG, filters, cursor, session_id=session_id)


def pattern_calls(conn: psycopg.Connection, filters: Filters, pattern: str, *,
                  cursor: str | None = None) -> tuple[list[Row], str | None]:
    """A page of the failed calls whose normalised error is ``pattern``, newest first."""
    return _page(conn, _PATTERN_CALLS, filters, cursor, pattern=pattern)


_CALL = """
    select c.*, l.source_file, l.sha256 as source_sha256, l.started_at as load_started_at
    from telemetry.llm_calls as c
    left join telemetry.loads as l on l.load_id = c.load_id
    where c."timestamp" = %(timestamp)s and md5(c.session_id) = md5(%(session_id)s)
      and md5(c.prompt_name) = md5(%(prompt_name)s)
      and c.session_id = %(session_id)s and c.prompt_name = %(prompt_name)s
"""


def call(conn: psycopg.Connection, timestamp: datetime, session_id: str, prompt_name: str) -> Row | None:
    """One call by its key, with the file it was loaded from (loads.source_file) for its lineage."""
    found = _rows(conn, _CALL, {"timestamp": timestamp, "session_id": session_id, "prompt_name": prompt_name})
    return found[0] if found else None


# --- sessions ----------------------------------------------------------------------------------------------------

# A session is shown whole; the filters pick sessions: those that began in [since, until] and used the model,
# phase and prompt_name asked for.
_SESSION_FILTERS = """
    (%(since)s::date is null or first_call_at >= %(since)s::date::timestamp at time zone 'UTC')
    and (%(until)s::date is null or first_call_at < (%(until)s::date + 1)::timestamp at time zone 'UTC')
    and (%(model)s::text is null or %(model)s::text = any(models))
    and (%(phase)s::text is null or %(phase)s::text = any(phases))
    and (%(prompt_name)s::text is null or %(prompt_name)s::text = any(prompt_names))
"""

_SESSION_SUMMARY = f"""
    select count(*) as sessions, coalesce(sum(calls), 0)::bigint as calls,
           case when count(*) = 0 then 0
                else sum(estimated_cost_usd) filter (where unpriced_calls < calls) end as estimated_cost_usd,
           coalesce(sum(unpriced_calls), 0)::bigint as unpriced_calls,
           count(*) filter (where unpriced_calls = calls) as unpriced_sessions,
           sum(estimated_cost_usd) / nullif(count(*) filter (where unpriced_calls < calls), 0)
               as cost_per_priced_session_usd
    from telemetry.cost_by_session
    where {_SESSION_FILTERS}
"""

_TOP_SESSIONS = f"""
    select session_id, first_call_at, last_call_at, last_call_at - first_call_at as duration, calls, successes,
           failures, input_tokens, output_tokens, total_tokens, estimated_cost_usd, unpriced_calls, models, phases,
           prompt_names
    from telemetry.cost_by_session
    where {_SESSION_FILTERS}
    order by {{cost}} desc nulls last, first_call_at desc, session_id
    limit %(limit)s
"""
# The cost of a session whose calls are all unpriced is NULL: such sessions come last, and the summary's cost is
# NULL when every session is unpriced (unknown, not $0), 0 when no session matches.
# Without a model, phase or prompt_name filter the index on estimated_cost_usd yields the top sessions at once;
# with one, walking that index can pass most sessions before finding a hundred that match (a cheap model's
# sessions are at its far end), so the matching sessions are sorted instead ("+ 0" keeps the index out).
_TOP_SESSIONS_BY_INDEX = _TOP_SESSIONS.replace("{cost}", "estimated_cost_usd")
_TOP_SESSIONS_BY_SORT = _TOP_SESSIONS.replace("{cost}", "estimated_cost_usd + 0")


def session_summary(conn: psycopg.Connection, filters: Filters) -> Row:
    """How many sessions, their calls and cost, and the mean cost of a session with priced calls."""
    return _rows(conn, _SESSION_SUMMARY, filters.__dict__)[0]


def top_sessions(conn: psycopg.Connection, filters: Filters, *, limit: int = SESSIONS_SHOWN) -> list[Row]:
    """The most expensive sessions, with their first and last call."""
    by_dimension = any(getattr(filters, d) is not None for d in ("model", "phase", "prompt_name"))
    statement = _TOP_SESSIONS_BY_SORT if by_dimension else _TOP_SESSIONS_BY_INDEX
    return _rows(conn, statement, {**filters.__dict__, "limit": limit})
