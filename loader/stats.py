"""``telemetry stats``: totals, by-model and by-phase tables, the daily trend and top errors, from the marts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from loader import queries
from loader.queries import Filters

TREND_DAYS = 14


def collect_stats(
    conn: psycopg.Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    phase: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Everything ``telemetry stats`` shows, as plain data (the --json output). The SQL is in loader.queries,
    which the dashboard reads too."""
    params = {"since": since, "until": until, "phase": phase, "model": model}
    filters = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in params.items()}
    empty = {"filters": filters, "totals": None, "by_model": [], "by_phase": [], "daily_trend": [],
             "top_errors": [], "unpriced_models": []}
    if not queries.has_marts(conn):
        return empty
    selected = Filters(since=since, until=until, model=model, phase=phase)
    totals = queries.totals(conn, selected)
    if not totals["calls"]:
        return empty
    return {
        "filters": filters,
        "totals": totals,
        "by_model": queries.breakdown(conn, selected, "model"),
        "by_phase": queries.breakdown(conn, selected, "phase", order="name"),
        "daily_trend": [{k: r[k] for k in ("call_date", "calls", "estimated_cost_usd")}
                        for r in queries.daily_trend(conn, selected, days=TREND_DAYS)],
        # The error list of a phase would need the calls themselves; stats shows none then (as it always has).
        "top_errors": queries.top_errors(conn, selected) if phase is None else [],
        "unpriced_models": queries.unpriced_models(conn, selected, totals["calls"]),
    }


# --- rendering ----------------------------------------------------------------------------------------------

def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def _cost(value: Decimal | None) -> str:
    """An estimated cost; None means every call it sums is unpriced: unknown, not $0."""
    return "unpriced" if value is None else _money(value)


def _rate(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def _group_rows(rows: list[dict[str, Any]], key: str) -> list[list[str]]:
    return [
        [str(r[key]), f"{r['calls']:,}", f"{r['input_tokens']:,}", f"{r['output_tokens']:,}",
         _cost(r["estimated_cost_usd"]), _rate(r["success_rate"]), f"{r['unpriced_calls']:,}"]
        for r in rows
    ]


def render_stats(stats: dict[str, Any]) -> str:
    """The human-readable report."""
    totals = stats["totals"]
    if totals is None:
        active = {k: v for k, v in stats["filters"].items() if v is not None}
        if active:
            return f"no calls match {', '.join(f'{k}={v}' for k, v in active.items())}"
        return "no calls loaded yet: run `telemetry ingest csv [PATH]` first"
    lines = []
    active = {k: v for k, v in stats["filters"].items() if v is not None}
    if active:
        lines.append("filters: " + ", ".join(f"{k}={v}" for k, v in active.items()))
    lines += [
        f"calls          {totals['calls']:,}",
        f"input tokens   {totals['input_tokens']:,}",
        f"output tokens  {totals['output_tokens']:,}",
        f"estimated cost {_cost(totals['estimated_cost_usd'])}",
        f"success rate   {_rate(totals['success_rate'])} "
        f"({totals['successes']:,} succeeded, {totals['failures']:,} failed)",
        "",
    ]
    headers = ["calls", "input tok", "output tok", "est. cost", "success", "unpriced"]
    lines += ["by model", *_table(["model", *headers], _group_rows(stats["by_model"], "model")), ""]
    lines += ["by phase", *_table(["phase", *headers], _group_rows(stats["by_phase"], "phase")), ""]
    trend = stats["daily_trend"]
    if trend:
        peak = max(r["estimated_cost_usd"] or 0 for r in trend) or Decimal(1)
        lines.append(f"daily estimated cost, last {len(trend)} days")
        for r in trend:
            bar = "█" * round(float((r["estimated_cost_usd"] or 0) / peak) * 30)
            lines.append(f"  {r['call_date']}  {bar:<30}  {_cost(r['estimated_cost_usd']):>10}  {r['calls']:,} calls")
        lines.append("")
    if stats["top_errors"]:
        lines.append("top errors")
        lines += _table(["error", "failures", "last seen"], [
            [e["error_pattern"][:70], f"{e['failures']:,}", e["last_seen"].strftime("%Y-%m-%d %H:%M")]
            for e in stats["top_errors"]
        ])
        lines.append("")
    for u in stats["unpriced_models"]:
        lines.append(
            f"warning: no price for model {u['model']!r}: {u['calls']:,} calls "
            f"({u['share_of_calls'] * 100:.1f}% of calls) are not in the estimated cost"
        )
    return "\n".join(lines).rstrip()
