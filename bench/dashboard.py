"""How fast the dashboard answers: server time per page and the time from start to the first page.

    python -m bench.dashboard [--rows 200000] [--rounds 5] [--calls-per-session 40]

generates ``--rows`` calls with bench.generate, plus a session_id column (sessions of ``--calls-per-session``
consecutive calls, as an agent's session writes them; 0 = no session_id column, the canonical header, so no
sessions), loads them with ``telemetry ingest csv`` into an embedded
PostgreSQL of its own (in a temporary folder, TELEMETRY_RETENTION_MONTHS=0), then runs ``telemetry dashboard``
and times every page under a few filters over HTTP on 127.0.0.1. Prints one JSON object. Targets: p95 <= 100 ms
per page at 1,000,000 calls, start to first page <= 1 s. ``measure(url)`` does the timing alone, on any database
with data loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.generate import write as generate_csv

PAGES = ["/", "/models", "/phases", "/prompts", "/errors", "/sessions", "/calls"]


def _filters(until: str) -> list[dict[str, str]]:
    last = datetime.fromisoformat(until).date()
    return [
        {},
        {"model": "gpt-4o-mini"},
        {"phase": "3", "since": (last - timedelta(days=29)).isoformat()},
        {"prompt_name": "plan", "phase": "2"},
        {"since": (last - timedelta(days=6)).isoformat(), "until": last.isoformat()},
    ]


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env["TELEMETRY_DATABASE_URL"] = url
    return env


def _get(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, body


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(database_url: str, *, rounds: int = 5) -> dict:
    """Start `telemetry dashboard` on the database, time the first page, then every page and filter."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "loader.cli", "dashboard", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(database_url))
    try:
        line = process.stdout.readline().strip()
        if not line.startswith("dashboard at "):
            raise RuntimeError(f"the dashboard did not start: {line} {process.stderr.read()}")
        base = line.split(" at ", 1)[1].rstrip("/")
        _, body = _get(base + "/?format=json")
        start_to_first_page = time.perf_counter() - started
        overview = json.loads(body)
        timings: dict[str, list[float]] = {}
        for path in PAGES:
            for params in _filters(overview["period"]["until"]):
                url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
                _get(url)  # warm: the first request of a page compiles its template
                timings[url[len(base):]] = [_get(url)[0] for _ in range(rounds)]
        everything = [t for values in timings.values() for t in values]
        per_page = {key: round(statistics.median(values), 1) for key, values in timings.items()}
        return {
            "calls": overview["totals"]["calls"] if overview["totals"] else 0,
            "start_to_first_page_s": round(start_to_first_page, 3),
            "requests": len(everything),
            "median_ms": round(statistics.median(everything), 1),
            "p95_ms": round(_percentile(everything, 0.95), 1),
            "max_ms": round(max(everything), 1),
            "slowest_pages_median_ms": dict(sorted(per_page.items(), key=lambda kv: -kv[1])[:5]),
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def _telemetry(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "loader.cli", *args], capture_output=True, text=True, env=env,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"telemetry {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def _mart_seconds(database_url: str) -> dict[str, float]:
    """Build time of the dashboard's own marts in the last dbt run (dbt's run_results.json)."""
    from loader import dbt

    results = json.loads((Path(dbt.target_path(database_url)) / "run_results.json").read_text())
    ours = ("cost_by_session", "daily_usage", "daily_usage_rollups", "failed_calls", "loads")
    return {r["unique_id"].rsplit(".", 1)[1]: round(r["execution_time"], 2) for r in results["results"]
            if r["unique_id"].rsplit(".", 1)[1] in ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="calls to generate (default 200,000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed requests per page and filter (default 5)")
    parser.add_argument("--calls-per-session", type=int, default=40,
                        help="consecutive calls per session_id (default 40; 0 = no session_id column)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as folder:
        work = Path(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
        env.update(TELEMETRY_PGDATA=str(work / "pgdata"), TELEMETRY_RETENTION_MONTHS="0")
        end = datetime.now(UTC).date() - timedelta(days=1)
        path = generate_csv(work / "usage.csv", args.rows, seed=1, end=end, calls_per_session=args.calls_per_session)
        try:
            started = time.perf_counter()
            _telemetry("ingest", "csv", str(path), "-q", env=env)
            ingest_seconds = time.perf_counter() - started
            url = _telemetry("db", "url", "--show-password", env=env).strip()
            marts_full = _mart_seconds(url)
            appended = generate_csv(work / "more.csv", max(args.rows // 100, 1), seed=2, end=end, days=30,
                                    calls_per_session=args.calls_per_session)
            _telemetry("ingest", "csv", str(appended), "-q", env=env)
            marts_append = _mart_seconds(url)
            # Steady state: autovacuum analyzes fresh tables within a minute of a load; do it now.
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("analyze")
            load_before = os.getloadavg()[0]
            result = measure(url, rounds=args.rounds)
            result["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
        finally:
            if (work / "pgdata" / "postmaster.pid").exists():
                _telemetry("db", "stop", env=env)
    result.update(rows_generated=args.rows, calls_per_session=args.calls_per_session,
                  ingest_seconds=round(ingest_seconds, 1),
                  dashboard_marts_build_seconds={"full_load": marts_full, "append_1_percent": marts_append},
                  cores=os.cpu_count(),
                  targets={"p95_ms": 100, "start_to_first_page_s": 1.0})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
