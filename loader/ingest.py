"""``telemetry ingest csv``: header check, streamed COPY into the landing table, audit, then dbt.

Every record read is accounted for: ``rows_read = inserted + duplicates + rejected + expired``.
A load is one transaction holding its raw rows, its audit row and the file's checkpoint; llm_calls is then built
by dbt, whose post-hook marks the load ``modelled`` in the same transaction as the new calls. Ingests on one
database are serialised by an advisory lock, and a load left half-way by a crash is undone by the next ingest.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from loader import dbt
from loader.checkpoints import ReadPlan, plan_read, save_checkpoint
from loader.config import Settings
from loader.csvfile import Header, read_header
from loader.database import connect, resolve_url
from loader.errors import TelemetryError
from loader.landing import copy_records
from loader.retention import PruneResult, prune_calls, prune_expired, prune_rows, retention_cutoff
from loader.schema import (
    STAGING_MODEL,
    ensure_landing_tables,
    ensure_staging_view,
    price_seed_digest,
    relation_exists,
    staging_rules_digest,
)

Progress = Callable[[str], None]

#: Advisory lock key shared by every ingest and prune on a database ('llm-tele' as a number).
INGEST_LOCK_KEY = 0x6C6C6D2D74656C65

_OUTCOMES_SQL = """
with batch as materialized (
    select record_number, line_number, rejection_reason, "timestamp", session_id, prompt_name
    from telemetry.stg_telemetry__usage_rows
    where load_id = %(load_id)s
),
valid_keys as (
    select distinct "timestamp", session_id, prompt_name
    from batch
    where rejection_reason is null and "timestamp" >= %(cutoff)s::timestamptz
),
earlier_pending as materialized (
    select "timestamp", session_id, prompt_name
    from telemetry.stg_telemetry__usage_rows
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

_STORED_FILTER = """
        and not exists (
            select 1 from telemetry.llm_calls as c
            where c."timestamp" = v."timestamp" and c.session_id = v.session_id
                and c.prompt_name = v.prompt_name)
"""

_REJECTS_SQL = """
select rejection_reason, count(*), (array_agg(line_number order by line_number))[1:5]
from {relation}
where load_id = %(load_id)s and rejection_reason is not null
group by rejection_reason
order by count(*) desc, rejection_reason
"""

# After dbt: what became of each load's rows, read from the typed rows and llm_calls; recorded in the audit.
_MEASURE_SQL = """
update telemetry_raw.load_audit as a
set rejected = m.rejected,
    expired = m.expired,
    inserted = m.inserted,
    duplicates = a.rows_read - m.rejected - m.expired - m.inserted,
    oldest_call = m.oldest_call,
    status = 'done',
    finished_at = clock_timestamp()
from (
    select l.load_id, t.typed_rows, t.rejected, t.expired, t.oldest_call, c.inserted
    from unnest(%(loads)s::bigint[]) as l (load_id)
    cross join lateral (
        select count(*) as typed_rows,
            count(*) filter (where rejection_reason is not null) as rejected,
            count(*) filter (where rejection_reason is null and "timestamp" < %(cutoff)s::timestamptz) as expired,
            min("timestamp") as oldest_call
        from telemetry.int_usage_rows_typed as t
        where t.load_id = l.load_id
    ) as t
    cross join lateral (
        select count(*) as inserted from telemetry.llm_calls as c where c.load_id = l.load_id
    ) as c
) as m
where a.load_id = m.load_id
returning a.load_id, m.typed_rows, a.rows_read, a.inserted, a.duplicates, a.rejected, a.expired
"""


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


@dataclass
class IngestSummary:
    """The result of one ``ingest csv`` run (all files together)."""

    loads: list[LoadResult]
    dry_run: bool
    elapsed_seconds: float
    pruned: PruneResult | None = None

    def total(self, name: str) -> int:
        return sum(getattr(load, name) for load in self.loads)

    def as_dict(self) -> dict[str, object]:
        return {
            "rows_read": self.total("rows_read"),
            "inserted": self.total("inserted"),
            "duplicates": self.total("duplicates"),
            "rejected": self.total("rejected"),
            "expired": self.total("expired"),
            "dry_run": self.dry_run,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "pruned": self.pruned.as_dict() if self.pruned else None,
            "files": [
                {
                    "source_file": load.source_file,
                    "load_id": load.load_id,
                    "read": load.read,
                    "rows_read": load.rows_read,
                    "inserted": load.inserted,
                    "duplicates": load.duplicates,
                    "rejected": load.rejected,
                    "expired": load.expired,
                    "rejects": [
                        {"reason": r.reason, "count": r.count, "first_lines": r.first_lines} for r in load.rejects
                    ],
                }
                for load in self.loads
            ],
        }


def resolve_paths(path: Path) -> list[Path]:
    """A file, a directory (its *.csv files) or a glob pattern; several files are read oldest first."""
    text = str(path)
    if any(ch in text for ch in "*?[") and not path.exists():
        found = [Path(p) for p in glob.glob(text)]
        if not found:
            raise TelemetryError(f"{text}: no file matches this pattern")
    elif path.is_dir():
        found = list(path.glob("*.csv"))
        if not found:
            raise TelemetryError(f"{path}: the directory holds no .csv files; pass a CSV file or a directory of them")
    else:
        return [path]
    return sorted((p for p in found if p.is_file()), key=lambda p: (p.stat().st_mtime, p.name))


def _noop(_: str) -> None:
    pass


def acquire_lock(conn: psycopg.Connection, progress: Progress) -> None:
    """Take the ingest lock, saying so when another ingest holds it."""
    got = conn.execute("select pg_try_advisory_lock(%s)", [INGEST_LOCK_KEY]).fetchone()[0]
    if not got:
        progress("another ingest is running on this database; waiting for it to finish...")
        conn.execute("select pg_advisory_lock(%s)", [INGEST_LOCK_KEY])
        progress("the other ingest finished; continuing")


def recover_interrupted_loads(
    conn: psycopg.Connection, url: str, cutoff: datetime | None, progress: Progress
) -> None:
    """Undo loads a crash left half-way ('loaded': raw rows in, llm_calls not), finish 'modelled' ones.

    Runs under the ingest lock, so no other load is in progress. An undone load's files lose their
    checkpoint, so the next read takes them whole and deduplication restores exact counts.
    """
    with conn.transaction():
        pending = [r[0] for r in conn.execute(
            "select load_id from telemetry_raw.load_audit where status = 'loaded' order by load_id for update"
        )]
        if pending:
            progress(f"undoing {len(pending)} interrupted load(s): {', '.join(map(str, pending))}")
            conn.execute("delete from telemetry_raw.usage_rows where load_id = any(%s)", [pending])
            for relation in ("telemetry.int_usage_rows_typed", "telemetry.llm_calls"):
                if relation_exists(conn, relation):
                    conn.execute(sql.SQL("delete from {} where load_id = any(%s)").format(
                        sql.Identifier(*relation.split("."))), [pending])
            conn.execute(
                """
                delete from telemetry_raw.file_checkpoints as c
                using telemetry_raw.load_audit as a
                where a.load_id = any(%s) and a.source_file = c.source_file
                """,
                [pending],
            )
            conn.execute(
                "update telemetry_raw.load_audit set status = 'aborted', finished_at = clock_timestamp() "
                "where load_id = any(%s)",
                [pending],
            )
    modelled = [LoadResult(source_file=source, load_id=load_id) for load_id, source in conn.execute(
        "select load_id, source_file from telemetry_raw.load_audit where status = 'modelled' order by load_id"
    )]
    if modelled:
        progress(f"finishing {len(modelled)} interrupted load(s): rebuilding the marts")
        dbt.invoke(url, ["run", "--select", "llm_calls+", "--exclude", "llm_calls"],
                   dbt_vars={"retention_cutoff": cutoff.isoformat() if cutoff else "-infinity"})
        with conn.transaction():
            measure_outcomes(conn, modelled, cutoff)


def predict_outcomes(
    conn: psycopg.Connection, load: LoadResult, earlier_loads: list[int], cutoff: datetime | None
) -> None:
    """For a dry run: what would become of the load's rows, from the staging view (the same rules as dbt)."""
    stored = _STORED_FILTER if relation_exists(conn, "telemetry.llm_calls") else ""
    row = conn.execute(
        _OUTCOMES_SQL.replace("{stored_filter}", stored),
        {"load_id": load.load_id, "cutoff": cutoff or "-infinity", "earlier_loads": earlier_loads},
    ).fetchone()
    load.rows_read, load.rejected, load.expired, load.inserted = row
    load.duplicates = load.rows_read - load.rejected - load.expired - load.inserted
    load.rejects = [
        RejectReason(reason, count, list(lines))
        for reason, count, lines in conn.execute(
            _REJECTS_SQL.replace("{relation}", "telemetry.stg_telemetry__usage_rows"), {"load_id": load.load_id})
    ]


def measure_outcomes(conn: psycopg.Connection, loads: list[LoadResult], cutoff: datetime | None) -> None:
    """After dbt: record what became of each load's rows and mark the loads done.

    Every row read must have been typed exactly once: a difference is a bug, never a silent loss.
    """
    by_id = {load.load_id: load for load in loads}
    rows = conn.execute(_MEASURE_SQL, {"loads": list(by_id), "cutoff": cutoff or "-infinity"}).fetchall()
    for load_id, typed_rows, rows_read, inserted, duplicates, rejected, expired in rows:
        if typed_rows != rows_read:
            raise RuntimeError(f"load {load_id}: {rows_read} rows read but {typed_rows} typed")
        load = by_id[load_id]
        load.inserted, load.duplicates, load.rejected, load.expired = inserted, duplicates, rejected, expired
        load.rejects = [
            RejectReason(reason, count, list(lines))
            for reason, count, lines in conn.execute(
                _REJECTS_SQL.replace("{relation}", "telemetry.int_usage_rows_typed"), {"load_id": load_id})
        ]


def _load_one(conn: psycopg.Connection, header: Header, plan: ReadPlan, progress: Progress) -> LoadResult:
    source = str(header.path.resolve())
    load_id = conn.execute(
        "insert into telemetry_raw.load_audit (source_file, sha256, bytes, byte_offset, line_offset, started_at, "
        "status) values (%s, '', 0, %s, %s, clock_timestamp(), 'loaded') returning load_id",
        [source, plan.start, plan.position.lines],
    ).fetchone()[0]
    first_record = plan.position.records
    stream, clean_end = copy_records(conn, header, plan, load_id, progress)
    load = LoadResult(source_file=source, load_id=load_id, read=plan.reason,
                      rows_read=plan.position.records - first_record)
    conn.execute(
        "update telemetry_raw.load_audit set sha256 = %s, bytes = %s, rows_read = %s where load_id = %s",
        [stream.sha256.hexdigest(), stream.bytes_read, load.rows_read, load_id],
    )
    save_checkpoint(conn, plan, plan.position, clean_end)
    return load


def ingest_csv(
    path: Path | None = None,
    *,
    settings: Settings | None = None,
    dry_run: bool = False,
    progress: Progress = _noop,
) -> IngestSummary:
    """Load one CSV file (or a directory / glob of them) and bring llm_calls and the marts up to date."""
    started = time.monotonic()
    settings = settings or Settings.from_env()
    paths = resolve_paths(path or settings.csv_path)
    headers = [read_header(p) for p in paths]  # every file-level problem surfaces before anything is written
    url = resolve_url(settings)
    cutoff = retention_cutoff(settings.retention_months)

    with connect(url, autocommit=True) as conn:
        acquire_lock(conn, progress)
        if dry_run:
            # Everything, even creating missing tables, happens in a transaction that is rolled back.
            with conn.transaction(force_rollback=True):
                ensure_landing_tables(conn)
                ensure_staging_view(conn, url)
                loads = _load_files(conn, headers, progress)
                earlier: list[int] = []
                for load in loads:
                    if load.load_id is not None:
                        predict_outcomes(conn, load, earlier, cutoff)
                        earlier.append(load.load_id)
                pruned = prune_expired(conn, cutoff, dry_run=True)
            return IngestSummary(loads, True, time.monotonic() - started, pruned)

        ensure_landing_tables(conn)
        recover_interrupted_loads(conn, url, cutoff, progress)
        loads = _load_files(conn, headers, progress)
        with conn.transaction():  # calls that aged out leave before the marts are rebuilt
            pruned = prune_calls(conn, cutoff)
        new_loads = [ld for ld in loads if ld.load_id is not None]
        if new_loads or pruned.calls:
            progress("running dbt: llm_calls and the marts")
            run_models(conn, url, cutoff, progress)
            with conn.transaction():
                measure_outcomes(conn, new_loads, cutoff)
        with conn.transaction():
            prune_rows(conn, cutoff, pruned)
    return IngestSummary(loads, False, time.monotonic() - started, pruned)


def _load_files(conn: psycopg.Connection, headers: list[Header], progress: Progress) -> list[LoadResult]:
    loads: list[LoadResult] = []
    for header in headers:
        plan = plan_read(conn, header)
        if plan.unchanged:
            progress(f"{header.path}: unchanged since the last load, nothing to read")
            loads.append(LoadResult(source_file=str(header.path.resolve()), load_id=None, read="unchanged"))
            continue
        progress(f"loading {header.path} ({plan.reason}, from byte {plan.start:,})")
        with conn.transaction():
            loads.append(_load_one(conn, header, plan, progress))
    return loads


def run_models(
    conn: psycopg.Connection, url: str, cutoff: datetime | None, progress: Progress, *, full_refresh: bool = False
) -> None:
    """Build llm_calls and everything downstream of the typed rows with dbt.

    The staging view and the price seed are rebuilt only when their files changed (or on a full refresh):
    each dbt node costs time on every load.
    """
    select = ["int_usage_rows_typed+", "rejected_rows"]
    fresh = {"staging_rules": staging_rules_digest(), "price_seed": price_seed_digest()}
    stored = dict(conn.execute("select key, value from telemetry_raw.loader_state").fetchall())
    if full_refresh or stored.get("staging_rules") != fresh["staging_rules"] or not relation_exists(
            conn, f"telemetry.{STAGING_MODEL}"):
        select.append(STAGING_MODEL)
    if full_refresh or stored.get("price_seed") != fresh["price_seed"] or not relation_exists(
            conn, "telemetry.model_prices"):
        select.append("model_prices")
    dbt.invoke(
        url,
        ["build", "--resource-type", "seed", "--resource-type", "model", "--select", *select,
         *(["--full-refresh"] if full_refresh else [])],
        dbt_vars={"retention_cutoff": cutoff.isoformat() if cutoff else "-infinity"},
        on_node=lambda name, status: progress(f"  {name}: {status}"),
    )
    for key, value in fresh.items():
        conn.execute(
            "insert into telemetry_raw.loader_state (key, value) values (%s, %s) "
            "on conflict (key) do update set value = excluded.value",
            [key, value],
        )


def reprice(*, settings: Settings | None = None, progress: Progress = _noop) -> None:
    """Rebuild llm_calls from the landing table with the current price seed (``telemetry prices reprice``).

    Keys, and which load first brought each call, are unchanged: the rebuild keeps the first row read.
    """
    settings = settings or Settings.from_env()
    url = resolve_url(settings)
    with connect(url, autocommit=True) as conn:
        acquire_lock(conn, progress)
        ensure_landing_tables(conn)
        cutoff = retention_cutoff(settings.retention_months)
        recover_interrupted_loads(conn, url, cutoff, progress)
        run_models(conn, url, cutoff, progress, full_refresh=True)
