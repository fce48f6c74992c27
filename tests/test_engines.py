"""TELEMETRY_ENGINE=spark builds what PostgreSQL builds: the same CSV through both engines gives the same
llm_calls and the same marts, row by row (costs to 1e-9); a re-run adds nothing and an append adds exactly its
rows on both; a bad file is refused the same way, before anything is written.

Spark runs on a real standalone cluster (a master and two workers, `scripts/spark.py up`, or the cluster
TELEMETRY_SPARK_MASTER names). Without Java or pyspark these tests skip on a developer's machine; in CI
(CI=true) they fail. One warehouse (and one Spark session) serves the module, so its tests run in order on one
worker (the xdist group).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from helpers import CANONICAL_HEADER, PROJECT_DIR, Telemetry

from loader.config import Settings
from loader.errors import TelemetryError

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

#: Relations compared, with the columns that differ by nature (when each engine loaded them).
COMPARED = {
    "llm_calls": {"loaded_at"},
    "rejected_rows": {"loaded_at"},
    "call_conflicts": {"loaded_at"},
    "daily_usage": set(),
    "daily_usage_rollups": set(),
    "cost_by_session": set(),
    "failed_calls": set(),
    "error_summary": set(),
    "cost_by_phase": set(),
    "cost_by_prompt_name": set(),
    "daily_cost_trend": set(),
    "success_rate_by_phase": set(),
    "tokens_by_model": set(),
    "loads": {"started_at", "finished_at"},
}

HEADER = CANONICAL_HEADER + ",session_id,error_message,cost_usd,cache_read_tokens,cache_write_tokens"
FIRST_ROWS = [
    # timestamp, model, prompt_tokens, completion_tokens, task_success, task_type, duration_ms, notes, session_id,
    # error_message, cost_usd, cache_read_tokens, cache_write_tokens
    "2026-11-02T09:00:00Z,claude-sonnet-4-5-20250929,1200,300,true,plan,900,Phase 2 planning,s1,,,100,20",
    "2026-11-02T09:05:00.123456Z,claude-sonnet-4-5-20250929,800,120,false,implement,1500,phase 2.1: build,s1,"
    "Timeout after 120s (req 8f3a9b2c11),,,",
    "2026-11-02 10:00:00,gpt-4o,500,50,yes,review,300,\"a note, with \"\"quotes\"\"\",s2,,0.0150,,",
    "2026-11-03T23:59:59+05:30,openai/gpt-4.1,10,5,0,implement,20,phase #3 fix,s2,rate limited 429,,,",
    "2026-11-03T08:00:00Z,some-unpriced-model,40,4,true,,,,,,,,",
    "2026-11-04T12:00:00Z,claude-opus-4-1-20250805,2000,800,true,plan,4000,\"line one\nline two\",s3,,,,",
    "2026-11-04T12:00:00Z,claude-opus-4-1-20250805,2000,800,true,plan,4000,\"line one\nline two\",s3,,,,",
    "not a time,gpt-4o,1,1,true,plan,1,,s4,,,,",
    "2026-11-05T10:00:00Z,,1,1,true,plan,1,,s4,,,,",
    "2026-11-05T10:00:00Z,gpt-4o,-5,1,true,plan,1,,s4,,,,",
    "2026-11-05T10:00:00Z,gpt-4o,5,1,maybe,plan,1,,s4,,,,",
    "2025-01-01T10:00:00Z,gpt-4o,5,1,true,plan,1,,s4,,,,",
    "1762300800,gpt-4o-mini,7,3,no,review,12,Timeout after 30s (req 91bc0000ffff),s5,,,,",
]
APPENDED_ROWS = [
    "2026-11-06T09:00:00Z,claude-sonnet-4-5-20250929,100,10,true,plan,50,phase 4,s6,,,,",
    # the stored call of s1 at 09:00 with other values: a conflict
    "2026-11-02T09:00:00Z,claude-sonnet-4-5-20250929,9999,300,true,plan,900,Phase 2 planning,s1,,,100,20",
    "2026-11-06T09:30:00Z,gpt-4o,100,10,true,plan,50,,s6,,1e-05,,",
]


def _have_spark() -> str | None:
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "Java is not installed (apt-get install -y openjdk-17-jre-headless)"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pnpm install)"
    return None


@pytest.fixture(scope="module")
def spark_master() -> str:
    missing = _have_spark()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Spark engine tests cannot run: {missing}; CI must provide it (see .ci/run)")
        pytest.skip(missing)
    if os.environ.get("TELEMETRY_SPARK_MASTER"):
        yield os.environ["TELEMETRY_SPARK_MASTER"]
        return
    script = [sys.executable, str(PROJECT_DIR / "scripts" / "spark.py")]
    was_up = subprocess.run([*script, "status"], capture_output=True).returncode == 0
    up = subprocess.run([*script, "up"], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr or up.stdout
    yield "spark://127.0.0.1:7077"
    if not was_up:
        subprocess.run([*script, "down"], capture_output=True)


@pytest.fixture(scope="module")
def spark_settings(spark_master: str, tmp_path_factory) -> Settings:
    folder = tmp_path_factory.mktemp("spark")
    return Settings.from_env({"TELEMETRY_ENGINE": "spark", "TELEMETRY_SPARK_MASTER": spark_master,
                              "TELEMETRY_SPARK_WAREHOUSE": str(folder / "warehouse")}, cwd=folder)


@pytest.fixture(scope="module")
def spark(spark_settings: Settings):
    from loader.spark_session import start_session

    return start_session(spark_settings)


@pytest.fixture(scope="module")
def usage_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "usage.csv"
    path.write_text(HEADER + "\n" + "\n".join(FIRST_ROWS) + "\n")
    return path


def _ingest_spark(settings: Settings, path: Path):
    from loader.spark_ingest import ingest_csv_spark

    return ingest_csv_spark(path, settings)


def _normalised(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normalised(v) for v in value)
    return value


def _utc(value):
    """Both engines' instants as naive UTC (Spark's session time zone is UTC; psycopg gives aware datetimes)."""
    from datetime import UTC

    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _rows_pg(telemetry: Telemetry, relation: str, ignore: set[str]) -> tuple[list[str], list[tuple]]:
    with psycopg.connect(telemetry.url) as conn:
        cursor = conn.execute(f"select * from telemetry.{relation}")
        columns = [c.name for c in cursor.description]
        rows = cursor.fetchall()
    keep = [i for i, c in enumerate(columns) if c not in ignore]
    return [columns[i] for i in keep], [tuple(_utc(_normalised(row[i])) for i in keep) for row in rows]


def _rows_spark(spark, relation: str, ignore: set[str]) -> tuple[list[str], list[tuple]]:
    frame = spark.sql(f"select * from telemetry.{relation}")
    columns = [c for c in frame.columns if c not in ignore]
    return columns, [tuple(_normalised(row[c]) for c in columns) for row in frame.collect()]


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-9
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _sort_key(row: tuple) -> str:
    return json.dumps([round(v, 6) if isinstance(v, float) else v for v in row], default=str)


def assert_engines_agree(telemetry: Telemetry, spark) -> None:
    for relation, ignore in COMPARED.items():
        pg_columns, pg_rows = _rows_pg(telemetry, relation, ignore)
        spark_columns, spark_rows = _rows_spark(spark, relation, ignore)
        assert spark_columns == pg_columns, relation
        assert len(spark_rows) == len(pg_rows), f"{relation}: {len(spark_rows)} rows on Spark, {len(pg_rows)} on PG"
        for pg_row, spark_row in zip(sorted(pg_rows, key=_sort_key), sorted(spark_rows, key=_sort_key), strict=True):
            differing = [c for c, a, b in zip(pg_columns, pg_row, spark_row, strict=True) if not _same(a, b)]
            assert not differing, f"{relation}: {differing} differ: PostgreSQL {pg_row} / Spark {spark_row}"


def _counts(summary) -> dict[str, int]:
    return {k: summary.total(k) for k in ("rows_read", "inserted", "duplicates", "conflicts", "rejected", "expired")}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory, request) -> Telemetry:
    url = request.getfixturevalue("module_database_url")
    return Telemetry(url=url, tmp_path=tmp_path_factory.mktemp("pg"), retention_months=6)


def test_a_file_loads_to_the_same_calls_and_marts_on_both_engines(postgres, spark_settings, spark, usage_csv):
    on_postgres = postgres.ingest(usage_csv)
    on_spark = _ingest_spark(spark_settings, usage_csv)
    assert _counts(on_spark) == _counts(on_postgres)
    assert [(r.reason, r.count, r.first_lines) for r in on_spark.loads[0].rejects] == \
        [(r.reason, r.count, r.first_lines) for r in on_postgres.loads[0].rejects]
    assert on_spark.total("rejected") == 4 and on_spark.total("expired") == 2 and on_spark.total("duplicates") == 1
    assert_engines_agree(postgres, spark)


def test_a_rerun_adds_nothing_on_spark(postgres, spark_settings, spark, usage_csv):
    before = spark.sql("select count(*) from telemetry.llm_calls").collect()[0][0]
    summary = _ingest_spark(spark_settings, usage_csv)
    assert summary.loads[0].read == "unchanged" and summary.total("rows_read") == 0
    assert spark.sql("select count(*) from telemetry.llm_calls").collect()[0][0] == before
    assert_engines_agree(postgres, spark)


def test_an_append_adds_exactly_its_rows_on_both_engines(postgres, spark_settings, spark, usage_csv):
    with usage_csv.open("a") as out:
        out.write("\n".join(APPENDED_ROWS) + "\n")
    on_postgres = postgres.ingest(usage_csv)
    on_spark = _ingest_spark(spark_settings, usage_csv)
    assert on_spark.loads[0].read == "grown"
    assert _counts(on_spark) == _counts(on_postgres) == {
        "rows_read": 3, "inserted": 2, "duplicates": 1, "conflicts": 1, "rejected": 0, "expired": 0}
    assert on_spark.loads[0].conflict_lines == on_postgres.loads[0].conflict_lines
    assert_engines_agree(postgres, spark)
    # the landing and typed rows are released once the loads are done, as on PostgreSQL
    assert spark.sql("select count(*) from telemetry_raw.usage_rows").collect()[0][0] == 0


def test_stats_json_gives_the_same_totals_on_both_engines(postgres, spark_settings, spark):
    from loader.spark_stats import collect_stats_spark
    from loader.stats import collect_stats

    with psycopg.connect(postgres.url) as conn:
        expected = collect_stats(conn)
    got = collect_stats_spark(spark)
    assert set(got) == set(expected)
    for key in ("calls", "input_tokens", "output_tokens", "total_tokens", "unpriced_calls", "successes",
                "failures"):
        assert got["totals"][key] == expected["totals"][key], key
    assert abs(got["totals"]["estimated_cost_usd"] - float(expected["totals"]["estimated_cost_usd"])) < 1e-9
    assert [r["model"] for r in got["by_model"]] == [r["model"] for r in expected["by_model"]]
    assert [(r["call_date"], r["calls"]) for r in got["daily_trend"]] == \
        [(r["call_date"], r["calls"]) for r in expected["daily_trend"]]
    assert [(r["error_pattern"], r["failures"]) for r in got["top_errors"]] == \
        [(r["error_pattern"], r["failures"]) for r in expected["top_errors"]]


def test_a_bad_file_is_refused_the_same_way_before_spark_starts(postgres, spark_settings, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,what\n2026-01-01,x\n")
    with pytest.raises(TelemetryError) as on_postgres:
        postgres.ingest(bad)
    with pytest.raises(TelemetryError) as on_spark:
        _ingest_spark(spark_settings, bad)
    assert on_spark.value.message == on_postgres.value.message


def test_unsupported_commands_say_so_in_one_line(tmp_path):
    env = {**os.environ, "TELEMETRY_ENGINE": "spark", "TELEMETRY_SPARK_WAREHOUSE": str(tmp_path / "w")}
    for command in (["prune"], ["prices", "reprice"], ["ingest", "csv", "--dry-run", str(tmp_path / "x.csv")]):
        done = subprocess.run([sys.executable, "-m", "loader.cli", *command], env=env, capture_output=True,
                              text=True, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "TELEMETRY_ENGINE=spark" in done.stderr, done.stderr


def test_engine_setting_is_checked():
    with pytest.raises(TelemetryError, match="TELEMETRY_ENGINE='oracle' is not an engine"):
        Settings.from_env({"TELEMETRY_ENGINE": "oracle"})
    assert Settings.from_env({}).engine == "postgres"
