"""How the dashboard writes numbers and data: the Jinja environment and its filters, JSON and CSV.

Everything from the data is text: Jinja autoescapes it, and control characters (a terminal escape in a model
name) are shown as ``\\x1b`` instead of being sent raw.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(value: Any) -> Any:
    """Control characters as ``\\xNN`` text; applied to everything a template prints."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


def money(value: Decimal | float | None) -> str:
    """``$1,234.56``, or 4 decimals under a dollar (as ``telemetry stats`` writes it)."""
    if value is None:
        return "-"
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def cost(row: dict[str, Any], key: str = "estimated_cost_usd") -> str:
    """The estimated cost of a row of calls: "unpriced" when none of them has a price, never $0.00."""
    calls, unpriced = row.get("calls"), row.get("unpriced_calls")
    if calls and unpriced == calls:
        return "unpriced"
    return money(row.get(key))


def call_cost(row: dict[str, Any]) -> str:
    """The cost of one call from llm_calls, where NULL means its model has no price."""
    return "unpriced" if row.get("estimated_cost_usd") is None else money(row["estimated_cost_usd"])


def rate(value: Decimal | float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def change(current: Decimal | int | None, previous: Decimal | int | None) -> str:
    """The relative change against the previous period: "+12.5%", or "-" when there is nothing to compare."""
    if current is None or not previous:
        return "-"
    ratio = (Decimal(current) - Decimal(previous)) / Decimal(previous) * 100
    return f"{ratio:+.1f}%"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value.tzinfo else value.isoformat()
    return value.isoformat()


def environment() -> Environment:
    templates = resources.files("dashboard").joinpath("templates")
    env = Environment(
        loader=FileSystemLoader(str(templates)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=visible,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, cost=cost, call_cost=call_cost, rate=rate, number=number, when=when)
    env.globals.update(change=change, link=link, override=override)
    return env


def link(path: str, params: dict[str, Any], **overrides: Any) -> str:
    """``path?k=v...`` with the parameters that are set (``overrides`` replace some)."""
    merged = {**params, **overrides}
    kept = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in merged.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def override(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**params, key: value}


# --- data formats ------------------------------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """Decimal as a JSON number (as ``telemetry stats --json`` writes it), dates in ISO 8601, durations in s."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=jsonable)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    return value  # Decimal keeps every digit


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue()
