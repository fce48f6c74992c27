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

from loader.contract import (
    CALL_CONFLICTS,
    CALL_VALUE_COLUMNS,
    LLM_CALLS,
    LOAD_AUDIT,
    STAGING_VIEW,
    TYPED_ROWS,
    LoadStatus,
    Relation,
    relation_exists,
)
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
    read: str = "new file"  # a key of loader.checkpoints.READ_DESCRIPTIONS
    #: An unfinished last record that was not read (ReadPlan.pending_notice), else None.
    pending: str | None = None
    rows_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    expired: int = 0
    #: Duplicates whose values differ from the stored call's (a part of duplicates), and their first lines.
    conflicts: int = 0
    conflict_lines: list[int] = field(default_factory=list)
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

# For a dry run: rows of the load that will not be inserted because their key is stored, or came earlier in this
# run, with other values. Values are compared as the text of a row of the value columns.
_PREDICT_CONFLICTS = """
with candidates as (
    select load_id, record_number, line_number, "timestamp", session_id, prompt_name, row({values})::text as vals
    from {staging}
    where load_id = any(%(loads)s) and rejection_reason is null and "timestamp" >= %(cutoff)s::timestamptz
),
ranked as (
    select c.*, row_number() over w as n, first_value(vals) over w as first_vals
    from candidates as c
    window w as (partition by "timestamp", session_id, prompt_name order by load_id, record_number)
)
select count(*), coalesce((array_agg(line_number order by line_number))[1:5], '{{}}')
from ranked as r
{stored_join}
where r.load_id = %(load_id)s and {differs}
"""
_STORED_JOIN = """
left join (select "timestamp", session_id, prompt_name, row({values})::text as vals from {llm_calls}) as s
    on s."timestamp" = r."timestamp" and s.session_id = r.session_id and s.prompt_name = r.prompt_name
"""

_CONFLICTS = """
select load_id, count(*), (array_agg(line_number order by line_number))[1:5]
from {call_conflicts}
where load_id = any(%(loads)s)
group by load_id
"""

_RECORD_CONFLICTS = "update {load_audit} set conflicts = %s where load_id = %s"

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
    load.conflicts, load.conflict_lines = _predict_conflicts(conn, load.load_id, earlier_loads, cutoff)


def _predict_conflicts(
    conn: psycopg.Connection, load_id: int, earlier_loads: list[int], cutoff: datetime | None
) -> tuple[int, list[int]]:
    values = sql.SQL(", ").join(map(sql.Identifier, CALL_VALUE_COLUMNS))
    first_differs = sql.SQL("(r.n > 1 and r.vals is distinct from r.first_vals)")
    if relation_exists(conn, LLM_CALLS):
        stored_values = sql.SQL(", ").join(
            sql.Identifier("reported_cost_usd" if c == "cost_usd" else c) for c in CALL_VALUE_COLUMNS)
        stored_join = sql.SQL(_STORED_JOIN).format(values=stored_values, llm_calls=LLM_CALLS)
        differs = sql.SQL("case when s.vals is not null then r.vals is distinct from s.vals else {} end").format(
            first_differs)
    else:
        stored_join, differs = sql.SQL(""), first_differs
    statement = sql.SQL(_PREDICT_CONFLICTS).format(
        values=values, staging=STAGING_VIEW, stored_join=stored_join, differs=differs)
    count, lines = conn.execute(
        statement, {"loads": [*earlier_loads, load_id], "load_id": load_id, "cutoff": cutoff or "-infinity"}
    ).fetchone()
    return count, list(lines)


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
    conflicts = {load_id: (count, list(lines)) for load_id, count, lines in conn.execute(
        sql.SQL(_CONFLICTS).format(call_conflicts=CALL_CONFLICTS), {"loads": list(by_id)})}
    for load_id, load in by_id.items():
        load.conflicts, load.conflict_lines = conflicts.get(load_id, (0, []))
        conn.execute(sql.SQL(_RECORD_CONFLICTS).format(load_audit=LOAD_AUDIT), [load.conflicts, load_id])
