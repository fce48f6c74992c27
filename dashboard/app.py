"""The dashboard: a Starlette app of thin views over the query layer, one template per page.

Every view parses the shared filters, calls loader.queries (what ``telemetry stats`` shows too) or
dashboard.queries (what only the dashboard shows), and hands one dict to ``respond``, which renders it as HTML,
``?format=json`` or ``?format=csv`` (the page's main table): the page, the API and the tests read one thing.
The app only reads: GET routes, a telemetry_reader session in read-only transactions (dashboard.db).
"""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard import queries as dq
from dashboard.db import DatabaseUnavailable, NotLoadedYet, ReaderRoleRefused, dashboard_url, reading
from dashboard.render import cost, environment, link, to_csv, to_json
from loader import queries
from loader.config import PROJECT_DIR
from loader.errors import TelemetryError
from loader.queries import Filters

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Chart.js, installed by `pnpm install` from the npm registry and served by the app itself (no CDN).
CHART_JS = PROJECT_DIR / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
BUDGET_VARIABLE = "TELEMETRY_MONTHLY_BUDGET_USD"
LOAD_HINT = "pnpm telemetry:ingest:csv PATH"

# Nothing but this app's own files: scripts only from /static (chart data travels in JSON blocks), no inline
# script or style, no frames, forms submit here.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

NAV = [("/", "Overview"), ("/models", "Models"), ("/phases", "Phases"), ("/prompts", "Task types"),
       ("/errors", "Errors"), ("/sessions", "Sessions"), ("/calls", "Calls")]


class BadRequest(ValueError):
    """A query parameter the dashboard cannot read (HTTP 400)."""


class NotFound(Exception):
    """What the URL names does not exist (HTTP 404)."""


@dataclass
class Page:
    """What a view shows: ``data`` is the JSON, ``data[table]`` the CSV; ``charts`` and ``extra`` only HTML."""

    template: str
    title: str
    data: dict[str, Any]
    table: str | None = None
    charts: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def parse_filters(params) -> Filters:
    values: dict[str, Any] = {}
    for name in ("since", "until"):
        text = (params.get(name) or "").strip()
        if text:
            try:
                values[name] = date.fromisoformat(text)
            except ValueError:
                raise BadRequest(f"{name}={text[:40]!r} is not a date like 2026-11-24") from None
    for name in queries.DIMENSIONS:
        text = params.get(name)
        values[name] = text if text not in (None, "") else None
    if values.get("since") and values.get("until") and values["since"] > values["until"]:
        raise BadRequest(f"since ({values['since']}) is after until ({values['until']})")
    return Filters(**values)


def parse_budget(env: dict[str, str] | None = None) -> Decimal | None:
    text = (os.environ if env is None else env).get(BUDGET_VARIABLE, "").strip()
    if not text:
        return None
    try:
        budget = Decimal(text)
    except InvalidOperation:
        budget = Decimal(-1)
    if not budget.is_finite() or budget <= 0:
        raise TelemetryError(f"{BUDGET_VARIABLE}={text!r} is not an amount of USD; set it to e.g. 500, or unset it")
    return budget


def _with_share(rows: list[dict[str, Any]], total_cost: Decimal) -> list[dict[str, Any]]:
    """Adds each row's share of the cost and its cost per successful call (None where its cost is unknown)."""
    for row in rows:
        known = row["estimated_cost_usd"] is not None
        row["share_of_cost"] = round(row["estimated_cost_usd"] / total_cost, 4) if total_cost and known else None
        row["cost_per_successful_call_usd"] = (
            row["estimated_cost_usd"] / row["successes"] if row["successes"] and known else None)
    return rows


def _amount(value: Decimal | None) -> float | None:
    """A chart's value: None (a gap) where the cost is unknown, never 0."""
    return None if value is None else float(value)


def _stacked_chart(chart_id: str, title: str, rows: list[dict[str, Any]], by: str) -> dict[str, Any]:
    days = sorted({r["call_date"] for r in rows})
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[float | None]] = {}
    for r in rows:
        series.setdefault(r[by], [0.0] * len(days))[index[r["call_date"]]] = _amount(r["estimated_cost_usd"])
    return {"id": chart_id, "title": title, "type": "bar", "stacked": True, "money": True,
            "labels": [d.isoformat() for d in days],
            "datasets": [{"label": name, "data": values} for name, values in series.items()]}


def _bar_chart(chart_id: str, title: str, labels: list[str], values: list[Any], *, money: bool = True,
               horizontal: bool = False, label: str = "estimated cost (USD)",
               line: tuple[str, list[Any]] | None = None) -> dict[str, Any]:
    datasets: list[dict[str, Any]] = [{"label": label, "data": [_amount(v) for v in values]}]
    if line:
        datasets.append({"label": line[0], "data": [None if v is None else float(v) * 100 for v in line[1]],
                         "type": "line", "yAxisID": "y2"})
    return {"id": chart_id, "title": title, "type": "bar", "money": money, "horizontal": horizontal,
            "labels": labels, "datasets": datasets, "y2": "percent" if line else None}


# --- views ---------------------------------------------------------------------------------------------------------

def overview(request: Request, conn: psycopg.Connection, f: Filters, app_state) -> Page:
    first, last = dq.data_bounds(conn)
    start, end = f.since or first, f.until or last
    totals = queries.totals(conn, f)
    data: dict[str, Any] = {"filters": f.as_dict(), "totals": None, "by_model": [], "by_phase": [],
                            "daily_trend": [], "top_errors": [], "unpriced_models": []}
    if totals["calls"]:
        data.update(
            totals=totals,
            by_model=queries.breakdown(conn, f, "model"),
            by_phase=queries.breakdown(conn, f, "phase", order="name"),
            daily_trend=queries.daily_trend(conn, f),
            top_errors=queries.top_errors(conn, f),
            unpriced_models=queries.unpriced_models(conn, f, totals["calls"]),
        )
    # The previous period of equal length, just before this one.
    previous = None
    if start and end and start <= end:
        length = (end - start).days + 1
        before = f.replace(since=start - timedelta(days=length), until=start - timedelta(days=1))
        previous = {"since": before.since.isoformat(), "until": before.until.isoformat(),
                    "totals": queries.totals(conn, before)}
    data["period"] = {"since": start.isoformat() if start else None, "until": end.isoformat() if end else None}
    data["previous_period"] = previous
    data["by_model_daily"] = queries.daily_by(conn, f, "model") if totals["calls"] else []
    data["budget"] = _budget(conn, app_state.budget) if app_state.budget is not None else None
    charts = []
    if data["daily_trend"]:
        trend = data["daily_trend"]
        charts.append({"id": "daily", "title": "Daily estimated cost, 7-day average and cumulative cost",
                       "type": "bar", "money": True, "y2": "money",
                       "labels": [r["call_date"].isoformat() for r in trend],
                       "datasets": [
                           {"label": "daily cost", "data": [_amount(r["estimated_cost_usd"]) for r in trend]},
                           {"label": "7-day average", "type": "line",
                            "data": [_amount(r["cost_7d_moving_avg_usd"]) for r in trend]},
                           {"label": "cumulative", "type": "line", "yAxisID": "y2",
                            "data": [_amount(r["cumulative_cost_usd"]) for r in trend]},
                       ]})
        charts.append(_stacked_chart("by-model", "Estimated cost by model and day", data["by_model_daily"], "model"))
    top_phases = sorted(data["by_phase"], key=lambda r: (r["estimated_cost_usd"] is None,
                                                        -(r["estimated_cost_usd"] or 0), -r["calls"], r["phase"]))[:10]
    if top_phases:
        charts.append(_bar_chart("phases", "Top phases by estimated cost", [r["phase"] for r in top_phases],
                                 [r["estimated_cost_usd"] for r in top_phases], horizontal=True))
    return Page("overview.html", "Overview", data, table="daily_trend", charts=charts,
                extra={"top_phases": top_phases})


def _budget(conn: psycopg.Connection, budget: Decimal) -> dict[str, Any]:
    """Month to date (all calls, whatever the filters) and a linear forecast to the month's end."""
    today = datetime.now(UTC).date()
    month_start = today.replace(day=1)
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    spent = queries.totals(conn, Filters(since=month_start, until=today))["estimated_cost_usd"] or Decimal(0)
    forecast = spent / today.day * days_in_month
    return {"budget_usd": budget, "warning_at_usd": budget * Decimal("0.8"), "month": month_start.strftime("%Y-%m"),
            "month_to_date_usd": spent,
            "forecast_usd": round(forecast, 6), "days_elapsed": today.day, "days_in_month": days_in_month,
            "share_spent": round(spent / budget, 4), "share_forecast": round(forecast / budget, 4),
            "over_budget": forecast > budget}


def models(request: Request, conn: psycopg.Connection, f: Filters, app_state) -> Page:
    totals = queries.totals(conn, f)
    rows = _with_share(queries.breakdown(conn, f, "model"), totals["estimated_cost_usd"] or Decimal(0))
    daily = queries.daily_by(conn, f, "model")
    data = {"filters": f.as_dict(), "totals": totals, "by_model": rows, "by_model_daily": daily}
    charts = [_bar_chart("models", "Estimated cost by model", [r["model"] for r in rows],
                         [r["estimated_cost_usd"] for r in rows], horizontal=True)] if rows else []
    if daily:
        charts.append(_stacked_chart("models-daily", "Estimated cost by model and day", daily, "model"))
    return Page("models.html", "Models", data, table="by_model", charts=charts,
                extra={"pivot": _pivot(daily, [r["model"] for r in rows])})


def _pivot(daily: list[dict[str, Any]], names: list[str]) -> list[tuple[date, list[str]]]:
    """Day by model, newest day first, as the cells to print: a table of days x models reads (and renders)
    better than one row per day and model."""
    cells: dict[date, dict[str, str]] = {}
    for r in daily:
        cells.setdefault(r["call_date"], {})[r["model"]] = cost(r)
    return [(day, [cells[day].get(name, "") for name in names]) for day in sorted(cells, reverse=True)]


def _dimension_page(by: str, title: str, key: str, label: str) -> Callable[..., Page]:
    def view(request: Request, conn: psycopg.Connection, f: Filters, app_state) -> Page:
        totals = queries.totals(conn, f)
        rows = _with_share(queries.breakdown(conn, f, by, order="name"), totals["estimated_cost_usd"] or Decimal(0))
        data = {"filters": f.as_dict(), "totals": totals, key: rows}
        charts = [_bar_chart(by, f"Estimated cost per successful call, and success rate, by {label}",
                             [r[by] for r in rows], [r["cost_per_successful_call_usd"] for r in rows],
                             label="cost per successful call (USD)",
                             line=("success rate (%)", [r["success_rate"] for r in rows]))] if rows else []
        return Page("breakdown.html", title, data, table=key, charts=charts,
                    extra={"by": by, "key": key})

    return view


phases = _dimension_page("phase", "Phases", "by_phase", "phase")
prompts = _dimension_page("prompt_name", "Task types", "by_prompt_name", "task type")


def errors(request: Request, conn: psycopg.Connection, f: Filters, app_state) -> Page:
    pattern = request.query_params.get("pattern")
    totals = queries.totals(conn, f)
    if pattern is not None:
        calls, next_token = dq.pattern_calls(conn, f, pattern, cursor=request.query_params.get("_next"))
        data = {"filters": f.as_dict(), "pattern": pattern, "calls": calls, "next": next_token}
        return Page("error_calls.html", "Calls behind an error", data, table="calls",
                    extra={"next_link": _next_link(request, next_token)})
    rows = queries.top_errors(conn, f, limit=50)
    data = {"filters": f.as_dict(), "failures": totals["failures"], "top_errors": rows}
    charts = [_bar_chart("errors", "Failures by error pattern (top 10)", [r["error_pattern"][:60] for r in rows[:10]],
                         [r["failures"] for r in rows[:10]], money=False, horizontal=True, label="failures")]
    return Page("errors.html", "Errors", data, table="top_errors", charts=charts if rows else [])


def sessions(request: Request, conn: psycopg.Connection, f: Filters, app_state) -> Page:
    summary = dq.session_summary(conn, f)
    rows = dq.top_sessions(conn, f)
    data = {"filters": f.as_dict(), "summary": summary, "sessions": rows}
    charts = [_bar_chart("sessions", "The most expensive sessions (top 20)", [r["session_id"][:16] for r in rows[:20]],
                         [r["estimated_cost_usd"] for r in rows[:20]])] if rows else []
    return Page("sessions.html", "Sessions", data, table="sessions", charts=charts)


def _next_link(request: Request, token: str | None) -> str | None:
    if token is None:
        return None
    return link(request.url.path, {**request.query_params, "_next": token})


def calls(request: Request, conn: psycopg.Connection, f: Filters, app_state) -> Page:
    session_id = request.query_params.get("session_id") or None
    rows, next_token = dq.call_log(conn, f, session_id=session_id, cursor=request.query_params.get("_next"))
    data = {"filters": {**f.as_dict(), "session_id": session_id}, "calls": rows, "next": next_token}
    return Page("calls.html", "Calls", data, table="calls",
                extra={"next_link": _next_link(request, next_token), "session_id": session_id})


def call_detail(request: Request, conn: psycopg.Connection, f: Filters, app_state) -> Page:
    params = request.query_params
    try:
        timestamp = datetime.fromisoformat(params.get("timestamp", ""))
    except ValueError:
        raise BadRequest("timestamp must be the call's ISO 8601 timestamp") from None
    if params.get("session_id") is None or params.get("prompt_name") is None:
        raise BadRequest("a call is named by timestamp, session_id and prompt_name")
    row = dq.call(conn, timestamp, params["session_id"], params["prompt_name"])
    if row is None:
        raise NotFound("no call has this timestamp, session_id and prompt_name")
    return Page("call.html", "Call", {"call": row}, table=None)


# --- plumbing ----------------------------------------------------------------------------------------------------

def call_link(row: dict[str, Any]) -> str:
    return link("/call", {"timestamp": row["timestamp"].isoformat(), "session_id": row["session_id"],
                          "prompt_name": row["prompt_name"]})


def presets(f: Filters, path: str) -> list[tuple[str, str, bool]]:
    """(label, link, active) for the period presets, keeping the other filters."""
    today = datetime.now(UTC).date()
    ranges = [("last 7 days", today - timedelta(days=6), today), ("last 30 days", today - timedelta(days=29), today),
              ("last 90 days", today - timedelta(days=89), today), ("this month", today.replace(day=1), today),
              ("all time", None, None)]
    out = []
    for label, since, until in ranges:
        params = {**f.as_dict(), "since": since, "until": until}
        out.append((label, link(path, params), (f.since, f.until) == (since, until)))
    return out


class AppState:
    def __init__(self, url: str, budget: Decimal | None) -> None:
        self.url = url
        self.budget = budget
        self.env = environment()
        self.env.policies["json.dumps_kwargs"] = {"default": _chart_json_default}
        self.env.globals.update(nav=NAV, call_link=call_link, link=link)


def _chart_json_default(value: Any) -> Any:
    from dashboard.render import jsonable

    return jsonable(value)


def respond(request: Request, state: AppState, page: Page, f: Filters, choices: dict[str, list[str]],
            elapsed_ms: float) -> Response:
    fmt = request.query_params.get("format", "html")
    if fmt == "json":
        return Response(to_json(page.data), media_type="application/json")
    if fmt == "csv":
        if page.table is None:
            return PlainTextResponse("this page has no table to export as CSV; try ?format=json", status_code=400)
        name = request.url.path.strip("/") or "overview"
        return Response(to_csv(page.data[page.table]), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}.csv"'})
    template = state.env.get_template(page.template)
    data_link = {fmt: link(request.url.path, {**request.query_params, "format": fmt}) for fmt in ("json", "csv")}
    html = template.render(
        page=page, data=page.data, charts=page.charts, filters=f, choices=choices, path=request.url.path,
        presets=presets(f, request.url.path), elapsed_ms=elapsed_ms, data_link=data_link,
        params=dict(request.query_params), **page.extra,
    )
    return HTMLResponse(html)


def _status_page(state: AppState, template: str, status: int, fmt: str, **context: Any) -> Response:
    if fmt in ("json", "csv"):
        return Response(to_json({"error": context.get("message"), "hint": context.get("hint")}),
                        status_code=status, media_type="application/json")
    html = state.env.get_template(template).render(path="", filters=Filters(), choices=None, presets=[],
                                                   params={}, **context)
    return HTMLResponse(html, status_code=status)


def _endpoint(view: Callable[..., Page], state: AppState) -> Callable[[Request], Response]:
    # One call is named by its key (whose prompt_name is not a filter): that page has no filters.
    filtered = view is not call_detail

    def endpoint(request: Request) -> Response:
        fmt = request.query_params.get("format", "html")
        started = time.perf_counter()
        try:
            f = parse_filters(request.query_params) if filtered else Filters()
            with reading(state.url) as conn:
                missing = dq.missing_marts(conn)
                if missing:
                    return _empty_page(state, fmt, missing)
                page = view(request, conn, f, state)
                choices = dq.filter_choices(conn) if filtered and fmt not in ("json", "csv") else {}
        except NotLoadedYet:
            return _empty_page(state, fmt, [])
        except (DatabaseUnavailable, ReaderRoleRefused) as exc:
            return _status_page(state, "unavailable.html", 503, fmt, title="Database unavailable", message=str(exc),
                                hint="The dashboard tries again at every request: reload when the database is back.")
        except (BadRequest, dq.BadToken) as exc:
            return _status_page(state, "unavailable.html", 400, fmt, title="Bad request", message=str(exc), hint=None)
        except NotFound as exc:
            return _status_page(state, "unavailable.html", 404, fmt, title="Not found", message=str(exc), hint=None)
        return respond(request, state, page, f, choices, (time.perf_counter() - started) * 1000)

    return endpoint


def _empty_page(state: AppState, fmt: str, missing: list[str]) -> Response:
    if missing and "llm_calls" not in missing:
        message = ("this database was built by an older version of llm-telemetry and lacks the marts "
                   f"{', '.join(missing)}")
        hint = "pnpm telemetry prices reprice"
    else:
        message, hint = "no calls loaded yet", LOAD_HINT
    if fmt in ("json", "csv"):
        return Response(to_json({"totals": None, "loaded": False, "message": message, "hint": hint}),
                        media_type="application/json")
    html = state.env.get_template("empty.html").render(path="", filters=Filters(), choices=None, presets=[],
                                                       params={}, message=message, hint=hint, title="No data yet")
    return HTMLResponse(html)


class SecurityHeaders:
    """Adds the Content-Security-Policy and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _chart_js(request: Request) -> Response:
    if not CHART_JS.exists():
        return PlainTextResponse("chart.js is not installed: run `pnpm install`", status_code=404)
    return FileResponse(CHART_JS, media_type="text/javascript")


def create_app(url: str | None = None, *, budget: Decimal | None = None) -> Starlette:
    """The dashboard for the database at ``url`` (default: TELEMETRY_DASHBOARD_DATABASE_URL, else the CLI's)."""
    state = AppState(url or dashboard_url(), budget if budget is not None else parse_budget())
    views = [("/", overview), ("/models", models), ("/phases", phases), ("/prompts", prompts),
             ("/errors", errors), ("/sessions", sessions), ("/calls", calls), ("/call", call_detail)]
    routes = [Route(path, _endpoint(view, state), methods=["GET", "HEAD"]) for path, view in views]
    routes += [
        Route("/static/vendor/chart.umd.min.js", _chart_js, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.dashboard = state
    return app
