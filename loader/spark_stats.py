"""``telemetry stats`` on Spark (TELEMETRY_ENGINE=spark): the keys of loader.stats.collect_stats, from the same
marts, in Spark SQL. On Spark every figure is read from daily_usage (the full grain) and error_summary; the
rules are those of loader.queries: the cost of rows whose calls are all unpriced is unknown (None), quiet days
of the trend cost 0.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from loader.stats import TREND_DAYS

_KNOWN_COST = "sum(estimated_cost_usd) filter (where unpriced_calls < calls)"
_MEASURES = f"""
    cast(sum(calls) as bigint) as calls,
    cast(sum(input_tokens) as bigint) as input_tokens,
    cast(sum(output_tokens) as bigint) as output_tokens,
    cast(sum(total_tokens) as bigint) as total_tokens,
    {_KNOWN_COST} as estimated_cost_usd,
    cast(sum(unpriced_calls) as bigint) as unpriced_calls,
    cast(sum(successes) as bigint) as successes,
    cast(sum(failures) as bigint) as failures,
    case when sum(successes + failures) > 0
         then round(cast(sum(successes) as decimal(20, 0)) / sum(successes + failures), 4) end as success_rate
"""


def _literal(value: object) -> str:
    if isinstance(value, date):
        return f"date'{value.isoformat()}'"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def collect_stats_spark(spark, *, since: date | None = None, until: date | None = None, phase: str | None = None,
                        model: str | None = None) -> dict[str, Any]:
    params = {"since": since, "until": until, "phase": phase, "model": model}
    filters = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in params.items()}
    empty = {"filters": filters, "totals": None, "by_model": [], "by_phase": [], "daily_trend": [],
             "top_errors": [], "unpriced_models": []}
    if not spark.sql("show tables in telemetry like 'daily_usage'").collect():
        return empty
    conditions = ["true"]
    if since is not None:
        conditions.append(f"call_date >= {_literal(since)}")
    if until is not None:
        conditions.append(f"call_date <= {_literal(until)}")
    for name in ("model", "phase"):
        if params[name] is not None:
            conditions.append(f"{name} = {_literal(params[name])}")
    where = " and ".join(conditions)

    def rows(statement: str) -> list[dict[str, Any]]:
        return [row.asDict() for row in spark.sql(statement).collect()]

    totals = rows(f"select {_MEASURES} from telemetry.daily_usage where {where}")[0]
    if not totals["calls"]:
        return empty
    by_model = rows(f"select model, {_MEASURES} from telemetry.daily_usage where {where} group by model "
                    "order by estimated_cost_usd desc nulls last, calls desc, model")
    by_phase = rows(f"select phase, {_MEASURES} from telemetry.daily_usage where {where} group by phase "
                    "order by phase")
    daily = {row["call_date"]: row for row in rows(
        f"select call_date, cast(sum(calls) as bigint) as calls, {_KNOWN_COST} as estimated_cost_usd "
        f"from telemetry.daily_usage where {where} group by call_date")}
    last = max(daily)
    trend = []
    for offset in range(TREND_DAYS - 1, -1, -1):
        day = last - timedelta(days=offset)
        if day < min(daily):
            continue
        row = daily.get(day, {"calls": 0, "estimated_cost_usd": 0})
        trend.append({"call_date": day, "calls": row["calls"], "estimated_cost_usd": row["estimated_cost_usd"]})
    error_where = " and ".join(c for c in conditions if not c.startswith("phase"))
    top_errors = [] if phase is not None else rows(f"""
        select error_pattern, cast(sum(failures) as bigint) as failures, min(first_seen) as first_seen,
               max(last_seen) as last_seen, max_by(example_error_message, last_seen) as example
        from telemetry.error_summary where {error_where}
        group by error_pattern order by failures desc, error_pattern limit 5""")
    unpriced = rows(f"select model, cast(sum(unpriced_calls) as bigint) as calls from telemetry.daily_usage "
                    f"where {where} group by model having sum(unpriced_calls) > 0 order by calls desc, model")
    for row in unpriced:
        row["share_of_calls"] = round(row["calls"] / totals["calls"], 4)
    return {"filters": filters, "totals": totals, "by_model": by_model, "by_phase": by_phase,
            "daily_trend": trend, "top_errors": top_errors, "unpriced_models": unpriced}
