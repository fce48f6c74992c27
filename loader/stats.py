"""``telemetry stats``: totals, by-model and by-phase tables, the daily trend and top errors, from the marts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from loader.schema import relation_exists

TREND_DAYS = 14

# Every section reads cost_by_phase (grain: phase, day, model), so that all filters apply to all sections.
_FILTERED = """
    from telemetry.cost_by_phase
    where (%(since)s::date is null or call_date >= %(since)s::date)
      and (%(until)s::date is null or call_date <= %(until)s::date)
      and (%(phase)s::text is null or phase = %(phase)s::text)
      and (%(model)s::text is null or model = %(model)s::text)
"""

_MEASURES = """
    sum(calls)::bigint as calls,
    sum(input_tokens)::bigint as input_tokens,
    sum(output_tokens)::bigint as output_tokens,
    sum(total_tokens)::bigint as total_tokens,
    sum(estimated_cost_usd) as estimated_cost_usd,
    sum(unpriced_calls)::bigint as unpriced_calls,
    sum(successes)::bigint as successes,
    sum(failures)::bigint as failures,
    case when sum(successes + failures) > 0
         then round(sum(successes)::numeric / sum(successes + failures), 4) end as success_rate
"""

_TOTALS = f"select {_MEASURES} {_FILTERED}"
_BY_MODEL = f"select model, {_MEASURES} {_FILTERED} group by model order by estimated_cost_usd desc, calls desc, model"
_BY_PHASE = f"select phase, {_MEASURES} {_FILTERED} group by phase order by phase"
_UNPRICED = f"""
    select model, sum(unpriced_calls)::bigint as calls
    {_FILTERED}
    group by model having sum(unpriced_calls) > 0
    order by calls desc, model
"""
_TREND = f"""
    with daily as (
        select call_date, sum(calls)::bigint as calls, sum(estimated_cost_usd) as estimated_cost_usd
        {_FILTERED}
        group by call_date
    ),
    calendar as (
        select generate_series(greatest(min(call_date), max(call_date) - {TREND_DAYS - 1}), max(call_date),
                               interval '1 day')::date as call_date
        from daily
    )
    select c.call_date, coalesce(d.calls, 0) as calls, coalesce(d.estimated_cost_usd, 0) as estimated_cost_usd
    from calendar as c left join daily as d using (call_date)
    order by c.call_date
"""
_ERRORS = """
    select error_pattern, sum(failures)::bigint as failures, min(first_seen) as first_seen,
           max(last_seen) as last_seen, (array_agg(example_error_message order by last_seen desc))[1] as example
    from telemetry.error_summary
    where (%(since)s::date is null or call_date >= %(since)s::date)
      and (%(until)s::date is null or call_date <= %(until)s::date)
      and (%(model)s::text is null or model = %(model)s::text)
    group by error_pattern
    order by failures desc, error_pattern
    limit 5
"""


def collect_stats(
    conn: psycopg.Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    phase: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Everything ``telemetry stats`` shows, as plain data (the --json output)."""
    params = {"since": since, "until": until, "phase": phase, "model": model}
    filters = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in params.items()}
    empty = {"filters": filters, "totals": None, "by_model": [], "by_phase": [], "daily_trend": [],
             "top_errors": [], "unpriced_models": []}
    if not relation_exists(conn, "telemetry.cost_by_phase"):
        return empty
    with conn.cursor(row_factory=dict_row) as cur:
        totals = cur.execute(_TOTALS, params).fetchone()
        if not totals or not totals["calls"]:
            return empty
        unpriced = cur.execute(_UNPRICED, params).fetchall()
        for row in unpriced:
            row["share_of_calls"] = round(row["calls"] / totals["calls"], 4)
        return {
            "filters": filters,
            "totals": totals,
            "by_model": cur.execute(_BY_MODEL, params).fetchall(),
            "by_phase": cur.execute(_BY_PHASE, params).fetchall(),
            "daily_trend": cur.execute(_TREND, params).fetchall(),
            "top_errors": cur.execute(_ERRORS, params).fetchall() if phase is None else [],
            "unpriced_models": unpriced,
        }


# --- rendering ----------------------------------------------------------------------------------------------

def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


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
         _money(r["estimated_cost_usd"]), _rate(r["success_rate"]), f"{r['unpriced_calls']:,}"]
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
        f"estimated cost {_money(totals['estimated_cost_usd'])}",
        f"success rate   {_rate(totals['success_rate'])} "
        f"({totals['successes']:,} succeeded, {totals['failures']:,} failed)",
        "",
    ]
    headers = ["calls", "input tok", "output tok", "est. cost", "success", "unpriced"]
    lines += ["by model", *_table(["model", *headers], _group_rows(stats["by_model"], "model")), ""]
    lines += ["by phase", *_table(["phase", *headers], _group_rows(stats["by_phase"], "phase")), ""]
    trend = stats["daily_trend"]
    if trend:
        peak = max(r["estimated_cost_usd"] for r in trend) or Decimal(1)
        lines.append(f"daily estimated cost, last {len(trend)} days")
        for r in trend:
            bar = "█" * round(float(r["estimated_cost_usd"] / peak) * 30)
            lines.append(f"  {r['call_date']}  {bar:<30}  {_money(r['estimated_cost_usd']):>10}  {r['calls']:,} calls")
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
