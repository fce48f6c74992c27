"""``telemetry ingest csv`` on Spark (TELEMETRY_ENGINE=spark): the loader's landing for that engine.

Everything but the landing is the PostgreSQL path's: the header check (loader.csv_header), the record scanner and
its rejects (loader.csv_records), incremental reads (loader.checkpoints), the dbt project and the summary
(loader.outcomes.LoadResult). What differs is where rows go and how a load is committed:

- Records are written, as the scanner read them, to a CSV file of the warehouse (one per load, every value
  quoted, NULL unquoted) that Spark's own CSV reader inserts into ``telemetry_raw.usage_rows``.
- Parquet has no transactions and no UPDATE, so the load audit is an append-only log,
  ``telemetry_raw.load_events``: a load is 'loaded' once its event is written (after its rows), 'done' once its
  second event is (after dbt and its counts). ``telemetry_raw.load_audit`` is a view of each load's latest event.
  A file's checkpoint travels in its load's events and takes effect with 'done'.
- A load a crash left 'loaded' is finished by the next run, not undone: its rows are still in the warehouse, and
  every model is idempotent for it (llm_calls takes only keys it does not hold, rejected_rows and call_conflicts
  only loads they do not hold, the typed rows only newer loads). Rows of a load whose event was never written
  are in no batch and are dropped with the landing rows.
- Landing and typed rows are emptied once no load is in flight (TRUNCATE), as on PostgreSQL.

Not on Spark (the CLI says so): --dry-run, --watch, pruning by retention (the cutoff still keeps old calls out of
new loads), repricing, the dashboard and the read-only role.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from loader import dbt
from loader.checkpoints import CHECKPOINT_COLUMNS, READ_DESCRIPTIONS, ReadPlan, plan_read, save_checkpoint
from loader.config import Settings
from loader.contract import LoadStatus, dbt_vars
from loader.csv_header import CSV_COLUMNS, Header, read_header
from loader.csv_records import HashingReader, iter_records
from loader.errors import AccountingError
from loader.ingest import IngestSummary
from loader.landing import fingerprint_from_start, finish_read
from loader.outcomes import LoadResult, RejectReason
from loader.progress import Progress, silent
from loader.retention import Retention, retention_cutoff
from loader.sources import open_regular, resolve_paths
from loader.spark_session import locked_warehouse, profile_env

_TEXT_COLUMNS = [*CSV_COLUMNS, "parse_error"]
_EVENT_COLUMNS = [
    ("event_number", "bigint"), ("load_id", "bigint"), ("source_file", "string"), ("sha256", "string"),
    ("bytes", "bigint"), ("byte_offset", "bigint"), ("line_offset", "bigint"), ("rows_read", "bigint"),
    ("oldest_call", "timestamp"), ("inserted", "bigint"), ("duplicates", "bigint"), ("rejected", "bigint"),
    ("expired", "bigint"), ("conflicts", "bigint"), ("started_at", "timestamp"), ("finished_at", "timestamp"),
    ("status", "string"), ("checkpoint", "string"),
]


def ingest_csv_spark(path: Path | None, settings: Settings, progress: Progress = silent) -> IngestSummary:
    """Load one CSV file (or a directory / glob of them) into the Spark warehouse and build the models there."""
    started = time.monotonic()
    paths = resolve_paths(settings.csv_path if path is None else path)
    headers = [read_header(p) for p in paths]  # every file-level problem surfaces before anything is written
    months = settings.retention_months if settings.retention_months is not None else 6
    retention = Retention(months, retention_cutoff(months))
    with locked_warehouse(settings, progress) as spark:
        warehouse = _Warehouse(spark, settings)
        warehouse.ensure_tables()
        in_flight = warehouse.loads_in_flight()
        if in_flight:
            ids = ", ".join(str(load.load_id) for load in in_flight)
            progress(f"finishing {len(in_flight)} interrupted load(s): {ids}")
        loads = [_load_file(warehouse, header, progress) for header in headers]
        batch = in_flight + [load for load in loads if load.load_id is not None]
        if batch or not warehouse.built():
            progress("running dbt on Spark: llm_calls and the marts")
            dbt.invoke_spark(
                profile_env(settings),
                ["build", "--resource-type", "seed", "--resource-type", "model"],
                dbt_vars=dbt_vars(retention.cutoff),
                on_node=lambda name, status: progress(f"  {name}: {status}"),
            )
            warehouse.finish(batch, retention.cutoff)
        warehouse.release_landed_rows()
    return IngestSummary(loads, False, time.monotonic() - started, None, retention)


def _load_file(warehouse: _Warehouse, header: Header, progress: Progress) -> LoadResult:
    plan = plan_read(warehouse, header)
    source = str(header.path.resolve())
    if plan.unchanged:
        progress(f"{header.path}: {READ_DESCRIPTIONS[plan.reason]}")
        return LoadResult(source_file=source, load_id=None, read=plan.reason, pending=plan.pending_notice)
    progress(f"loading {header.path} ({plan.reason}, from byte {plan.start:,})")
    load = warehouse.land(header, plan)
    load.pending = plan.pending_notice
    return load


class _Warehouse:
    """The Spark tables of one warehouse, and the checkpoint store (loader.checkpoints) kept in its load events."""

    def __init__(self, spark, settings: Settings) -> None:
        self.spark = spark
        self.folder = settings.spark_warehouse
        self._checkpoints: dict[str, tuple] | None = None
        self._saved: dict[str, list[object]] = {}

    def sql(self, statement: str) -> list:
        return self.spark.sql(statement).collect()

    def ensure_tables(self) -> None:
        self.sql("create database if not exists telemetry_raw")
        self.sql("create database if not exists telemetry")
        self.sql(f"create table if not exists telemetry_raw.usage_rows ({_landing_schema()}) using parquet")
        events = ", ".join(f"{name} {kind}" for name, kind in _EVENT_COLUMNS)
        self.sql(f"create table if not exists telemetry_raw.load_events ({events}) using parquet")
        audit = ", ".join(name for name, _ in _EVENT_COLUMNS if name not in ("event_number", "checkpoint"))
        self.sql(f"""create or replace view telemetry_raw.load_audit as
            select {audit} from (
                select *, row_number() over (partition by load_id order by event_number desc) as newest
                from telemetry_raw.load_events
            ) where newest = 1""")

    def built(self) -> bool:
        return bool(self.sql("show tables in telemetry like 'daily_usage_rollups'"))

    # --- the checkpoint store (the checkpoints of the loads done, newest per file) ---

    def checkpoint(self, source_file: str) -> tuple | None:
        if self._checkpoints is None:
            self._checkpoints = {}
            for source, text in self.sql(
                    "select source_file, checkpoint from (select *, row_number() over (partition by source_file "
                    "order by event_number desc) as newest from telemetry_raw.load_events "
                    f"where status = '{LoadStatus.DONE.value}' and checkpoint is not null) where newest = 1"):
                saved = json.loads(text)
                self._checkpoints[source] = tuple(saved[c] for c in CHECKPOINT_COLUMNS)
        return self._checkpoints.get(source_file)

    def refresh(self, source_file: str, status_values: list[object], prefix_fingerprint: str) -> None:
        """A touched file with the same bytes: the next run verifies them again (nothing is written here)."""

    def loads_of_file(self, source_file: str) -> list[tuple[int, int, str]]:
        return []  # every Spark checkpoint has its prefix fingerprint

    def save(self, source_file: str, values: list[object]) -> None:
        self._saved[source_file] = values

    # --- a load ---

    def _next_ids(self) -> tuple[int, int]:
        row = self.sql("select (select coalesce(max(load_id), 0) from telemetry_raw.load_events), "
                       "(select coalesce(max(load_id), 0) from telemetry_raw.usage_rows), "
                       "(select coalesce(max(event_number), 0) from telemetry_raw.load_events)")[0]
        return max(row[0], row[1]) + 1, row[2] + 1

    def land(self, header: Header, plan: ReadPlan) -> LoadResult:
        """The planned records into telemetry_raw.usage_rows, then the load's 'loaded' event."""
        load_id, event_number = self._next_ids()
        source = str(header.path.resolve())
        started_at = datetime.now(UTC)
        first_record, line_offset = plan.position.records, plan.position.lines
        landing = self.folder / "landing" / f"load-{load_id}.csv"
        landing.parent.mkdir(parents=True, exist_ok=True)
        positions = [CSV_COLUMNS.index(c) if c in header.loaded_columns else None for c in CSV_COLUMNS]
        plan.position.unfinished = 0
        handle, _ = open_regular(plan.path)
        loaded_at = started_at.isoformat()
        fingerprint = fingerprint_from_start(plan)
        with handle, open(landing, "w", encoding="utf-8", newline="") as out:
            stream = HashingReader(handle, plan.start, plan.end, fingerprint.digest if fingerprint else None)
            for record in iter_records(stream, header, plan.position):
                values = [record.values[p] if p is not None else None for p in positions]
                out.write(",".join([str(load_id), str(record.record_number), str(record.line_number), loaded_at,
                                    *map(_quoted, values), _quoted(record.parse_error)]) + "\n")
        clean_end = finish_read(plan, stream, fingerprint, plan.position.unfinished == 0)
        rows_read = plan.position.records - first_record
        frame = (self.spark.read.schema(_landing_schema()).option("multiLine", True).option("escape", '"')
                 .option("nullValue", _NULL).option("mode", "FAILFAST").csv(str(landing)))
        frame.write.insertInto("telemetry_raw.usage_rows")
        save_checkpoint(self, plan, plan.position, clean_end)
        checkpoint = json.dumps(dict(zip(CHECKPOINT_COLUMNS, self._saved.pop(source), strict=True)))
        self._append_event(event_number, {
            "load_id": load_id, "source_file": source, "sha256": stream.sha256.hexdigest(),
            "bytes": stream.bytes_read, "byte_offset": plan.start, "line_offset": line_offset,
            "rows_read": rows_read, "started_at": started_at, "status": LoadStatus.LOADED.value,
            "checkpoint": checkpoint,
        })
        landing.unlink()
        return LoadResult(source_file=source, load_id=load_id, read=plan.reason, rows_read=rows_read)

    def _append_event(self, event_number: int, values: dict[str, object]) -> None:
        row = tuple([event_number] + [values.get(name) for name, _ in _EVENT_COLUMNS[1:]])
        schema = ", ".join(f"{name} {kind}" for name, kind in _EVENT_COLUMNS)
        self.spark.createDataFrame([row], schema).write.insertInto("telemetry_raw.load_events")

    def loads_in_flight(self) -> list[LoadResult]:
        return [LoadResult(source_file=source, load_id=load_id, rows_read=rows_read)
                for load_id, source, rows_read in self.sql(
                    "select load_id, source_file, rows_read from telemetry_raw.load_audit "
                    f"where status in ('{LoadStatus.LOADED.value}', '{LoadStatus.MODELLED.value}') order by load_id")]

    def finish(self, loads: list[LoadResult], cutoff: datetime | None) -> None:
        """What became of each load's rows (as loader.outcomes counts them), then its 'done' event."""
        if not loads:
            return
        ids = ", ".join(str(load.load_id) for load in loads)
        cutoff_sql = f"cast('{cutoff.isoformat()}' as timestamp)" if cutoff else "timestamp'0001-01-01 00:00:00'"
        measured = {row[0]: row[1:] for row in self.sql(f"""
            with typed as (
                select load_id, count(*) as typed,
                    count(*) filter (where rejection_reason is not null) as rejected,
                    count(*) filter (where rejection_reason is null and timestamp < {cutoff_sql}) as expired,
                    min(timestamp) filter (where rejection_reason is null) as oldest
                from telemetry.int_usage_rows_typed where load_id in ({ids}) group by load_id
            ),
            calls as (
                select load_id, count(*) as inserted from telemetry.llm_calls where load_id in ({ids})
                group by load_id
            )
            select t.load_id, t.typed, t.rejected, t.expired, t.oldest, coalesce(c.inserted, 0)
            from typed as t left join calls as c on c.load_id = t.load_id""")}
        conflicts = {row[0]: (row[1], sorted(row[2])[:5]) for row in self.sql(
            f"select load_id, count(*), collect_list(line_number) from telemetry.call_conflicts "
            f"where load_id in ({ids}) group by load_id")}
        rejects: dict[int, list[RejectReason]] = {}
        for load_id, reason, count, lines in self.sql(f"""
                select load_id, rejection_reason, count(*), slice(array_sort(collect_list(line_number)), 1, 5)
                from telemetry.int_usage_rows_typed
                where load_id in ({ids}) and rejection_reason is not null
                group by load_id, rejection_reason order by load_id, count(*) desc, rejection_reason"""):
            rejects.setdefault(load_id, []).append(RejectReason(reason, count, list(lines)))
        stored = {row[0]: row[1:] for row in self.sql(
            f"select load_id, source_file, sha256, bytes, byte_offset, line_offset, started_at, checkpoint "
            f"from telemetry_raw.load_events where load_id in ({ids}) and status = '{LoadStatus.LOADED.value}'")}
        _, event_number = self._next_ids()
        for load in loads:
            typed, rejected, expired, oldest, inserted = measured.get(load.load_id, (0, 0, 0, None, 0))
            if typed != load.rows_read:
                raise AccountingError(f"load {load.load_id}: {load.rows_read} rows read but {typed} typed; "
                                      "please report this")
            load.rejected, load.expired, load.inserted = rejected, expired, inserted
            load.duplicates = load.rows_read - inserted - rejected - expired
            load.conflicts, load.conflict_lines = conflicts.get(load.load_id, (0, []))
            load.rejects = rejects.get(load.load_id, [])
            source, sha256, size, offset, lines, started_at, checkpoint = stored[load.load_id]
            self._append_event(event_number, {
                "load_id": load.load_id, "source_file": source, "sha256": sha256, "bytes": size,
                "byte_offset": offset, "line_offset": lines, "rows_read": load.rows_read, "oldest_call": oldest,
                "inserted": inserted, "duplicates": load.duplicates, "rejected": rejected, "expired": expired,
                "conflicts": load.conflicts, "started_at": started_at, "finished_at": datetime.now(UTC),
                "status": LoadStatus.DONE.value, "checkpoint": checkpoint,
            })
            event_number += 1

    def release_landed_rows(self) -> None:
        """Empty the landing and typed rows once no load is in flight (what they became is kept elsewhere)."""
        if self.loads_in_flight():
            return
        self.sql("truncate table telemetry_raw.usage_rows")
        if self.sql("show tables in telemetry like 'int_usage_rows_typed'"):
            self.sql("truncate table telemetry.int_usage_rows_typed")


#: How NULL is written in a landing file: a NUL character, which no value holds (the scanner rejects NUL bytes),
#: so that Spark's reader tells NULL from '' (it reads an empty field, quoted or not, as its nullValue).
_NULL = "\x00"


def _quoted(value: str | None) -> str:
    """A CSV field for Spark's reader: NULL as _NULL, any text quoted."""
    return _NULL if value is None else '"' + value.replace('"', '""') + '"'


def _landing_schema() -> str:
    text = ", ".join(f"`{c}` string" for c in _TEXT_COLUMNS)
    return f"load_id bigint, record_number bigint, line_number bigint, loaded_at timestamp, {text}"
