"""Retention: calls older than TELEMETRY_RETENTION_MONTHS leave llm_calls, the landing table and the rejects.

Every ingest prunes; ``telemetry prune`` does it on demand. Loads already past the window are not re-admitted:
llm_calls only takes rows newer than the cutoff, and the ingest counts older ones as ``expired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from loader.config import Settings
from loader.contract import LLM_CALLS, LOAD_AUDIT, TYPED_ROWS, USAGE_ROWS, LoadStatus, relation_exists
from loader.pipeline import locked_database, prepare, rebuild_marts
from loader.progress import Progress, silent
from loader.schema import ensure_landing_tables


@dataclass
class PruneResult:
    cutoff: datetime | None
    calls: int = 0
    raw_rows: int = 0
    rejected_rows: int = 0
    dry_run: bool = False

    @property
    def anything(self) -> bool:
        return bool(self.calls or self.raw_rows)

    def as_dict(self) -> dict[str, object]:
        return {"cutoff": self.cutoff.isoformat() if self.cutoff else None, "calls": self.calls,
                "raw_rows": self.raw_rows, "rejected_rows": self.rejected_rows, "dry_run": self.dry_run}


def retention_cutoff(months: int, now: datetime | None = None) -> datetime | None:
    """The instant before which calls are expired: ``months`` calendar months before now (UTC).

    None when retention is off (``months == 0``): nothing expires.
    """
    if months == 0:
        return None
    now = now or datetime.now(UTC)
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    month += 1
    day = now.day
    while True:
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:  # e.g. 31 August minus 6 months: the last day of February
            day -= 1


_EXPIRED_CALLS = 'from {llm_calls} where "timestamp" < %s'
_COUNT_EXPIRED_CALLS = "select count(*) " + _EXPIRED_CALLS
_DELETE_EXPIRED_CALLS = "with gone as (delete " + _EXPIRED_CALLS + " returning 1) select count(*) from gone"

# Loads that can hold rows to prune: finished ones whose oldest call, or whose start, is before the cutoff.
_LOADS_TO_PRUNE = "select load_id from {load_audit} where status = %s and (oldest_call < %s or started_at < %s)"

# Rows to prune: typed rows whose call timestamp is before the cutoff, and rejected rows without a usable
# timestamp that were loaded before it. Only loads that can hold such rows are scanned.
_EXPIRED_ROWS = """
    select t.load_id, t.record_number, t.rejection_reason is not null as rejected
    from {typed_rows} as t
    where t.load_id = any(%(loads)s)
      and (t."timestamp" < %(cutoff)s or (t."timestamp" is null and t.loaded_at < %(cutoff)s))
"""
_COUNT_EXPIRED_ROWS = "select count(*), count(*) filter (where rejected) from (" + _EXPIRED_ROWS + ") as e"
_DELETE_EXPIRED_ROWS = """
    with expired as materialized (""" + _EXPIRED_ROWS + """),
    gone_raw as (
        delete from {usage_rows} as u using expired as e
        where u.load_id = e.load_id and u.record_number = e.record_number
    ),
    gone as (
        delete from {typed_rows} as t using expired as e
        where t.load_id = e.load_id and t.record_number = e.record_number
        returning e.rejected
    )
    select count(*), count(*) filter (where rejected) from gone
"""
_REFRESH_OLDEST_CALL = """
    update {load_audit} as a
    set oldest_call = (select min(t."timestamp") from {typed_rows} as t where t.load_id = a.load_id)
    where a.load_id = any(%s)
"""
_RELATIONS = {"llm_calls": LLM_CALLS, "load_audit": LOAD_AUDIT, "typed_rows": TYPED_ROWS, "usage_rows": USAGE_ROWS}


def _sql(template: str) -> sql.Composed:
    return sql.SQL(template).format(**_RELATIONS)


def prune_calls(conn: psycopg.Connection, cutoff: datetime | None, *, dry_run: bool = False) -> PruneResult:
    """Delete (or count) the calls older than the cutoff; the marts must be rebuilt afterwards."""
    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    if cutoff is None or not relation_exists(conn, LLM_CALLS):
        return result
    statement = _sql(_COUNT_EXPIRED_CALLS if dry_run else _DELETE_EXPIRED_CALLS)
    result.calls = conn.execute(statement, [cutoff]).fetchone()[0]
    return result


def prune_rows(conn: psycopg.Connection, cutoff: datetime | None, result: PruneResult) -> PruneResult:
    """Delete (or count) the landing and typed rows older than the cutoff, rejects included."""
    if cutoff is None or not relation_exists(conn, TYPED_ROWS):
        return result
    loads = [r[0] for r in conn.execute(_sql(_LOADS_TO_PRUNE), [LoadStatus.DONE.value, cutoff, cutoff])]
    if not loads:
        return result
    params = {"loads": loads, "cutoff": cutoff}
    if result.dry_run:
        row = conn.execute(_sql(_COUNT_EXPIRED_ROWS), params).fetchone()
    else:
        row = conn.execute(_sql(_DELETE_EXPIRED_ROWS), params).fetchone()
        conn.execute(_sql(_REFRESH_OLDEST_CALL), [loads])
    result.raw_rows, result.rejected_rows = row
    return result


def prune_expired(conn: psycopg.Connection, cutoff: datetime | None, *, dry_run: bool = False) -> PruneResult:
    """Calls, landing rows and rejects older than the cutoff. Runs in the caller's transaction."""
    return prune_rows(conn, cutoff, prune_calls(conn, cutoff, dry_run=dry_run))


def prune(*, months: int | None = None, dry_run: bool = False, settings: Settings | None = None,
          progress: Progress = silent) -> PruneResult:
    """``telemetry prune``: delete what is older than the window, then rebuild the marts."""
    settings = settings or Settings.from_env()
    cutoff = retention_cutoff(settings.retention_months if months is None else months)
    with locked_database(settings, progress) as (conn, url):
        if dry_run:
            with conn.transaction(force_rollback=True):
                ensure_landing_tables(conn)
                return prune_expired(conn, cutoff, dry_run=True)
        prepare(conn, url, cutoff, progress)
        with conn.transaction():
            result = prune_expired(conn, cutoff)
        if result.anything:
            progress("rebuilding the marts")
            rebuild_marts(url, cutoff)
    return result
