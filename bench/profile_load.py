"""Profile a full load and a small append, as medians of a few repetitions, on the embedded server or another one.

    python -m bench.profile_load BIG.csv APPEND.csv [--reps 3] [--pgdata DIR | --url URL] [--verbose]

Each repetition creates a fresh database (always named ``profile``, so dbt's per-database target folder and parse
cache are shared; an untimed warm-up load of the append file runs first), runs ``telemetry ingest csv BIG -q
--json``, then the append file, and reports wall-clock seconds, the WAL written (LSN difference), the pg_wal
folder's size and the database's size. ``--verbose`` prints one more full load and append with the progress
lines (one per dbt node) timed as they arrive.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DATABASE = "profile"


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def _admin(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(_with_dbname(url, "postgres"), autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def _fresh_database(url: str) -> None:
    with psycopg.connect(_with_dbname(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))


def _ingest(url: str, path: Path, *, verbose: bool = False) -> float:
    env = {**os.environ, "TELEMETRY_DATABASE_URL": _with_dbname(url, DATABASE)}
    args = [sys.executable, "-m", "loader.cli", "ingest", "csv", str(path), "--json"]
    started = time.monotonic()
    if not verbose:
        done = subprocess.run([*args, "-q"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"ingest failed ({done.returncode}): {done.stderr[-3000:]}")
        return time.monotonic() - started
    with subprocess.Popen(args, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as proc:
        for line in proc.stderr:
            print(f"  {time.monotonic() - started:7.2f}  {line.rstrip()}")
    print(f"  {time.monotonic() - started:7.2f}  (exit {proc.returncode})")
    return time.monotonic() - started


def _lsn(url: str) -> int:
    return int(_admin(url, "select pg_current_wal_insert_lsn() - '0/0'::pg_lsn")[0][0])


def _wal_folder(url: str) -> int:
    return int(_admin(url, "select coalesce(sum(size), 0) from pg_ls_waldir()")[0][0])


def _database_size(url: str) -> int:
    return int(_admin(url, f"select pg_database_size('{DATABASE}')")[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("big", type=Path)
    parser.add_argument("append", type=Path)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pgdata", type=Path, help="the embedded server's data folder (started if needed)")
    parser.add_argument("--url", help="another server (any database on it; 'profile' is created there)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.url:
        url = args.url
    else:
        from loader.embedded import embedded_url

        url = embedded_url(args.pgdata or Path(".telemetry/pgdata"))
    settings = _admin(url, "select name, setting from pg_settings where name in ('wal_level', 'synchronous_commit', "
                      "'max_wal_size', 'min_wal_size', 'wal_compression', 'max_wal_senders', 'checkpoint_timeout')")
    print("server:", ", ".join(f"{n}={s}" for n, s in settings))
    _fresh_database(url)
    _ingest(url, args.append)  # warm-up: dbt's first full parse
    full, append, wal, peak_dir, size = [], [], [], [], []
    for rep in range(args.reps):
        _fresh_database(url)
        _admin(url, "checkpoint")
        before = _lsn(url)
        full.append(_ingest(url, args.big))
        wal.append(_lsn(url) - before)
        peak_dir.append(_wal_folder(url))
        size.append(_database_size(url))
        _admin(url, "checkpoint")
        append.append(_ingest(url, args.append))
        print(f"rep {rep + 1}: full {full[-1]:.2f} s, append {append[-1]:.2f} s, WAL written {wal[-1] / 2**20:.0f} MB, "
              f"pg_wal after {peak_dir[-1] / 2**20:.0f} MB, database {size[-1] / 2**20:.0f} MB", flush=True)
    mb = 2**20
    if full:
        print(f"median: full {statistics.median(full):.2f} s, append {statistics.median(append):.2f} s, "
              f"WAL written {statistics.median(wal) / mb:.0f} MB, pg_wal {statistics.median(peak_dir) / mb:.0f} MB, "
                  f"database {statistics.median(size) / mb:.0f} MB (CSV {args.big.stat().st_size / mb:.0f} MB)")
    if args.verbose:
        _fresh_database(url)
        print("full load, progress:")
        _ingest(url, args.big, verbose=True)
        with psycopg.connect(_with_dbname(url, DATABASE)) as conn:
            for name, total in conn.execute(
                    "select c.oid::regclass::text, pg_total_relation_size(c.oid) from pg_class c "
                    "join pg_namespace n on n.oid = c.relnamespace where n.nspname like 'telemetry%' "
                    "and c.relkind in ('r', 'm') order by 2 desc limit 8"):
                print(f"    {name}: {total / mb:.1f} MB")
        print("append, progress:")
        _ingest(url, args.append, verbose=True)


if __name__ == "__main__":
    main()
