"""The dashboard against a real PostgreSQL with data loaded by the real loader; nothing is mocked.

Most tests read one database loaded once for the module (the dashboard only reads); Starlette's TestClient
drives the app in-process. The command itself (`telemetry dashboard`) runs as a subprocess.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from dashboard_data import ESCAPE_MODEL, HOSTILE_MODEL, UNPRICED_MODEL, drop_database, loaded_database
from helpers import with_dbname
from psycopg import sql
from reference import error_pattern
from starlette.testclient import TestClient

from dashboard.app import create_app
from dashboard.db import connect_reader
from loader import queries
from loader.config import PROJECT_DIR
from loader.queries import Filters

PAGES = ["/", "/models", "/phases", "/prompts", "/errors", "/sessions", "/calls"]


@pytest.fixture(scope="module")
def loaded(embedded_admin_url, tmp_path_factory):
    yield from loaded_database(embedded_admin_url, tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def client(loaded):
    telemetry, _ = loaded
    return TestClient(create_app(telemetry.url))


def get_json(client, path: str, **params) -> dict:
    response = client.get(path, params={**params, "format": "json"})
    assert response.status_code == 200, response.text
    return response.json()


def calls_where(telemetry, condition: str = "true", params=None) -> list[dict]:
    with psycopg.connect(telemetry.url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(f"select * from telemetry.llm_calls where {condition}", params).fetchall()


def utc_day(call) -> date:
    return call["timestamp"].astimezone(UTC).date()


class _Tables(HTMLParser):
    """The text of every cell of every <table id=...>, row by row (head and body; the total row is left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._foot = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = dict(attrs).get("id")
            self.tables.setdefault(self._table, [])
        elif tag == "tfoot":
            self._foot = True
        elif tag == "tr" and self._table and not self._foot:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tfoot":
            self._foot = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def money(value) -> str:
    value = Decimal(str(value))
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


# --- numbers ---------------------------------------------------------------------------------------------------

def test_overview_numbers_equal_the_marts_and_llm_calls(loaded, client):
    telemetry, _ = loaded
    data = get_json(client, "/")
    calls = calls_where(telemetry)
    t = data["totals"]
    assert t["calls"] == len(calls) == telemetry.scalar("select sum(calls) from telemetry.tokens_by_model")
    assert t["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)
    assert Decimal(str(t["estimated_cost_usd"])) == Decimal(str(float(
        sum(c["estimated_cost_usd"] or 0 for c in calls))))
    assert t["unpriced_calls"] == sum(c["estimated_cost_usd"] is None for c in calls)
    assert t["failures"] == sum(c["success"] is False for c in calls)
    by_model = {r["model"]: r["calls"] for r in data["by_model"]}
    assert by_model == dict(telemetry.query("select model, sum(calls)::int from telemetry.tokens_by_model group by 1"))
    trend = telemetry.query("select call_date, calls, estimated_cost_usd, cumulative_cost_usd, cost_7d_moving_avg_usd "
                            "from telemetry.daily_cost_trend order by call_date")
    assert [(r["call_date"], r["calls"], r["estimated_cost_usd"], r["cumulative_cost_usd"],
             r["cost_7d_moving_avg_usd"]) for r in data["daily_trend"]] == [
        (d.isoformat(), n, float(c), float(cum), float(avg)) for d, n, c, cum, avg in trend]
    errors = dict(telemetry.query("select error_pattern, sum(failures)::int from telemetry.error_summary group by 1"))
    for e in data["top_errors"]:
        assert e["failures"] == errors[e["error_pattern"]]
    # The page shows the same numbers.
    kpis = {row[0]: row[1] for row in tables(client.get("/").text)["kpis"][1:]}
    assert kpis["calls"] == f"{len(calls):,}"
    assert kpis["estimated cost"] == money(t["estimated_cost_usd"])


def test_overview_totals_equal_telemetry_stats_on_the_bundled_example(telemetry):
    telemetry.ingest(PROJECT_DIR / "examples" / "usage.csv")
    stats = json.loads(telemetry.cli("stats", "--json").stdout)
    data = get_json(TestClient(create_app(telemetry.url)), "/")
    for key in ("totals", "by_model", "by_phase", "top_errors", "unpriced_models"):
        assert data[key] == stats[key], key
    keys = ("call_date", "calls", "estimated_cost_usd")
    assert [{k: r[k] for k in keys} for r in data["daily_trend"][-14:]] == stats["daily_trend"]


def test_a_filter_changes_every_section_and_stays_in_the_url(loaded, client):
    telemetry, _ = loaded
    model, phase, since = "gpt-4o-mini", "3", date(2026, 11, 1)
    data = get_json(client, "/", model=model, phase=phase, since=since.isoformat())
    expected = [c for c in calls_where(telemetry) if c["model"] == model and c["phase"] == phase
                and utc_day(c) >= since]
    assert data["filters"] == {"since": "2026-11-01", "until": None, "model": model, "phase": phase,
                               "prompt_name": None}
    assert data["totals"]["calls"] == len(expected) > 0
    assert [r["model"] for r in data["by_model"]] == [model]
    assert [r["phase"] for r in data["by_phase"]] == [phase]
    assert sum(r["calls"] for r in data["daily_trend"]) == len(expected)
    assert data["daily_trend"][0]["call_date"] >= "2026-11-01"
    assert {r["model"] for r in data["by_model_daily"]} == {model}
    failures = defaultdict(int)
    for c in expected:
        if c["success"] is False:
            failures[error_pattern(c["error_message"])] += 1
    assert {e["error_pattern"]: e["failures"] for e in data["top_errors"]} == dict(
        sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    # Every other page counts the same calls under the same filters.
    params = {"model": model, "phase": phase, "since": since.isoformat()}
    assert get_json(client, "/models", **params)["totals"]["calls"] == len(expected)
    assert sum(r["calls"] for r in get_json(client, "/phases", **params)["by_phase"]) == len(expected)
    assert sum(r["calls"] for r in get_json(client, "/prompts", **params)["by_prompt_name"]) == len(expected)
    assert get_json(client, "/errors", **params)["failures"] == sum(failures.values())
    # The filters survive in the URL: navigation, presets and the form keep them.
    html = client.get("/", params=params).text
    assert 'href="/models?since=2026-11-01&amp;model=gpt-4o-mini&amp;phase=3"' in html
    assert '<option selected>gpt-4o-mini</option>' in html
    assert 'value="2026-11-01"' in html
    assert "model=gpt-4o-mini&amp;phase=3" in html.split('aria-label="periods"')[1].split("</nav>")[0]


def test_every_section_honours_a_single_phase_or_prompt_filter(loaded, client):
    telemetry, _ = loaded
    for name, value in (("phase", "3"), ("prompt_name", "plan")):
        expected = [c for c in calls_where(telemetry) if (c[name] if name == "prompt_name" else c["phase"]) == value]
        data = get_json(client, "/", **{name: value})
        assert data["totals"]["calls"] == len(expected) > 0
        unpriced: dict = defaultdict(int)
        for c in expected:
            if c["estimated_cost_usd"] is None:
                unpriced[c["model"]] += 1
        assert {u["model"]: u["calls"] for u in data["unpriced_models"]} == unpriced and unpriced
        by_model: dict = defaultdict(int)
        for c in expected:
            by_model[c["model"]] += 1
        assert {r["model"]: r["calls"] for r in data["by_model"]} == by_model
        assert {r["model"] for r in data["by_model_daily"]} == set(by_model)


def test_prompt_name_and_phase_filters_together_read_the_full_grain(loaded, client):
    telemetry, _ = loaded
    expected = [c for c in calls_where(telemetry) if c["prompt_name"] == "plan" and c["phase"] == "2"]
    data = get_json(client, "/", prompt_name="plan", phase="2")
    assert data["totals"]["calls"] == len(expected) > 0
    assert Decimal(str(data["totals"]["estimated_cost_usd"])) == Decimal(str(float(
        sum(c["estimated_cost_usd"] or 0 for c in expected))))


def test_previous_period_is_the_same_length_just_before(loaded, client):
    telemetry, _ = loaded
    data = get_json(client, "/", since="2026-11-11", until="2026-11-20")
    assert data["previous_period"]["since"] == "2026-11-01" and data["previous_period"]["until"] == "2026-11-10"
    previous = [c for c in calls_where(telemetry) if date(2026, 11, 1) <= utc_day(c) <= date(2026, 11, 10)]
    assert data["previous_period"]["totals"]["calls"] == len(previous) > 0


# --- formats -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, key, table_id", [
    ("/models", "by_model", "by-model"), ("/phases", "by_phase", "by-phase"),
    ("/prompts", "by_prompt_name", "by-prompt-name"), ("/errors", "top_errors", "top-errors"),
    ("/sessions", "sessions", "sessions"), ("/calls", "calls", "calls"), ("/", "daily_trend", "daily-trend"),
])
def test_json_and_csv_match_the_page(client, path, key, table_id):
    rows = get_json(client, path)[key]
    response = client.get(path, params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    csv_rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(csv_rows) == len(rows) > 0
    assert list(csv_rows[0]) == list(rows[0])
    for got, want in zip(csv_rows, rows, strict=True):
        for name, value in want.items():
            if isinstance(value, float):
                assert float(got[name]) == pytest.approx(value, rel=1e-12), name
            elif isinstance(value, list):
                assert got[name] == ";".join(value)
            elif value is None:
                assert got[name] == ""
            else:
                assert got[name] == str(value), name
    html_rows = tables(client.get(path).text)[table_id][1:]
    first_column = {"/": "call_date", "/calls": "timestamp"}.get(path, {
        "by_model": "model", "by_phase": "phase", "by_prompt_name": "prompt_name", "top_errors": "error_pattern",
        "sessions": "session_id"}.get(key))
    shown = [r[0] for r in html_rows]
    if path == "/":
        assert shown == [r["call_date"] for r in reversed(rows)]
    elif path == "/calls":
        assert shown == [datetime.fromisoformat(r["timestamp"]).strftime("%Y-%m-%d %H:%M:%S UTC") for r in rows]
    else:
        assert shown == [r[first_column].replace("\x1b", "\\x1b") for r in rows]


def test_every_page_answers_json_with_its_filters(client):
    for path in PAGES:
        data = get_json(client, path, model="gpt-4o-mini")
        assert data["filters"]["model"] == "gpt-4o-mini", path


# --- unpriced, hostile input, safety ------------------------------------------------------------------------------

def test_an_unpriced_model_shows_as_unpriced_never_zero(loaded, client):
    rows = {r[0]: r for r in tables(client.get("/models").text)["by-model"][1:]}
    row = rows[UNPRICED_MODEL]
    assert row[4] == "unpriced" and row[-1] == "unpriced"
    assert "$0.00" not in row
    overview = client.get("/").text
    warning = overview.split('id="unpriced-warning"')[1].split("</section>")[0]
    data = get_json(client, "/")
    share = next(u for u in data["unpriced_models"] if u["model"] == UNPRICED_MODEL)["share_of_calls"]
    assert UNPRICED_MODEL in warning and f"({share * 100:.1f}% of calls)" in warning
    assert "Price coverage:" in overview
    calls = tables(client.get("/calls", params={"model": UNPRICED_MODEL}).text)["calls"][1:]
    assert calls and all(r[6] == "unpriced" for r in calls)


def test_calls_that_are_all_unpriced_cost_null_never_zero_in_every_format(loaded, client):
    """Filtered to a model without a price, every page's JSON and CSV say the cost is unknown (null, an empty
    cell), not 0; a quiet day between two days with calls still costs 0."""
    only_unpriced = {"model": UNPRICED_MODEL}
    overview = get_json(client, "/", **only_unpriced)
    assert overview["totals"]["calls"] > 0 and overview["totals"]["estimated_cost_usd"] is None
    assert [r["estimated_cost_usd"] for r in overview["by_model"]] == [None]
    assert overview["by_phase"] and all(r["estimated_cost_usd"] is None for r in overview["by_phase"])
    trend = overview["daily_trend"]
    assert trend and all((r["estimated_cost_usd"] is None) == (r["calls"] > 0) for r in trend)
    assert all(r["estimated_cost_usd"] == 0 for r in trend if r["calls"] == 0)
    assert all(r["cumulative_cost_usd"] is None for r in trend)
    assert all(r["estimated_cost_usd"] is None for r in overview["by_model_daily"])
    for path, key in [("/models", "by_model"), ("/phases", "by_phase"), ("/prompts", "by_prompt_name")]:
        rows = get_json(client, path, **only_unpriced)[key]
        assert rows and all(r["estimated_cost_usd"] is None and r["share_of_cost"] is None
                            and r["cost_per_successful_call_usd"] is None for r in rows), path
        assert get_json(client, path, **only_unpriced)["totals"]["estimated_cost_usd"] is None, path
        cells = list(csv.DictReader(io.StringIO(client.get(path, params={**only_unpriced, "format": "csv"}).text)))
        assert cells and all(c["estimated_cost_usd"] == "" for c in cells), path
    cells = list(csv.DictReader(io.StringIO(client.get("/", params={**only_unpriced, "format": "csv"}).text)))
    assert all((c["estimated_cost_usd"] == "") == (c["calls"] != "0") for c in cells)
    calls = get_json(client, "/calls", **only_unpriced)["calls"]
    assert calls and all(c["estimated_cost_usd"] is None for c in calls)


def test_sessions_whose_calls_are_all_unpriced_cost_null_and_come_last(telemetry):
    path = telemetry.write("s.csv", "timestamp,session_id,model,prompt_tokens,completion_tokens,task_success\n"
                           "2026-02-01T10:00:00Z,s-priced,gpt-4o,1000,1000,true\n"
                           "2026-02-01T11:00:00Z,s-unpriced,acme-internal-llm-v2,1000,1000,true\n"
                           "2026-02-01T12:00:00Z,s-unpriced,acme-internal-llm-v2,5,5,false\n")
    telemetry.ingest(path)
    client = TestClient(create_app(telemetry.url))
    data = get_json(client, "/sessions")
    assert [(s["session_id"], s["estimated_cost_usd"] is None) for s in data["sessions"]] == [
        ("s-priced", False), ("s-unpriced", True)]
    assert data["summary"]["estimated_cost_usd"] == data["sessions"][0]["estimated_cost_usd"] > 0
    unpriced = get_json(client, "/sessions", model="acme-internal-llm-v2")
    assert unpriced["summary"]["sessions"] == 1 and unpriced["summary"]["estimated_cost_usd"] is None
    assert unpriced["summary"]["cost_per_priced_session_usd"] is None
    assert get_json(client, "/sessions", model="no-such-model")["summary"]["estimated_cost_usd"] == 0
    assert telemetry.scalar("select estimated_cost_usd from telemetry.cost_by_session "
                            "where session_id = 's-unpriced'") is None


def test_hostile_names_are_shown_as_text(client):
    for path in ["/", "/models", "/calls", "/errors", "/sessions", "/prompts"]:
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "\x1b" not in html, path
    models = client.get("/models").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in models
    assert "evil\\x1b[31mred" in models
    assert [r[0] for r in tables(models)["by-model"][1:] if "alert" in r[0]] == [HOSTILE_MODEL]
    prompts = client.get("/prompts").text
    assert "&lt;img src=x onerror=alert(2)&gt;" in prompts
    # Chart data travels as JSON that cannot close its <script> block.
    assert "\\u003cscript\\u003ealert(1)" in models
    filtered = client.get("/calls", params={"model": ESCAPE_MODEL})
    assert filtered.status_code == 200 and len(tables(filtered.text)["calls"]) == 2


def test_responses_carry_a_strict_content_security_policy(client):
    response = client.get("/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in response.text  # no inline script: only src= and type=application/json blocks
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/vendor/chart.umd.min.js").status_code == 200
    assert client.get("/static/charts.js").status_code == 200


def test_only_get_is_served(client):
    for path in PAGES:
        assert client.post(path).status_code == 405
        assert client.delete(path).status_code == 405


def test_the_dashboard_role_cannot_write(loaded):
    telemetry, _ = loaded
    statements = [
        "insert into telemetry.llm_calls (\"timestamp\", session_id, prompt_name, model, total_tokens, load_id) "
        "values (now(), 'x', 'x', 'x', 0, 1)",
        "delete from telemetry.cost_by_session",
        "create table telemetry.intruder (x int)",
        "create temporary table intruder (x int)",
        "select * from telemetry_raw.load_audit",
        "select * from telemetry.rejected_rows",
    ]
    for statement in statements:
        with connect_reader(telemetry.url) as conn:
            with pytest.raises((psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
                conn.execute(statement)
    # Even a read-write transaction asked for explicitly: the role has no privilege to write.
    with connect_reader(telemetry.url) as conn:
        conn.execute("set transaction read write")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from telemetry.llm_calls")
    assert telemetry.scalar("select count(*) from telemetry.llm_calls") > 0


def test_a_login_of_its_own_in_telemetry_reader_wins_and_others_are_refused(loaded, monkeypatch):
    telemetry, _ = loaded
    member, outsider = f"dash_{uuid.uuid4().hex[:8]}", f"nodash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(telemetry.url, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login in role telemetry_reader").format(sql.Identifier(member)))
        conn.execute(sql.SQL("create role {} login").format(sql.Identifier(outsider)))
    try:
        parts = urlsplit(telemetry.url)
        as_user = lambda user: urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc.rsplit('@', 1)[-1]}"))  # noqa: E731
        monkeypatch.setenv("TELEMETRY_DASHBOARD_DATABASE_URL", as_user(member))
        monkeypatch.setenv("TELEMETRY_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")
        assert TestClient(create_app()).get("/", params={"format": "json"}).json()["totals"]["calls"] > 0
        refused = TestClient(create_app(as_user(outsider))).get("/")
        assert refused.status_code == 503 and "not a member of telemetry_reader" in refused.text
    finally:
        with psycopg.connect(telemetry.url, autocommit=True) as conn:
            for role in (member, outsider):
                conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


# --- drill-downs -----------------------------------------------------------------------------------------------

def test_the_call_log_pages_by_keyset_through_every_call(loaded, client):
    telemetry, _ = loaded
    seen, token, pages = [], None, 0
    while True:
        data = get_json(client, "/calls", phase="(none)", **({"_next": token} if token else {}))
        seen += [(r["timestamp"], r["session_id"], r["prompt_name"]) for r in data["calls"]]
        pages += 1
        token = data["next"]
        if token is None:
            break
    expected = sorted(calls_where(telemetry, "phase is null"), key=lambda c: c["timestamp"], reverse=True)
    assert pages > 1 and len(seen) == len(set(seen)) == len(expected)
    assert [s[0] for s in seen] == [c["timestamp"].isoformat() for c in expected]
    html = client.get("/calls", params={"phase": "(none)"}).text
    assert 'rel="next"' in html and "_next=" in html
    assert client.get("/calls", params={"_next": "not-a-token"}).status_code == 400


def test_a_call_traces_to_its_file_and_line(loaded, client):
    telemetry, generated = loaded
    row = get_json(client, "/calls", model="gpt-4o-mini")["calls"][0]
    detail = get_json(client, "/call", timestamp=row["timestamp"], session_id=row["session_id"],
                      prompt_name=row["prompt_name"])["call"]
    assert detail["source_file"] == str(generated.resolve())
    line = generated.read_text().splitlines()[detail["source_line_number"] - 1]
    assert line.split(",")[1] == "gpt-4o-mini" and line.split(",")[2] == str(detail["input_tokens"])
    assert detail["cost_source"] == "estimated" and detail["price_model_id"]
    lineage = tables(client.get("/call", params={k: row[k] for k in ("timestamp", "session_id", "prompt_name")}).text)
    assert [str(generated.resolve())] == [r[1] for r in lineage["lineage"] if r[0] == "source file"]
    missing = client.get("/call", params={"timestamp": row["timestamp"], "session_id": "nope", "prompt_name": "x"})
    assert missing.status_code == 404


def test_an_error_pattern_leads_to_the_calls_behind_it(loaded, client):
    top = get_json(client, "/errors")["top_errors"][0]
    calls, token = [], None
    while True:
        data = get_json(client, "/errors", pattern=top["error_pattern"], **({"_next": token} if token else {}))
        calls += data["calls"]
        token = data["next"]
        if token is None:
            break
    assert len(calls) == top["failures"] > 0
    assert all(error_pattern(c["error_message"]) == top["error_pattern"] for c in calls)


def test_sessions_add_up_to_llm_calls(loaded, client):
    telemetry, _ = loaded
    data = get_json(client, "/sessions")
    per_session: dict = defaultdict(lambda: [0, Decimal(0)])
    for c in calls_where(telemetry, "not session_id_derived"):
        per_session[c["session_id"]][0] += 1
        per_session[c["session_id"]][1] += c["estimated_cost_usd"] or 0
    assert data["summary"]["sessions"] == len(per_session)
    assert data["summary"]["calls"] == sum(n for n, _ in per_session.values())
    top = data["sessions"][0]
    assert Decimal(str(top["estimated_cost_usd"])) == Decimal(str(float(max(c for _, c in per_session.values()))))
    costs = [r["estimated_cost_usd"] for r in data["sessions"]]
    priced = [c for c in costs if c is not None]
    assert costs == sorted(priced, reverse=True) + [None] * (len(costs) - len(priced))
    hostile = get_json(client, "/sessions", model=HOSTILE_MODEL)
    assert hostile["summary"]["sessions"] == 2 and all(HOSTILE_MODEL in s["models"] for s in hostile["sessions"])


def test_the_budget_bar_forecasts_the_month(loaded):
    telemetry, _ = loaded
    client = TestClient(create_app(telemetry.url, budget=Decimal(100)))
    budget = get_json(client, "/")["budget"]
    today = datetime.now(UTC).date()
    with psycopg.connect(telemetry.url) as conn:
        spent = queries.totals(conn, Filters(since=today.replace(day=1), until=today))["estimated_cost_usd"] or 0
    assert budget["month"] == today.strftime("%Y-%m") and budget["budget_usd"] == 100
    assert budget["month_to_date_usd"] == float(spent)
    assert budget["forecast_usd"] == pytest.approx(float(spent) / today.day * budget["days_in_month"])
    assert 'id="budget-spent"' in client.get("/").text


def test_bad_filters_are_a_400_that_says_why(client):
    response = client.get("/", params={"since": "last tuesday"})
    assert response.status_code == 400 and "is not a date like" in response.text
    assert client.get("/", params={"since": "2026-11-10", "until": "2026-11-01"}).status_code == 400


# --- empty, down, and the command -------------------------------------------------------------------------------

def test_an_empty_database_says_how_to_load_data(telemetry):
    response = TestClient(create_app(telemetry.url)).get("/")
    assert response.status_code == 200
    assert "No calls loaded yet" in response.text and "pnpm telemetry:ingest:csv PATH" in response.text


def test_a_database_that_is_down_gives_503_and_the_app_recovers(embedded_admin_url):
    name = f"telemetry_test_later_{uuid.uuid4().hex[:8]}"
    url = with_dbname(embedded_admin_url, name)
    client = TestClient(create_app(url))
    down = client.get("/")
    assert down.status_code == 503 and "cannot connect to PostgreSQL" in down.text
    assert client.get("/", params={"format": "json"}).status_code == 503
    with psycopg.connect(embedded_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        assert client.get("/").status_code == 200  # the same app, the next request: it is back
    finally:
        drop_database(embedded_admin_url, url)


def _dashboard_process(url: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env["TELEMETRY_DATABASE_URL"] = url
    return subprocess.Popen([sys.executable, "-m", "loader.cli", "dashboard", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_the_command_serves_until_sigterm_then_exits_0(loaded):
    import urllib.request

    telemetry, _ = loaded
    process = _dashboard_process(telemetry.url, "--port", "0")
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("dashboard at http://127.0.0.1:") and line.endswith("/")
        url = line.split(" at ", 1)[1]
        with urllib.request.urlopen(url + "?format=json", timeout=30) as response:
            assert json.load(response)["totals"]["calls"] > 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stdout.read() == ""  # one line, nothing else
    finally:
        process.kill()
        process.wait()


def test_a_port_in_use_is_a_one_line_error_and_exit_2(loaded):
    telemetry, _ = loaded
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        process = _dashboard_process(telemetry.url, "--port", str(busy.getsockname()[1]))
        out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and out == ""
    assert err.startswith("error: port ") and "in use" in err and err.count("\n") == 1


def test_the_new_marts_pass_their_dbt_tests(loaded):
    from loader import dbt

    telemetry, _ = loaded
    marts = ["cost_by_session", "daily_usage", "daily_usage_rollups", "failed_calls", "loads"]
    result = dbt.invoke(telemetry.url, ["test", "--select", *marts])
    assert result.success
    names = {r.node.name for r in result.result.results}
    for mart in marts:
        assert any(mart in n and n.startswith("test_") for n in names), f"{mart} has no unit test"
        assert any(mart in n and not n.startswith("test_") for n in names), f"{mart} has no schema test"


def test_the_new_marts_stay_exact_through_later_loads_and_retention(telemetry):
    from bench.generate import write as generate_csv
    from loader.retention import prune

    telemetry.ingest(generate_csv(telemetry.tmp_path / "a.csv", 300, seed=7, end=date(2026, 11, 20), days=300))
    header = "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes,session_id"
    telemetry.ingest(telemetry.write("sessions.csv", "\n".join([
        header,
        "2026-04-01T10:00:00Z,gpt-4o-mini,1000,100,true,plan,1,Phase 1,straddle",
        "2026-07-01T10:00:00Z,gpt-4o-mini,2000,100,false,plan,1,Phase 1: Timeout after 3s,straddle",
        "2026-07-02T10:00:00Z,gpt-4o,10,1,true,plan,1,Phase 2,later",
    ]) + "\n"))
    telemetry.ingest(generate_csv(telemetry.tmp_path / "b.csv", 200, seed=8, end=date(2026, 11, 22), days=60))

    def check() -> None:
        sessions = dict(telemetry.query("select session_id, (calls, estimated_cost_usd, first_call_at) "
                                        "from telemetry.cost_by_session"))
        expected = dict(telemetry.query("select session_id, (count(*), sum(estimated_cost_usd), "
                                        "min(\"timestamp\")) from telemetry.llm_calls "
                                        "where not session_id_derived group by 1"))
        assert sessions == expected
        daily = telemetry.query("select call_date, model, phase, prompt_name, calls, estimated_cost_usd, "
                                "unpriced_calls from telemetry.daily_usage order by 1, 2, 3, 4")
        assert daily == telemetry.query(
            "select (\"timestamp\" at time zone 'UTC')::date, model, coalesce(phase, '(none)'), prompt_name, "
            "count(*), sum(estimated_cost_usd), count(*) filter (where estimated_cost_usd is null) "
            "from telemetry.llm_calls group by 1, 2, 3, 4 order by 1, 2, 3, 4")
        for grain in ("model", "phase", "prompt_name"):
            rollup = telemetry.query(f"select call_date, {grain}, calls, estimated_cost_usd, unpriced_calls "
                                     f"from telemetry.daily_usage_rollups where grain = '{grain}' order by 1, 2")
            assert rollup == telemetry.query(
                f"select call_date, {grain}, sum(calls), sum(estimated_cost_usd), sum(unpriced_calls) "
                f"from telemetry.daily_usage group by 1, 2 order by 1, 2")
        failed = telemetry.query('select "timestamp", session_id, prompt_name from telemetry.failed_calls '
                                 'order by 1, 2, 3')
        assert failed == telemetry.query('select "timestamp", session_id, prompt_name from telemetry.llm_calls '
                                         'where success = false order by 1, 2, 3')
        patterns = dict(telemetry.query("select error_pattern, count(*)::int from telemetry.failed_calls group by 1"))
        assert patterns == dict(telemetry.query(
            "select error_pattern, sum(failures)::int from telemetry.error_summary group by 1"))

    check()
    assert telemetry.scalar("select calls from telemetry.cost_by_session where session_id = 'straddle'") == 2
    today = datetime.now(UTC).date()
    prune(months=today.year * 12 + today.month - (2026 * 12 + 6), settings=telemetry.settings)  # cutoff in June 2026
    check()
    assert telemetry.scalar("select calls from telemetry.cost_by_session where session_id = 'straddle'") == 1
    assert telemetry.scalar("select min(call_date) from telemetry.daily_usage") >= date(2026, 6, 1)
