"""estimated_cost_usd: genai-prices' prices, matched the way genai-prices matches, never a silent $0."""

from __future__ import annotations

import csv
import filecmp
import json
from datetime import datetime
from decimal import Decimal

import pytest
from helpers import CORPUS, PROJECT_DIR
from price_probes import PRICE_PROBES
from reference import reference_cost

from loader.prices import write_seed


def test_committed_price_seed_is_what_the_pinned_package_generates(tmp_path):
    fresh = tmp_path / "model_prices.csv"
    rows = write_seed(fresh)
    assert rows > 1000
    assert filecmp.cmp(fresh, PROJECT_DIR / "seeds" / "model_prices.csv", shallow=False), (
        "seeds/model_prices.csv is stale: run `pnpm telemetry:prices:update` and commit it")


def test_sql_cost_equals_genai_prices_for_every_probe(telemetry):
    assert len(PRICE_PROBES) >= 20
    path = telemetry.tmp_path / "probes.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "model", "prompt_tokens", "completion_tokens", "notes"])
        for i, (model, ts, inp, out) in enumerate(PRICE_PROBES):
            writer.writerow([ts, model, inp, out, f"probe {i}"])
    summary = telemetry.ingest(path)
    assert summary.total("inserted") == len(PRICE_PROBES)
    got = dict(telemetry.query("select notes, estimated_cost_usd from telemetry.llm_calls"))
    priced = 0
    for i, (model, ts, inp, out) in enumerate(PRICE_PROBES):
        expected = reference_cost(model, datetime.fromisoformat(ts), inp, out)
        actual = got[f"probe {i}"]
        if expected is None:
            assert actual is None, f"{model} at {ts}: genai-prices has no price, SQL says {actual}"
        else:
            priced += 1
            assert actual is not None, f"{model} at {ts}: SQL found no price, genai-prices says {expected}"
            assert abs(actual - expected) <= 1e-9, f"{model} at {ts}: SQL {actual} != genai-prices {expected}"
    assert priced >= 20


def test_price_changes_apply_from_their_date(telemetry):
    # o3's price changed on 2025-06-10: the same call costs less from that day on.
    path = telemetry.write("o3.csv", "timestamp,model,prompt_tokens,completion_tokens,notes\n"
                           "2025-06-09T23:59:59Z,o3,1000000,0,before\n2025-06-10T00:00:00Z,o3,1000000,0,after\n")
    telemetry.ingest(path)
    got = dict(telemetry.query("select notes, estimated_cost_usd from telemetry.llm_calls"))
    assert got["before"] > got["after"] > 0


def test_unknown_model_is_unpriced_not_free(telemetry):
    path = telemetry.write("u.csv", "timestamp,model,prompt_tokens,completion_tokens\n"
                           "2026-02-23T22:19:28Z,acme-internal-llm-v2,1000,1000\n"
                           "2026-02-23T22:19:29Z,gpt-4o,1000,1000\n")
    telemetry.ingest(path)
    assert telemetry.scalar("select estimated_cost_usd from telemetry.llm_calls where model like 'acme%'") is None
    assert telemetry.scalar("select cost_source from telemetry.llm_calls where model like 'acme%'") is None
    assert telemetry.scalar("select sum(unpriced_calls) from telemetry.tokens_by_model") == 1
    assert telemetry.scalar("select sum(unpriced_calls) from telemetry.daily_cost_trend") == 1


def test_calls_that_are_all_unpriced_sum_to_an_unknown_cost_never_zero(telemetry):
    # 02-23 has only unpriced calls, 02-24 none, 02-25 a priced one: the marts say NULL (unknown) for the first,
    # 0 for the quiet day, and stats says "unpriced" and null where it said $0.
    path = telemetry.write("u.csv", "timestamp,model,prompt_tokens,completion_tokens,notes\n"
                           "2026-02-23T10:00:00Z,acme-internal-llm-v2,1000,1000,phase 1\n"
                           "2026-02-23T11:00:00Z,acme-internal-llm-v2,10,10,phase 1\n"
                           "2026-02-25T10:00:00Z,gpt-4o,1000,1000,phase 1\n")
    telemetry.ingest(path)
    for mart in ("daily_usage", "daily_usage_rollups", "tokens_by_model", "cost_by_phase", "cost_by_prompt_name",
                 "success_rate_by_phase"):
        costs = dict(telemetry.query(f"select call_date::text, sum(estimated_cost_usd) from telemetry.{mart} "
                                     "group by 1"))
        assert costs["2026-02-23"] is None and costs["2026-02-25"] > 0, mart
    trend = {d: (cost, cumulative) for d, cost, cumulative in telemetry.query(
        "select call_date::text, estimated_cost_usd, cumulative_cost_usd from telemetry.daily_cost_trend")}
    assert trend["2026-02-23"] == (None, None) and trend["2026-02-24"] == (0, None)
    assert trend["2026-02-25"][0] == trend["2026-02-25"][1] > 0
    unpriced = telemetry.cli("stats", "--json", "--model", "acme-internal-llm-v2")
    assert unpriced.returncode == 0, unpriced.stderr
    stats = json.loads(unpriced.stdout)
    assert stats["totals"]["calls"] == 2 and stats["totals"]["estimated_cost_usd"] is None
    assert [r["estimated_cost_usd"] for r in stats["by_model"] + stats["by_phase"]] == [None, None]
    assert [r["estimated_cost_usd"] for r in stats["daily_trend"]] == [None]
    report = telemetry.cli("stats", "--model", "acme-internal-llm-v2")
    assert report.returncode == 0 and "estimated cost unpriced" in report.stdout and "$0" not in report.stdout
    everything = json.loads(telemetry.cli("stats", "--json").stdout)
    assert [r["estimated_cost_usd"] is None for r in everything["daily_trend"]] == [True, False, False]
    assert everything["by_model"][-1]["model"] == "acme-internal-llm-v2"  # by cost, the unknown last


def test_reported_cost_column_wins_over_the_estimate(telemetry):
    path = telemetry.write("c.csv", "timestamp,model,prompt_tokens,completion_tokens,cost_usd,notes\n"
                           "2026-02-23T22:19:28Z,gpt-4o,1000,1000,0.123456,reported\n"
                           "2026-02-23T22:19:28Z,gpt-4o,1000,1000,,estimated\n")
    telemetry.ingest(path)
    got = {n: (c, s) for n, c, s in telemetry.query(
        "select notes, estimated_cost_usd, cost_source from telemetry.llm_calls")}
    assert got["reported"] == (Decimal("0.123456"), "reported")
    assert got["estimated"][1] == "estimated" and got["estimated"][0] != got["reported"][0]


def test_every_viflo_row_gets_a_cost(telemetry):
    path = CORPUS / "viflo__telemetry_usage.csv"
    if not path.exists():
        pytest.skip("../shared/corpus is not beside the repository")
    telemetry.ingest(path)
    rows = telemetry.query('select model, "timestamp", input_tokens, output_tokens, estimated_cost_usd '
                           "from telemetry.llm_calls")
    assert len(rows) == 5
    for model, ts, inp, out, cost in rows:
        assert cost is not None and cost > 0, model
        assert abs(cost - reference_cost(model, ts, inp, out)) <= 1e-9


def test_reprice_applies_a_changed_seed_to_stored_calls(telemetry):
    from loader.prices import reprice

    telemetry.ingest(telemetry.write("r.csv", "timestamp,model,prompt_tokens,completion_tokens\n"
                                     "2026-02-23T22:19:28Z,gpt-4o,1000,1000\n"))
    before = telemetry.calls()
    lineage = telemetry.query("select load_id, source_line_number, loaded_at from telemetry.llm_calls")
    cost = telemetry.scalar("select estimated_cost_usd from telemetry.llm_calls")
    with __import__("psycopg").connect(telemetry.url, autocommit=True) as conn:  # a price the seed lacks
        conn.execute("update telemetry.llm_calls set estimated_cost_usd = 999")
    reprice(settings=telemetry.settings)
    assert telemetry.scalar("select estimated_cost_usd from telemetry.llm_calls") == cost
    assert telemetry.calls() == before  # repriced in place: keys, values and lineage unchanged
    assert telemetry.query("select load_id, source_line_number, loaded_at from telemetry.llm_calls") == lineage
    assert telemetry.scalar("select sum(estimated_cost_usd) from telemetry.daily_usage") == cost  # marts too
