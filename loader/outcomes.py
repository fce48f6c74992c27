"""What became of a load's rows: inserted, duplicates, rejected or expired, with the reasons of the rejects.

``measure_outcomes`` reads them after dbt from the typed rows and llm_calls and records them in the load audit;
``predict_outcomes`` computes them for a dry run from the staging view, which applies dbt's very rules. Every row
read is accounted for: ``rows_read = inserted + duplicates + rejected + expired``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql

from loader.contract import LLM_CALLS, LOAD_AUDIT, STAGING_VIEW, TYPED_ROWS, LoadStatus, Relation, relation_exists
from loader.errors import AccountingError


@dataclass
class RejectReason:
    reason: str
    count: int
    first_lines: list[int]


@dataclass
class LoadResult:
    """What became of the records read from one file."""

    source_file: str
    load_id: int | None
    read: str = "new file"  # new file | grown | changed | unchanged
    rows_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    expired: int = 0
    rejects: list[RejectReason] = field(default_factory=list)


_PREDICT = """
with batch as materialized (
    select record_number, line_number, rejection_reason, "timestamp", session_id, prompt_name
    from {staging}
    where load_id = %(load_id)s
),
valid_keys as (
    select distinct "timestamp", session_id, prompt_name
    from batch
    where rejection_reason is null and "timestamp" >= %(cutoff)s::timestamptz
),
earlier_pending as materialized (
    select "timestamp", session_id, prompt_name
    from {staging}
    where load_id = any(%(earlier_loads)s) and rejection_reason is null and "timestamp" >= %(cutoff)s::timestamptz
)
select
    (select count(*) from batch) as rows_read,
    (select count(*) from batch where rejection_reason is not null) as rejected,
    (select count(*) from batch where rejection_reason is null and "timestamp" < %(cutoff)s::timestamptz) as expired,
    (select count(*) from valid_keys as v
     where not exists (
            select 1 from earlier_pending as e
            where e."timestamp" = v."timestamp" and e.session_id = v.session_id
                and e.prompt_name = v.prompt_name)
        {stored_filter}
    ) as inserted
"""

_NOT_STORED = """
        and not exists (
            select 1 from {llm_calls} as c
            where c."timestamp" = v."timestamp" and c.session_id = v.session_id
                and c.prompt_name = v.prompt_name)
"""

_REJECTS = """
select rejection_reason, count(*), (array_agg(line_number order by line_number))[1:5]
from {rows}
where load_id = %(load_id)s and rejection_reason is not null
group by rejection_reason
order by count(*) desc, rejection_reason
"""

_MEASURE = """
update {load_audit} as a
set rejected = m.rejected,
    expired = m.expired,
    inserted = m.inserted,
    duplicates = a.rows_read - m.rejected - m.expired - m.inserted,
    oldest_call = m.oldest_call,
    status = %(done)s,
    finished_at = clock_timestamp()
from (
    select l.load_id, t.typed_rows, t.rejected, t.expired, t.oldest_call, c.inserted
    from unnest(%(loads)s::bigint[]) as l (load_id)
    cross join lateral (
        select count(*) as typed_rows,
            count(*) filter (where rejection_reason is not null) as rejected,
            count(*) filter (where rejection_reason is null and "timestamp" < %(cutoff)s::timestamptz) as expired,
            min("timestamp") as oldest_call
        from {typed_rows} as t
        where t.load_id = l.load_id
    ) as t
    cross join lateral (
        select count(*) as inserted from {llm_calls} as c where c.load_id = l.load_id
    ) as c
) as m
where a.load_id = m.load_id
returning a.load_id, m.typed_rows, a.rows_read, a.inserted, a.duplicates, a.rejected, a.expired
"""


def _rejects(conn: psycopg.Connection, rows: Relation, load_id: int) -> list[RejectReason]:
    statement = sql.SQL(_REJECTS).format(rows=rows)
    return [RejectReason(reason, count, list(lines))
            for reason, count, lines in conn.execute(statement, {"load_id": load_id})]


def predict_outcomes(
    conn: psycopg.Connection, load: LoadResult, earlier_loads: list[int], cutoff: datetime | None
) -> None:
    """For a dry run: what would become of the load's rows, from the staging view (the same rules as dbt)."""
    stored = sql.SQL(_NOT_STORED).format(llm_calls=LLM_CALLS) if relation_exists(conn, LLM_CALLS) else sql.SQL("")
    row = conn.execute(
        sql.SQL(_PREDICT).format(staging=STAGING_VIEW, stored_filter=stored),
        {"load_id": load.load_id, "cutoff": cutoff or "-infinity", "earlier_loads": earlier_loads},
    ).fetchone()
    load.rows_read, load.rejected, load.expired, load.inserted = row
    load.duplicates = load.rows_read - load.rejected - load.expired - load.inserted
    load.rejects = _rejects(conn, STAGING_VIEW, load.load_id)


def measure_outcomes(conn: psycopg.Connection, loads: list[LoadResult], cutoff: datetime | None) -> None:
    """After dbt: record what became of each load's rows and mark the loads done.

    Every row read must have been typed exactly once: a difference is a bug, never a silent loss.
    """
    by_id = {load.load_id: load for load in loads}
    statement = sql.SQL(_MEASURE).format(load_audit=LOAD_AUDIT, typed_rows=TYPED_ROWS, llm_calls=LLM_CALLS)
    rows = conn.execute(
        statement, {"loads": list(by_id), "cutoff": cutoff or "-infinity", "done": LoadStatus.DONE.value}
    ).fetchall()
    for load_id, typed_rows, rows_read, inserted, duplicates, rejected, expired in rows:
        if typed_rows != rows_read:
            raise AccountingError(f"load {load_id}: {rows_read} rows read but {typed_rows} typed; please report this")
        load = by_id[load_id]
        load.inserted, load.duplicates, load.rejected, load.expired = inserted, duplicates, rejected, expired
        load.rejects = _rejects(conn, TYPED_ROWS, load_id)
