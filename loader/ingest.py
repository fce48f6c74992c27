"""``telemetry ingest csv``: find the files, load each one's new bytes, then bring llm_calls and the marts up to date.

A load is one transaction holding its raw rows, its audit row and the file's checkpoint; the lifecycle around it
(lock, recovery, dbt) is ``loader.pipeline``'s, what became of the rows ``loader.outcomes``'. Every record read
is accounted for: ``rows_read = inserted + duplicates + rejected + expired``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from loader.checkpoints import READ_DESCRIPTIONS, ReadPlan, plan_read, save_checkpoint
from loader.config import Settings
from loader.contract import COST_BY_SESSION, LOAD_AUDIT, LoadStatus
from loader.csv_header import Header, read_header
from loader.idle_models import idle_models
from loader.landing import copy_records
from loader.outcomes import LoadResult, RejectReason, measure_outcomes, predict_outcomes
from loader.pipeline import (
    locked_database,
    models_current,
    rebuild_marts,
    recover_interrupted_loads,
    refresh_statistics,
    release_landed_rows,
    run_models,
)
from loader.progress import Progress, silent
from loader.retention import (
    PruneResult,
    Retention,
    cutoff_moved,
    database_retention,
    mark_pruned,
    prune_calls,
    prune_expired,
    prune_rows,
)
from loader.schema import ensure_landing_tables, ensure_staging_view
from loader.sources import resolve_paths

__all__ = ["IngestSummary", "LoadResult", "RejectReason", "ingest_csv", "resolve_paths"]

_START_LOAD = sql.SQL(
    "insert into {} (source_file, sha256, bytes, byte_offset, line_offset, started_at, status) "
    "values (%s, '', 0, %s, %s, clock_timestamp(), %s) returning load_id"
).format(LOAD_AUDIT)
_RECORD_READ = sql.SQL("update {} set sha256 = %s, bytes = %s, rows_read = %s where load_id = %s").format(LOAD_AUDIT)


@dataclass
class IngestSummary:
    """The result of one ``ingest csv`` run (all files together)."""

    loads: list[LoadResult]
    dry_run: bool
    elapsed_seconds: float
    pruned: PruneResult | None = None
    retention: Retention | None = None

    @property
    def notices(self) -> list[str]:
        """Warnings about the run as a whole (not about rows), for the CLI to print."""
        return [self.retention.notice] if self.retention and self.retention.notice else []

    def total(self, name: str) -> int:
        return sum(getattr(load, name) for load in self.loads)

    def as_dict(self) -> dict[str, object]:
        return {
            "rows_read": self.total("rows_read"),
            "inserted": self.total("inserted"),
            "duplicates": self.total("duplicates"),
            "conflicts": self.total("conflicts"),
            "rejected": self.total("rejected"),
            "expired": self.total("expired"),
            "dry_run": self.dry_run,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "pruned": self.pruned.as_dict() if self.pruned else None,
            "retention": self.retention.as_dict() if self.retention else None,
            "files": [
                {
                    "source_file": load.source_file,
                    "load_id": load.load_id,
                    "read": load.read,
                    "rows_read": load.rows_read,
                    "inserted": load.inserted,
                    "duplicates": load.duplicates,
                    "conflicts": load.conflicts,
                    "conflict_lines": load.conflict_lines,
                    "pending": load.pending,
                    "rejected": load.rejected,
                    "expired": load.expired,
                    "rejects": [
                        {"reason": r.reason, "count": r.count, "first_lines": r.first_lines} for r in load.rejects
                    ],
                }
                for load in self.loads
            ],
        }


def ingest_csv(
    path: Path | None = None,
    *,
    settings: Settings | None = None,
    dry_run: bool = False,
    progress: Progress = silent,
) -> IngestSummary:
    """Load one CSV file (or a directory / glob of them) and bring llm_calls and the marts up to date."""
    started = time.monotonic()
    settings = settings or Settings.from_env()
    paths = resolve_paths(settings.csv_path if path is None else path)
    headers = [read_header(p) for p in paths]  # every file-level problem surfaces before anything is written

    with locked_database(settings, progress) as (conn, url):
        if dry_run:
            # Everything, even creating missing tables, happens in a transaction that is rolled back.
            with conn.transaction(force_rollback=True):
                ensure_landing_tables(conn)
                retention = database_retention(conn, settings)
                ensure_staging_view(conn, url)
                loads = _load_files(conn, headers, progress)
                earlier: list[int] = []
                for load in loads:
                    if load.load_id is not None:
                        predict_outcomes(conn, load, earlier, retention.cutoff)
                        earlier.append(load.load_id)
                pruned = prune_expired(conn, retention.cutoff, dry_run=True)
            return IngestSummary(loads, True, time.monotonic() - started, pruned, retention)

        ensure_landing_tables(conn)
        retention = database_retention(conn, settings)
        cutoff = retention.cutoff
        recover_interrupted_loads(conn, url, cutoff, progress)
        loads = _load_files(conn, headers, progress)
        new_loads = [ld for ld in loads if ld.load_id is not None]
        aged = cutoff_moved(conn, cutoff)  # the cutoff moves once a day: most runs prune nothing
        with conn.transaction():  # calls that aged out leave before the marts are rebuilt
            pruned = prune_calls(conn, cutoff if aged else None)
        if pruned.calls:
            progress(f"{pruned.calls:,} calls aged out of the retention window")
        current = models_current(conn)  # false after an upgrade (or an edit of the models), until dbt built them
        if new_loads or not current:
            idle = _idle_marts(conn, new_loads, cutoff, pruned) if current else []
            progress("running dbt: llm_calls and the marts"
                     + (f" (the loads bring nothing to {', '.join(idle)})" if idle else ""))
            run_models(conn, url, cutoff, progress, idle=idle)
            if new_loads:
                with conn.transaction():
                    measure_outcomes(conn, new_loads, cutoff)
                refresh_statistics(conn, sum(load.rows_read for load in new_loads))
        elif pruned.spanning_sessions:
            progress(f"recomputing {pruned.spanning_sessions:,} sessions with calls on both sides of the cutoff")
            rebuild_marts(url, cutoff, only=[COST_BY_SESSION.name])
        if aged or new_loads:
            with conn.transaction():
                prune_rows(conn, cutoff, pruned, only_loads=None if aged else [ld.load_id for ld in new_loads])
                mark_pruned(conn, cutoff)
        release_landed_rows(conn)  # every load is done: their landing and typed rows are no longer needed
    pruned.cutoff = cutoff
    return IngestSummary(loads, False, time.monotonic() - started, pruned, retention)


def _idle_marts(conn: psycopg.Connection, loads: list[LoadResult], cutoff: datetime | None,
                pruned: PruneResult) -> list[str]:
    """The marts this run need not build (loader.idle_models); cost_by_session is built when retention cut
    sessions in two, whatever the loads bring."""
    idle = idle_models(conn, [load.load_id for load in loads], sum(load.rows_read for load in loads), cutoff)
    return [name for name in idle if not (pruned.spanning_sessions and name == COST_BY_SESSION.name)]


def _load_files(conn: psycopg.Connection, headers: list[Header], progress: Progress) -> list[LoadResult]:
    loads: list[LoadResult] = []
    for header in headers:
        plan = plan_read(conn, header)
        if plan.unchanged:
            progress(f"{header.path}: {READ_DESCRIPTIONS[plan.reason]}")
            loads.append(LoadResult(source_file=str(header.path.resolve()), load_id=None, read=plan.reason,
                                    pending=plan.pending_notice))
            continue
        progress(f"loading {header.path} ({plan.reason}, from byte {plan.start:,})")
        with conn.transaction():
            load = _load_one(conn, header, plan, progress)
        load.pending = plan.pending_notice
        loads.append(load)
    return loads


def _load_one(conn: psycopg.Connection, header: Header, plan: ReadPlan, progress: Progress) -> LoadResult:
    source = str(header.path.resolve())
    start = [source, plan.start, plan.position.lines, LoadStatus.LOADED.value]
    load_id = conn.execute(_START_LOAD, start).fetchone()[0]
    first_record = plan.position.records
    stream, clean_end = copy_records(conn, header, plan, load_id, progress)
    load = LoadResult(source_file=source, load_id=load_id, read=plan.reason,
                      rows_read=plan.position.records - first_record)
    conn.execute(_RECORD_READ, [stream.sha256.hexdigest(), stream.bytes_read, load.rows_read, load_id])
    save_checkpoint(conn, plan, plan.position, clean_end)
    return load
