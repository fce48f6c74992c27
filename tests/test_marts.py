"""The marts, the query API and `telemetry stats`, checked against brute-force computations."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from helpers import PROJECT_DIR
from reference import csv_calls, error_pattern, totals

from bench.generate import write as generate_csv
from loader import queries

MART_NAMES = ["tokens_by_model", "cost_by_phase", "cost_by_prompt_name", "success_rate_by_phase",
              "daily_cost_trend", "error_summary"]


@pytest.fixture
def loaded(telemetry):
    """400 generated calls over 20 days, loaded; returns the telemetry fixture and the CSV path."""
    path = generate_csv(telemetry.tmp_path / "generated.csv", 400, seed=3, end=date(2026, 11, 20), days=20)
    telemetry.ingest(path)
    return telemetry, path


def all_calls(telemetry) -> list[dict]:
    with psycopg.connect(telemetry.url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("select * from telemetry.llm_calls").fetchall()


def day(call) -> date:
    return call["timestamp"].astimezone(UTC).date()


def aggregate(calls, key) -> dict:
    out: dict = defaultdict(lambda: {"calls": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                                     "estimated_cost_usd": Decimal(0), "unpriced_calls": 0, "successes": 0,
                                     "failures": 0})
    for c in calls:
        entry = out[key(c)]
        entry["calls"] += 1
        entry["input_tokens"] += c["input_tokens"] or 0
        entry["output_tokens"] += c["output_tokens"] or 0
        entry["total_tokens"] += c["total_tokens"]
        entry["estimated_cost_usd"] += c["estimated_cost_usd"] or 0
        entry["unpriced_calls"] += c["estimated_cost_usd"] is None
        entry["successes"] += c["success"] is True
        entry["failures"] += c["success"] is False
    for entry in out.values():  # the cost of calls that are all unpriced is unknown, not 0
        if entry["unpriced_calls"] == entry["calls"]:
            entry["estimated_cost_usd"] = None
    return dict(out)


def pick(row: dict, names) -> dict:
    return {n: row[n] for n in names}


MEASURES = ["calls", "input_tokens", "output_tokens", "total_tokens", "estimated_cost_usd", "unpriced_calls"]


def test_tokens_by_model_matches_brute_force(loaded):
    telemetry, _ = loaded
    since, until = date(2026, 11, 5), date(2026, 11, 12)
    conn = psycopg.connect(telemetry.url)
    got = {(r["call_date"], r["model"]): pick(r, MEASURES) for r in queries.tokens_by_model(since, until, conn=conn)}
    expected = {k: pick(v, MEASURES) for k, v in aggregate(all_calls(telemetry), lambda c: (day(c), c["model"])).items()
                if since <= k[0] <= until}
    assert got == expected and len(got) > 20


def test_cost_by_phase_matches_brute_force(loaded):
    telemetry, _ = loaded
    conn = psycopg.connect(telemetry.url)
    calls = all_calls(telemetry)
    for phase in ("3", "(none)"):
        got = {(r["call_date"], r["model"]): pick(r, MEASURES + ["successes", "failures"])
               for r in queries.cost_by_phase(phase, conn=conn)}
        expected = {k[1:]: pick(v, MEASURES + ["successes", "failures"]) for k, v in aggregate(
            calls, lambda c: (c["phase"] or "(none)", day(c), c["model"])).items() if k[0] == phase}
        assert got == expected and got


def test_cost_by_prompt_name_matches_brute_force(loaded):
    telemetry, _ = loaded
    conn = psycopg.connect(telemetry.url)
    calls = all_calls(telemetry)
    for prompt in ("plan", "(none)"):
        got = {(r["call_date"], r["model"]): pick(r, MEASURES) for r in queries.cost_by_prompt_name(prompt, conn=conn)}
        expected = {k[1:]: pick(v, MEASURES) for k, v in aggregate(
            calls, lambda c: (c["prompt_name"], day(c), c["model"])).items() if k[0] == prompt}
        assert got == expected and got


def test_success_rate_by_phase_matches_brute_force(loaded):
    telemetry, _ = loaded
    conn = psycopg.connect(telemetry.url)
    got = {r["call_date"]: r for r in queries.success_rate_by_phase("2", conn=conn)}
    expected = {k[1]: v for k, v in aggregate(all_calls(telemetry), lambda c: (c["phase"] or "(none)", day(c))).items()
                if k[0] == "2"}
    assert got.keys() == expected.keys() and got
    for d, e in expected.items():
        g = got[d]
        assert (g["calls"], g["successes"], g["failures"]) == (e["calls"], e["successes"], e["failures"])
        if e["successes"] + e["failures"]:
            assert abs(g["success_rate"] - Decimal(e["successes"]) / (e["successes"] + e["failures"])) < 1e-6
        if e["successes"] and e["estimated_cost_usd"] is None:
            assert g["cost_per_successful_call_usd"] is None
        elif e["successes"]:
            assert abs(g["cost_per_successful_call_usd"] - e["estimated_cost_usd"] / e["successes"]) < 1e-9


def test_daily_cost_trend_matches_brute_force(loaded):
    telemetry, _ = loaded
    conn = psycopg.connect(telemetry.url)
    calls = all_calls(telemetry)
    daily = aggregate(calls, day)
    first, last = min(daily), max(daily)
    full = queries.daily_cost_trend(conn=conn)
    assert [r["call_date"] for r in full] == [first + timedelta(days=i) for i in range((last - first).days + 1)]
    running, priced_so_far = Decimal(0), False
    window: list[tuple[Decimal | None, int]] = []  # (cost, calls) of the last 7 days
    for r in full:
        cost = daily.get(r["call_date"], {}).get("estimated_cost_usd", Decimal(0))  # None: all unpriced
        running += cost or 0
        priced_so_far |= cost is not None and r["calls"] > 0
        window = (window + [(cost, r["calls"])])[-7:]
        known = [c for c, _ in window if c is not None]
        assert r["calls"] == daily.get(r["call_date"], {}).get("calls", 0)
        assert r["estimated_cost_usd"] == cost
        assert r["cumulative_cost_usd"] == (running if priced_so_far else None)
        # Unknown when the window has calls and none of them is priced; else the mean of its known days.
        if any(n for _, n in window) and all(c is None for c, n in window if n):
            assert r["cost_7d_moving_avg_usd"] is None
        else:
            assert abs(r["cost_7d_moving_avg_usd"] - sum(known) / len(known)) < Decimal("0.000001")
    last7 = queries.daily_cost_trend(7, conn=conn)
    assert [r["call_date"] for r in last7] == [r["call_date"] for r in full[-7:]]


def test_error_summary_matches_brute_force(loaded):
    telemetry, _ = loaded
    conn = psycopg.connect(telemetry.url)
    since = date(2026, 11, 10)
    failures = [c for c in all_calls(telemetry) if c["success"] is False and day(c) >= since]
    expected: dict = defaultdict(list)
    for c in failures:
        expected[(error_pattern(c["error_message"]), c["model"], day(c))].append(c["timestamp"])
    got = queries.error_summary(since, conn=conn)
    assert {(r["error_pattern"], r["model"], r["call_date"]): (r["failures"], r["first_seen"], r["last_seen"])
            for r in got} == {k: (len(v), min(v), max(v)) for k, v in expected.items()}
    assert [r["failures"] for r in got] == sorted((r["failures"] for r in got), reverse=True)


def _check_stats_against_csv(stats: dict, path) -> None:
    expected = totals(csv_calls(path))
    t = stats["totals"]
    assert (t["calls"], t["input_tokens"], t["output_tokens"]) == (
        expected["calls"], expected["input_tokens"], expected["output_tokens"])
    assert abs(Decimal(str(t["success_rate"])) - expected["success_rate"]) < Decimal("0.0001")
    by_model = {m["model"]: m for m in stats["by_model"]}
    assert by_model.keys() == expected["by_model"].keys()
    for model, e in expected["by_model"].items():
        assert by_model[model]["calls"] == e["calls"]
        assert by_model[model]["unpriced_calls"] == e["unpriced"]
        if e["unpriced"] == e["calls"]:
            assert by_model[model]["estimated_cost_usd"] is None, model
        else:
            assert abs(Decimal(str(by_model[model]["estimated_cost_usd"])) - e["cost"]) < Decimal("0.000001")
    unpriced = {u["model"] for u in stats["unpriced_models"]}
    assert unpriced == {m for m, e in expected["by_model"].items() if e["unpriced"]}


def test_stats_json_agrees_with_the_csv_on_generated_data(loaded):
    telemetry, path = loaded
    result = telemetry.cli("stats", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    _check_stats_against_csv(stats, path)
    assert stats["unpriced_models"][0]["model"] == "acme-internal-llm-v2"


def test_stats_json_agrees_with_the_csv_on_the_bundled_example(telemetry):
    path = PROJECT_DIR / "examples" / "usage.csv"
    telemetry.ingest(path)
    result = telemetry.cli("stats", "--json")
    _check_stats_against_csv(json.loads(result.stdout), path)


def test_stats_filters_narrow_every_section(loaded):
    telemetry, _ = loaded
    stats = json.loads(telemetry.cli("stats", "--json", "--model", "gpt-4o-mini", "--since", "2026-11-15").stdout)
    calls = [c for c in all_calls(telemetry) if c["model"] == "gpt-4o-mini" and day(c) >= date(2026, 11, 15)]
    assert stats["totals"]["calls"] == len(calls) > 0
    assert [m["model"] for m in stats["by_model"]] == ["gpt-4o-mini"]
    assert sum(p["calls"] for p in stats["by_phase"]) == len(calls)
    phase = json.loads(telemetry.cli("stats", "--json", "--phase", "(none)").stdout)
    assert phase["totals"]["calls"] == sum(1 for c in all_calls(telemetry) if c["phase"] is None)


def test_stats_report_reads_well_and_warns_about_unpriced_models(loaded):
    telemetry, _ = loaded
    out = telemetry.cli("stats").stdout
    for section in ("estimated cost", "by model", "by phase", "daily estimated cost", "top errors"):
        assert section in out
    assert "warning: no price for model 'acme-internal-llm-v2'" in out


def test_stats_on_an_empty_database_says_so(telemetry):
    result = telemetry.cli("stats")
    assert result.returncode == 0
    assert "no calls loaded yet" in result.stdout
    assert json.loads(telemetry.cli("stats", "--json").stdout)["totals"] is None


def test_marts_pass_their_schema_and_unit_tests(loaded):
    from loader import dbt

    telemetry, _ = loaded
    result = dbt.invoke(telemetry.url, ["test"])
    assert result.success
    tested = {r.node.name for r in result.result.results}
    unit_tested = {r.node.tested_node_unique_id.split(".")[-1] for r in result.result.results
                   if r.node.resource_type == "unit_test"}
    for mart in MART_NAMES:
        assert mart in unit_tested, f"{mart} has no dbt unit test"
        assert any(mart in name for name in tested if name not in unit_tested), f"{mart} has no schema test"


def test_dbt_docs_describe_every_mart_column(loaded):
    from loader import dbt

    telemetry, _ = loaded
    catalog = dbt.invoke(telemetry.url, ["docs", "generate"]).result
    manifest = json.loads((Path(dbt.target_path(telemetry.url)) / "manifest.json").read_text())
    manifest_nodes = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    for name in [*MART_NAMES, "llm_calls"]:
        node = manifest_nodes[name]
        assert node["description"], name
        table = next(t for t in catalog.nodes.values() if t.metadata.name == name)
        for column in table.columns:
            described = node["columns"].get(column, {}).get("description")
            assert described, f"{name}.{column} has no description"


def test_marts_stay_exact_when_later_loads_touch_the_same_days(loaded):
    """The daily grain is rebuilt only for the days a load touches: those days must come out whole."""
    telemetry, _ = loaded
    more = generate_csv(telemetry.tmp_path / "more.csv", 150, seed=4, end=date(2026, 11, 22), days=10)
    telemetry.ingest(more)
    conn = psycopg.connect(telemetry.url)
    got = {(r["call_date"], r["model"]): pick(r, MEASURES) for r in queries.tokens_by_model(conn=conn)}
    calls = all_calls(telemetry)
    expected = {k: pick(v, MEASURES) for k, v in aggregate(calls, lambda c: (day(c), c["model"])).items()}
    assert got == expected
    trend = queries.daily_cost_trend(conn=conn)
    assert sum(r["calls"] for r in trend) == telemetry.count("telemetry.llm_calls") == 550
