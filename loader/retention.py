"""Retention: calls older than the database's window leave llm_calls and the marts, rejects leave rejected_rows.

The window is a setting of the database (``loader_state.retention_months``), not of the process that happens to
run: the first command on a database stores it (TELEMETRY_RETENTION_MONTHS, else 6 months), ``telemetry
retention set N`` changes it, and an environment variable that disagrees is reported and not used. The cutoff
is midnight UTC of the day N calendar months ago, so it moves once a day: between two runs of one day nothing
ages out, and a run that loads nothing costs no pruning and no dbt. The first run of a day deletes the day that
left the window from llm_calls and from the marts, without dbt (their rows belong to one call or one day); only
sessions with calls on both sides of the cutoff are recomputed by dbt.

Every ingest prunes when the cutoff moved since the last prune (or when it loaded rows); ``telemetry prune``
does it on demand. Loads past the window are not re-admitted: llm_calls only takes rows newer than the cutoff,
and the ingest counts older ones as ``expired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from loader.config import DEFAULT_RETENTION_MONTHS, MAX_RETENTION_MONTHS, Settings
from loader.contract import (
    COST_BY_SESSION,
    LLM_CALLS,
    PRUNED_BY_DAY,
    PRUNED_BY_TIME,
    REJECTED_ROWS,
    get_state,
    is_table,
    relation_exists,
    set_state,
)
from loader.errors import TelemetryError
from loader.pipeline import locked_database, rebuild_marts, recover_interrupted_loads
from loader.progress import Progress, silent
from loader.schema import ensure_landing_tables

_WINDOW_KEY = "retention_months"
_PRUNED_THROUGH_KEY = "pruned_through"


@dataclass
class PruneResult:
    cutoff: datetime | None
    calls: int = 0
    rejected_rows: int = 0
    dry_run: bool = False
    notice: str | None = None
    #: Sessions that had calls on both sides of the cutoff: their rows in cost_by_session need dbt.
    spanning_sessions: int = 0

    @property
    def anything(self) -> bool:
        return bool(self.calls or self.rejected_rows)

    @property
    def raw_rows(self) -> int:
        """Rows of the files' text that left: the rejects (a call's landing row is gone once its load is done)."""
        return self.rejected_rows

    def as_dict(self) -> dict[str, object]:
        return {"cutoff": self.cutoff.isoformat() if self.cutoff else None, "calls": self.calls,
                "raw_rows": self.raw_rows, "rejected_rows": self.rejected_rows, "dry_run": self.dry_run}


@dataclass(frozen=True)
class Retention:
    """The window in force on a database, and what to tell the user about it."""

    months: int
    cutoff: datetime | None
    notice: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"months": self.months, "cutoff": self.cutoff.isoformat() if self.cutoff else None}


def check_months(months: int, where: str) -> int:
    if not 0 <= months <= MAX_RETENTION_MONTHS:
        raise TelemetryError(
            f"{where}: {months} months is not a retention window; use 0 (keep everything) up to "
            f"{MAX_RETENTION_MONTHS} (100 years)"
        )
    return months


def retention_cutoff(months: int, now: datetime | None = None) -> datetime | None:
    """The instant before which calls are expired: midnight UTC of the day ``months`` calendar months ago.

    None when retention is off (``months == 0``): nothing expires. The 31st minus a month whose last day is
    the 30th (or February's) is that month's last day.
    """
    check_months(months, "retention")
    if months == 0:
        return None
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    month += 1
    day = today.day
    while True:
        try:
            return datetime.combine(date(year, month, day), datetime.min.time(), UTC)
        except ValueError:  # e.g. 31 August minus 6 months: the last day of February
            day -= 1


def database_retention(conn: psycopg.Connection, settings: Settings) -> Retention:
    """The window stored in the database; a database without one stores the configured window (or the default).

    ``settings.retention_months`` is None when TELEMETRY_RETENTION_MONTHS is unset; a value that differs from
    the stored window is not used, and the returned notice says so and how to change the window.
    """
    configured = settings.retention_months
    stored = stored_months(conn)
    if stored is None:
        if configured is None and (oldest := _call_older_than_the_default_window(conn)) is not None:
            set_state(conn, _WINDOW_KEY, "0")
            return Retention(0, None, (
                f"this database was built before its retention window was stored and holds calls from "
                f"{oldest:%Y-%m-%d}, older than the default window of {DEFAULT_RETENTION_MONTHS} months: it keeps "
                f"everything until you choose a window, e.g. telemetry retention set {DEFAULT_RETENTION_MONTHS}"))
        months = check_months(configured if configured is not None else DEFAULT_RETENTION_MONTHS,
                              "TELEMETRY_RETENTION_MONTHS")
        set_state(conn, _WINDOW_KEY, str(months))
        return Retention(months, retention_cutoff(months))
    return Retention(stored, retention_cutoff(stored), disagreement(configured, stored))


def _call_older_than_the_default_window(conn: psycopg.Connection) -> datetime | None:
    """The oldest call of a database 0.1.0 built (no window stored) when the default window would prune it.

    0.1.0 pruned with whatever TELEMETRY_RETENTION_MONTHS the run had: calls older than the default window mean
    the database was kept with a longer one (or none), which a plain first run of this version must not undo.
    """
    if not relation_exists(conn, LLM_CALLS):
        return None
    oldest = conn.execute(sql.SQL('select min("timestamp") from {}').format(LLM_CALLS)).fetchone()[0]
    cutoff = retention_cutoff(DEFAULT_RETENTION_MONTHS)
    return oldest if oldest is not None and oldest < cutoff else None


def stored_months(conn: psycopg.Connection) -> int | None:
    """The window stored in the database; None before the first command set it."""
    stored = get_state(conn, _WINDOW_KEY)
    return int(stored) if stored is not None else None


def disagreement(configured: int | None, months: int) -> str | None:
    """What to tell the user when TELEMETRY_RETENTION_MONTHS disagrees with the database's window."""
    if configured is None or configured == months:
        return None
    return (f"TELEMETRY_RETENTION_MONTHS={configured} differs from this database's retention window of "
            f"{months} months, which is used; to change the window run: telemetry retention set {configured}")


def set_retention(months: int, *, settings: Settings | None = None, progress: Progress = silent) -> Retention:
    """``telemetry retention set N``: store a new window; the next ingest or prune applies it."""
    check_months(months, "telemetry retention set")
    settings = settings or Settings.from_env()
    with locked_database(settings, progress) as (conn, _url):
        ensure_landing_tables(conn)
        set_state(conn, _WINDOW_KEY, str(months))
    return Retention(months, retention_cutoff(months))


def cutoff_moved(conn: psycopg.Connection, cutoff: datetime | None) -> bool:
    """Whether calls may have aged out since the last prune (the cutoff moves once a day)."""
    return cutoff is not None and get_state(conn, _PRUNED_THROUGH_KEY) != cutoff.isoformat()


def mark_pruned(conn: psycopg.Connection, cutoff: datetime | None) -> None:
    if cutoff is not None:
        set_state(conn, _PRUNED_THROUGH_KEY, cutoff.isoformat())


_EXPIRED_CALLS = 'from {llm_calls} where "timestamp" < %s'
_COUNT_EXPIRED_CALLS = "select count(*) " + _EXPIRED_CALLS
_DELETE_EXPIRED_CALLS = "with gone as (delete " + _EXPIRED_CALLS + " returning 1) select count(*) from gone"

# Rejects to prune: those whose timestamp parsed and is before the cutoff, and those without a usable timestamp
# that were loaded before it. (A call's landing and typed rows are gone once its load is done: the calls are
# pruned above, and the rejects are the only rows of a file kept besides them.)
_EXPIRED_REJECTS = """
    from {rejected_rows}
    where ("timestamp" < %(cutoff)s or ("timestamp" is null and loaded_at < %(cutoff)s))
        and (%(loads)s::bigint[] is null or load_id = any(%(loads)s))
"""
_COUNT_EXPIRED_REJECTS = "select count(*) " + _EXPIRED_REJECTS
_DELETE_EXPIRED_REJECTS = "with gone as (delete " + _EXPIRED_REJECTS + " returning 1) select count(*) from gone"
_RELATIONS = {"llm_calls": LLM_CALLS, "rejected_rows": REJECTED_ROWS}


def _sql(template: str) -> sql.Composed:
    return sql.SQL(template).format(**_RELATIONS)


def prune_calls(conn: psycopg.Connection, cutoff: datetime | None, *, dry_run: bool = False) -> PruneResult:
    """Delete (or count) the calls older than the cutoff, and what the marts hold of them.

    The marts are pruned here, by deleting (see contract.PRUNED_BY_TIME and PRUNED_BY_DAY), so that calls
    ageing out cost no dbt run; only sessions with calls on both sides of the cutoff need dbt to recompute them
    (``spanning_sessions``; rebuild_marts(..., only=[COST_BY_SESSION.name])).
    """
    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    if cutoff is None or not relation_exists(conn, LLM_CALLS):
        return result
    statement = _sql(_COUNT_EXPIRED_CALLS if dry_run else _DELETE_EXPIRED_CALLS)
    result.calls = conn.execute(statement, [cutoff]).fetchone()[0]
    if result.calls and not dry_run:
        result.spanning_sessions = _prune_marts(conn, cutoff)
    return result


def _prune_marts(conn: psycopg.Connection, cutoff: datetime) -> int:
    """Delete the marts' rows dated before the cutoff (a midnight UTC); the number of sessions spanning it."""
    for relation, column in PRUNED_BY_TIME:
        if relation != LLM_CALLS and relation_exists(conn, relation):
            conn.execute(sql.SQL("delete from {} where {} < %s").format(relation, sql.SQL(column)), [cutoff])
    for relation, column in PRUNED_BY_DAY:
        if relation_exists(conn, relation):
            conn.execute(sql.SQL("delete from {} where {} < %s").format(relation, sql.SQL(column)),
                         [cutoff.astimezone(UTC).date()])
    if not relation_exists(conn, COST_BY_SESSION):
        return 0
    conn.execute(sql.SQL("delete from {} where last_call_at < %s").format(COST_BY_SESSION), [cutoff])
    return conn.execute(sql.SQL("select count(*) from {} where first_call_at < %s").format(COST_BY_SESSION),
                        [cutoff]).fetchone()[0]


def prune_rows(
    conn: psycopg.Connection, cutoff: datetime | None, result: PruneResult, *, only_loads: list[int] | None = None
) -> PruneResult:
    """Delete (or count) the rejected rows older than the cutoff.

    ``only_loads``: look only at these loads (the ones just loaded, when the cutoff did not move).
    """
    if cutoff is None or not is_table(conn, REJECTED_ROWS) or only_loads == []:
        return result
    params = {"loads": only_loads, "cutoff": cutoff}
    statement = _COUNT_EXPIRED_REJECTS if result.dry_run else _DELETE_EXPIRED_REJECTS
    result.rejected_rows = conn.execute(_sql(statement), params).fetchone()[0]
    return result


def prune_expired(conn: psycopg.Connection, cutoff: datetime | None, *, dry_run: bool = False) -> PruneResult:
    """Calls, landing rows and rejects older than the cutoff. Runs in the caller's transaction."""
    return prune_rows(conn, cutoff, prune_calls(conn, cutoff, dry_run=dry_run))


def prune(*, months: int | None = None, dry_run: bool = False, settings: Settings | None = None,
          progress: Progress = silent) -> PruneResult:
    """``telemetry prune``: delete what is older than the window (the database's, or ``months`` for this run
    only), from the marts too."""
    settings = settings or Settings.from_env()
    with locked_database(settings, progress) as (conn, url):
        if dry_run:
            with conn.transaction(force_rollback=True):
                ensure_landing_tables(conn)
                retention = database_retention(conn, settings)
                cutoff = retention.cutoff if months is None else retention_cutoff(months)
                result = prune_expired(conn, cutoff, dry_run=True)
                result.notice = retention.notice if months is None else None
                return result
        ensure_landing_tables(conn)
        retention = database_retention(conn, settings)
        recover_interrupted_loads(conn, url, retention.cutoff, progress)
        cutoff = retention.cutoff if months is None else retention_cutoff(months)
        with conn.transaction():
            result = prune_expired(conn, cutoff)
            if months is None:
                mark_pruned(conn, cutoff)
        result.notice = retention.notice if months is None else None
        if result.spanning_sessions:
            progress(f"{result.spanning_sessions:,} sessions span the retention cutoff; recomputing them")
            rebuild_marts(url, cutoff, only=[COST_BY_SESSION.name])
    return result
