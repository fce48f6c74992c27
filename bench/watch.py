"""The watch mode's latency: how long after a call is appended to the CSV it is in llm_calls.

    python -m bench.watch --rows 100000 --rows 1000000 --appends 100     # pnpm bench:watch

On the loader's embedded server, in a database of its own: ``telemetry ingest csv --watch FILE`` runs over a file of
``--rows`` generated calls (loaded first, with the default retention: the calls are of the last 60 days), then
``--appends`` calls are appended one at a time, each once the previous one is visible; the time from the write
to the moment a query finds the call in llm_calls is the latency. Prints the median, the 90th percentile and the
slowest as JSON, once per --rows; also the time the watch took to load the first file (the catch-up run). The
results are saved in bench/results/watch.json and BENCHMARKS.md is rendered again with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from bench import report
from bench.generate import write as generate_csv
from bench.run import BIG_ROWS, DEFAULT_ROWS
from bench.server import BenchServer, dbt_targets, forget_dbt_targets

ROOT = Path(__file__).resolve().parents[1]


def _count(conn: psycopg.Connection) -> int:
    found = conn.execute("select to_regclass('telemetry.llm_calls') is not null").fetchone()[0]
    return conn.execute("select count(*) from telemetry.llm_calls").fetchone()[0] if found else 0


def _wait(conn: psycopg.Connection, watch: subprocess.Popen, expected: int, timeout: float) -> float:
    """Seconds until llm_calls holds ``expected`` calls (polled every millisecond)."""
    started = time.monotonic()
    while _count(conn) < expected:
        if watch.poll() is not None:
            raise SystemExit(f"the watch exited with {watch.returncode}; see its messages above")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"no call {expected} in llm_calls after {timeout:.0f} s")
        time.sleep(0.001)
    return time.monotonic() - started


def measure(server: BenchServer, work: Path, rows: int, appends: int) -> dict:
    path = work / "usage.csv"
    generate_csv(path, rows, seed=11, end=date.today(), days=60)
    with psycopg.connect(server.url, autocommit=True) as conn:
        before = _count(conn)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMETRY_", "PG"))}
        env["TELEMETRY_DATABASE_URL"] = server.url  # default retention (6 months)
        errors = (work / "watch.err").open("w+")
        watch = subprocess.Popen([str(ROOT / ".venv" / "bin" / "telemetry"), "ingest", "csv", "--watch", str(path),
                                  "-q", "--json"], env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        try:
            started = time.monotonic()
            while _count(conn) == before or conn.execute(
                    "select count(*) from telemetry_raw.load_audit where status <> 'done'").fetchone()[0]:
                time.sleep(0.05)
                if time.monotonic() - started > 3600:
                    raise SystemExit("the first load did not finish within an hour")
            catch_up = time.monotonic() - started
            expected = _count(conn)
            latencies = []
            moment = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
            with path.open("a") as writer:
                for i in range(appends):
                    stamp = (moment + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
                    writer.write(f"{stamp},gpt-4o,{1000 + i},100,true,execute,1200,Phase 9 watched append {i}\n")
                    writer.flush()
                    expected += 1
                    latencies.append(_wait(conn, watch, expected, 120))
        finally:
            watch.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            code = watch.wait(120)
            stop_seconds = time.monotonic() - stopped
            errors.seek(0)
            sys.stderr.write(errors.read()[-2000:])
    latencies.sort()
    return {"rows": rows, "appends": appends, "catch_up_seconds": round(catch_up, 2),
            "median_seconds": round(statistics.median(latencies), 3),
            "p90_seconds": round(latencies[int(len(latencies) * 0.9) - 1], 3),
            "max_seconds": round(latencies[-1], 3), "exit_code": code, "stop_seconds": round(stop_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append",
                        help="calls in the file before the appends (repeatable; default 100,000)")
    parser.add_argument("--appends", type=int, default=100, help="calls appended one at a time (default 100)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    runs = []
    targets = dbt_targets()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as folder:
        server = BenchServer(Path(folder) / "pgdata")
        server.start()
        try:
            for rows in args.rows or [100_000]:
                server.fresh_database()
                runs.append(measure(server, Path(folder), rows, args.appends))
                print(json.dumps(runs[-1]), flush=True)
        finally:
            server.stop()
            forget_dbt_targets(targets)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    command = shlex.join(["python", "-m", "bench.watch", *(argv if argv is not None else sys.argv[1:])])
    results = {"kind": "watch", "runs": runs, "command": f"`{command}`", "commit": commit,
               "written_at": datetime.now(UTC).isoformat()}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "watch.json").write_text(json.dumps(results, indent=1) + "\n")
    args.output.write_text(report.render(*report.saved(args.results_dir, DEFAULT_ROWS, BIG_ROWS), results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
