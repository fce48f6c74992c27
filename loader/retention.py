"""Retention: calls older than TELEMETRY_RETENTION_MONTHS leave llm_calls, the landing table and the rejects.

Every ingest prunes; ``telemetry prune`` does it on demand. Loads already past the window are not re-admitted:
llm_calls only takes rows newer than the cutoff, and the ingest counts older ones as ``expired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from loader import dbt
from loader.config import Settings
from loader.database import connect, resolve_url
from loader.schema import relation_exists


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


# Rows to prune: typed rows whose call timestamp is before the cutoff, and rejected rows without a usable
# timestamp that were loaded before it. Only loads that can hold such rows are scanned.
_EXPIRED_ROWS = """
    select t.load_id, t.record_number, t.rejection_reason is not null as rejected
    from telemetry.int_usage_rows_typed as t
    where t.load_id = any(%(loads)s)
      and (t."timestamp" < %(cutoff)s or (t."timestamp" is null and t.loaded_at < %(cutoff)s))
"""


def prune_calls(conn: psycopg.Connection, cutoff: datetime | None, *, dry_run: bool = False) -> PruneResult:
    """Delete (or count) the calls older than the cutoff; the marts must be rebuilt afterwards."""
    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    if cutoff is None or not relation_exists(conn, "telemetry.llm_calls"):
        return result
    expired_calls = 'from telemetry.llm_calls where "timestamp" < %s'
    statement = (f"select count(*) {expired_calls}" if dry_run
                 else f"with gone as (delete {expired_calls} returning 1) select count(*) from gone")
    result.calls = conn.execute(statement, [cutoff]).fetchone()[0]
    return result


def prune_rows(conn: psycopg.Connection, cutoff: datetime | None, result: PruneResult) -> PruneResult:
    """Delete (or count) the landing and typed rows older than the cutoff, rejects included."""
    if cutoff is None or not relation_exists(conn, "telemetry.int_usage_rows_typed"):
        return result
    loads = [r[0] for r in conn.execute(
        "select load_id from telemetry_raw.load_audit where status = 'done' "
        "and (oldest_call < %s or started_at < %s)",
        [cutoff, cutoff],
    )]
    if not loads:
        return result
    params = {"loads": loads, "cutoff": cutoff}
    if result.dry_run:
        row = conn.execute(f"select count(*), count(*) filter (where rejected) from ({_EXPIRED_ROWS}) as e",
                           params).fetchone()
    else:
        row = conn.execute(
            f"""
            with expired as materialized ({_EXPIRED_ROWS}),
            gone_raw as (
                delete from telemetry_raw.usage_rows as u using expired as e
                where u.load_id = e.load_id and u.record_number = e.record_number
            ),
            gone as (
                delete from telemetry.int_usage_rows_typed as t using expired as e
                where t.load_id = e.load_id and t.record_number = e.record_number
                returning e.rejected
            )
            select count(*), count(*) filter (where rejected) from gone
            """,
            params,
        ).fetchone()
        conn.execute(
            """
            update telemetry_raw.load_audit as a
            set oldest_call = (select min(t."timestamp") from telemetry.int_usage_rows_typed as t
                               where t.load_id = a.load_id)
            where a.load_id = any(%s)
            """,
            [loads],
        )
    result.raw_rows, result.rejected_rows = row
    return result


def prune_expired(conn: psycopg.Connection, cutoff: datetime | None, *, dry_run: bool = False) -> PruneResult:
    """Calls, landing rows and rejects older than the cutoff. Runs in the caller's transaction."""
    return prune_rows(conn, cutoff, prune_calls(conn, cutoff, dry_run=dry_run))


def prune(*, months: int | None = None, dry_run: bool = False, settings: Settings | None = None,
          progress=lambda _: None) -> PruneResult:
    """``telemetry prune``: delete what is older than the window, then rebuild the marts."""
    from loader.ingest import acquire_lock, recover_interrupted_loads
    from loader.schema import ensure_landing_tables

    settings = settings or Settings.from_env()
    cutoff = retention_cutoff(settings.retention_months if months is None else months)
    url = resolve_url(settings)
    with connect(url, autocommit=True) as conn:
        acquire_lock(conn, progress)
        if dry_run:
            with conn.transaction(force_rollback=True):
                ensure_landing_tables(conn)
                return prune_expired(conn, cutoff, dry_run=True)
        ensure_landing_tables(conn)
        recover_interrupted_loads(conn, url, cutoff, progress)
        with conn.transaction():
            result = prune_expired(conn, cutoff)
        if result.anything:
            progress("rebuilding the marts")
            dbt.invoke(url, ["run", "--select", "llm_calls+", "--exclude", "llm_calls"],
                       dbt_vars={"retention_cutoff": cutoff.isoformat() if cutoff else "-infinity"})
    return result
