"""The marts a small batch brings nothing to, so that the dbt run after an append need not build them.

Each dbt node costs about 0.3 s of dbt's own work before and after its SQL, even when the SQL has nothing to
add: that is most of an append of a few rows (and of each load in watch mode). Before dbt runs, one query over
the staging view (dbt's own rules) tells which of the batch's outcomes can happen at all: rejects
(``rejected_rows``), rows left out of llm_calls (``call_conflicts``), new calls (the marts by day and by
session), new failed calls (``failed_calls``, ``error_summary``), new calls in a session (``cost_by_session``).
A mart whose outcome cannot happen is left out of the run; it stays exact, because each of them adds only the
rows of the loads being modelled. The question costs a pass over the batch, so it is asked only of batches up to
``MAX_ROWS`` rows (a larger load builds everything: there the nodes' fixed cost is small beside its rows).
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql

from loader.contract import (
    CALL_CONFLICTS,
    COST_BY_SESSION,
    DAILY_USAGE,
    DAILY_USAGE_ROLLUPS,
    ERROR_SUMMARY,
    FAILED_CALLS,
    LLM_CALLS,
    REJECTED_ROWS,
    STAGING_VIEW,
    relation_exists,
)

#: Batches up to this many rows are asked which marts they need.
MAX_ROWS = 50_000

_OUTCOMES = """
with batch as materialized (
    select rejection_reason, "timestamp", session_id, prompt_name, success, session_id_derived
    from {staging}
    where load_id = any(%(loads)s)
),
calls as materialized (
    select "timestamp", session_id, prompt_name, success, session_id_derived
    from batch
    where rejection_reason is null and "timestamp" >= %(cutoff)s::timestamptz
),
new_calls as materialized (
    select * from calls as b
    where not exists (
        select 1 from {llm_calls} as c
        where c."timestamp" = b."timestamp" and c.session_id = b.session_id and c.prompt_name = b.prompt_name)
)
select
    exists (select 1 from batch where rejection_reason is not null) as rejects,
    (select count(*) from new_calls) < (select count(*) from calls)
        or exists (select 1 from calls group by "timestamp", session_id, prompt_name having count(*) > 1)
        as rows_left_out,
    exists (select 1 from new_calls) as calls,
    exists (select 1 from new_calls where success = false) as failures,
    exists (select 1 from new_calls where session_id_derived is not true) as sessions
"""


def idle_models(conn: psycopg.Connection, loads: list[int], rows: int, cutoff: datetime | None) -> list[str]:
    """The marts that the loads ``loads`` (``rows`` rows in all, landed, not yet modelled) cannot change.

    A row is left out of llm_calls when its key is stored, or when an earlier row of the batch has its key (the
    batch's own deduplication): either makes call_conflicts run.
    """
    if not loads or rows > MAX_ROWS or not relation_exists(conn, STAGING_VIEW) or not relation_exists(conn, LLM_CALLS):
        return []
    statement = sql.SQL(_OUTCOMES).format(staging=STAGING_VIEW, llm_calls=LLM_CALLS)
    rejects, left_out, calls, failures, sessions = conn.execute(
        statement, {"loads": loads, "cutoff": cutoff or "-infinity"}).fetchone()
    idle = []
    if not rejects:
        idle.append(REJECTED_ROWS)
    if not left_out:
        idle.append(CALL_CONFLICTS)
    if not calls:
        idle += [DAILY_USAGE, DAILY_USAGE_ROLLUPS]
    if not failures:
        idle += [FAILED_CALLS, ERROR_SUMMARY]
    if not sessions:
        idle.append(COST_BY_SESSION)
    return [relation.name for relation in idle if relation_exists(conn, relation)]
