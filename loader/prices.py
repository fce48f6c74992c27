"""Generate the ``model_prices`` dbt seed from the offline price data of ``genai-prices``.

The seed lets PostgreSQL reproduce ``genai_prices.calc_price(usage, model_ref,
genai_request_timestamp=ts)`` (no ``provider_id``) for input, output, cache-read and
cache-write tokens.  One row per (provider, model, match rule, price period).

How ``genai-prices`` resolves a model reference (and how the seed encodes it):

1. The reference is lower-cased.  Nothing else: no ``provider/`` prefix is stripped.
2. The provider is the *first* provider (``provider_order``) whose provider-level
   ``model_match`` clause matches.  It is stored, as a PostgreSQL regex, in the
   ``provider_match`` column (the same value on every row of a provider).  Providers without
   such a clause are never chosen when no provider is given, so they are not in the seed.
3. Inside that provider the first model (``match_order``) with a matching rule wins; the
   provider's ``fallback_model_providers`` models are tried after its own models (their rows
   carry the provider's ``provider_id`` and the source provider in ``model_provider_id``).
   If nothing matches, the reference is retried once with compact date suffixes rewritten
   (``-20251211`` -> ``-2025-12-11``); the SQL side is the ``compact_date_pattern()`` macro
   (macros/pricing.sql), tested against genai-prices' own rewrite.  If still nothing
   matches, ``calc_price`` raises ``LookupError`` (SQL: no price).
4. The price in effect is chosen by the UTC request timestamp: ``valid_from`` inclusive,
   ``valid_to`` exclusive, and (DeepSeek only) the UTC time-of-day window
   ``daily_from``/``daily_to``.

``reprice`` applies a regenerated seed to the calls already stored (``telemetry prices reprice``).

Usage: ``python -m loader.prices [PATH]`` (default: ``seeds/model_prices.csv`` in the repo).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot
from genai_prices import types as gp

from loader.config import Settings
from loader.contract import LLM_CALLS, relation_exists
from loader.pipeline import locked_database, rebuild_marts, recover_interrupted_loads, reprice_calls, run_models
from loader.progress import Progress, silent
from loader.retention import database_retention
from loader.schema import ensure_landing_tables

__all__ = (
    "DEFAULT_SEED_PATH",
    "SEED_COLUMNS",
    "SKIPPED",
    "main",
    "price_rows",
    "reprice",
    "write_seed",
)

DEFAULT_SEED_PATH = Path(__file__).resolve().parents[1] / "seeds" / "model_prices.csv"

SEED_COLUMNS: tuple[str, ...] = (
    "provider_id",
    "provider_order",
    "provider_match",
    "model_provider_id",
    "model_id",
    "model_name",
    "match_order",
    "match_type",
    "match_value",
    "valid_from",
    "valid_to",
    "daily_from",
    "daily_to",
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "tier_start_tokens",
    "tier_input_mtok",
    "tier_output_mtok",
    "tier_cache_read_mtok",
    "tier_cache_write_mtok",
)

MATCH_TYPES = ("equals", "starts_with", "ends_with", "contains", "regex")

# Token price keys carried by the seed.
PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")

# Price keys that cost something even when usage only reports input/output/cache tokens
# (genai-prices always counts one request).  A model priced with one of these cannot be
# reproduced by the seed and is skipped.
_ALWAYS_CHARGED_KEYS = ("requests_kcount",)

# (provider_id, model_id, reason) for every model left out of the seed; filled by price_rows().
SKIPPED: list[tuple[str, str, str]] = []

_ARE_SPECIAL = frozenset("\\.^$*+?()[]{}|")


class _Unrepresentable(Exception):
    """A model whose prices cannot be expressed by the seed columns."""


def _are_escape(text: str) -> str:
    """Escape a literal for a PostgreSQL advanced regular expression."""
    return "".join("\\" + ch if ch in _ARE_SPECIAL else ch for ch in text)


def _clause_regex(clause: Any) -> str:
    """A PostgreSQL regex (search semantics, applied to the lower-cased name) for a clause."""
    if isinstance(clause, gp.ClauseEquals):
        return f"^{_are_escape(clause.equals.lower())}$"
    if isinstance(clause, gp.ClauseStartsWith):
        return f"^{_are_escape(clause.starts_with.lower())}"
    if isinstance(clause, gp.ClauseEndsWith):
        return f"{_are_escape(clause.ends_with.lower())}$"
    if isinstance(clause, gp.ClauseContains):
        return _are_escape(clause.contains.lower())
    if isinstance(clause, gp.ClauseRegex):
        return clause.regex
    if isinstance(clause, gp.ClauseOr):
        parts = dict.fromkeys(_clause_regex(c) for c in clause.or_)  # dedupe, keep order
        return "|".join(f"(?:{part})" for part in parts)
    if isinstance(clause, gp.ClauseAnd):
        return "^" + "".join(_lookahead(c) for c in clause.and_)
    raise _Unrepresentable(f"unknown match clause {clause!r}")


def _lookahead(clause: Any) -> str:
    if isinstance(clause, gp.ClauseStartsWith):
        return f"(?={_are_escape(clause.starts_with.lower())})"
    if isinstance(clause, gp.ClauseEquals):
        return f"(?={_are_escape(clause.equals.lower())}$)"
    return f"(?=.*(?:{_clause_regex(clause)}))"


def _flatten_rule(clause: Any) -> Iterable[tuple[str, str]]:
    """(match_type, match_value) rules whose OR equals the clause."""
    if isinstance(clause, gp.ClauseOr):
        for sub in clause.or_:
            yield from _flatten_rule(sub)
    elif isinstance(clause, gp.ClauseEquals):
        yield "equals", clause.equals.lower()
    elif isinstance(clause, gp.ClauseStartsWith):
        yield "starts_with", clause.starts_with.lower()
    elif isinstance(clause, gp.ClauseEndsWith):
        yield "ends_with", clause.ends_with.lower()
    elif isinstance(clause, gp.ClauseContains):
        yield "contains", clause.contains.lower()
    elif isinstance(clause, gp.ClauseRegex):
        # genai-prices runs re.search on the lower-cased name and does not lower-case the pattern.
        yield "regex", clause.regex
    else:
        # AND (or anything else): one regex built from lookaheads.
        yield "regex", _clause_regex(clause)


@dataclass(frozen=True)
class _Price:
    """The seed's price columns for one price period (strings, '' when absent)."""

    input_mtok: str = ""
    output_mtok: str = ""
    cache_read_mtok: str = ""
    cache_write_mtok: str = ""
    tier_start_tokens: str = ""
    tier_input_mtok: str = ""
    tier_output_mtok: str = ""
    tier_cache_read_mtok: str = ""
    tier_cache_write_mtok: str = ""


def _decimal_str(value: Decimal) -> str:
    return str(value)


def _seed_price(model_price: gp.ModelPrice) -> _Price:
    values: dict[str, Any] = {k: v for k, v in model_price.__dict__.items() if v is not None}
    for key in _ALWAYS_CHARGED_KEYS:
        if key in values:
            raise _Unrepresentable(f"has {key}, charged on every request")
    fields: dict[str, str] = {}
    tier_starts: set[int] = set()
    for key in PRICE_KEYS:
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, gp.TieredPrices):
            fields[key] = _decimal_str(value.base)
            if len(value.tiers) != 1:
                raise _Unrepresentable(f"{key} has {len(value.tiers)} tiers (seed holds one)")
            tier_starts.add(value.tiers[0].start)
            fields[f"tier_{key}"] = _decimal_str(value.tiers[0].price)
        elif isinstance(value, Decimal):
            fields[key] = _decimal_str(value)
        else:
            raise _Unrepresentable(f"{key} has unsupported value {value!r}")
    if len(tier_starts) > 1:
        raise _Unrepresentable(f"tier thresholds differ between price keys: {sorted(tier_starts)}")
    if tier_starts:
        fields["tier_start_tokens"] = str(tier_starts.pop())
    return _Price(**fields)


def _utc_time(value: time) -> time:
    """A constraint time as a naive UTC time of day (naive constraint times are UTC)."""
    if value.tzinfo is None:
        return value
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()


@dataclass(frozen=True)
class _Cell:
    """One price cell: [valid_from, valid_to) dates x [daily_from, daily_to) UTC times."""

    valid_from: date | None
    valid_to: date | None
    daily_from: time | None  # None: whole day
    daily_to: time | None  # None with daily_from set: until midnight (24:00)
    whole_day: bool
    price: _Price


def _price_cells(model: gp.ModelInfo) -> list[_Cell]:
    """Split a model's (conditional) prices into cells on which genai-prices is constant.

    genai-prices uses the *last* conditional price whose constraint is active (no constraint =
    always active) and the first one when none is active.  StartDateConstraint depends only on
    the UTC date, TimeOfDateConstraint only on the UTC time of day, so the winner is constant on
    each (date interval x time-of-day segment) cell between breakpoints.
    """
    prices = model.prices
    conditionals = [gp.ConditionalPrice(prices=prices)] if isinstance(prices, gp.ModelPrice) else list(prices)
    if not conditionals:
        raise _Unrepresentable("no prices")
    start_dates: set[date] = set()
    breakpoints: set[time] = {time(0, 0)}
    for cond in conditionals:
        constraint = cond.constraint
        if isinstance(constraint, gp.StartDateConstraint):
            start_dates.add(constraint.start_date)
        elif isinstance(constraint, gp.TimeOfDateConstraint):
            breakpoints.add(_utc_time(constraint.start_time))
            breakpoints.add(_utc_time(constraint.end_time))
        elif constraint is not None:
            raise _Unrepresentable(f"unsupported constraint {constraint!r}")
    dates = sorted(start_dates)
    bounds: list[date | None] = [None, *dates, None]
    times = sorted(breakpoints)
    seed_prices = [_seed_price(cond.prices) for cond in conditionals]

    def winner(moment: datetime) -> _Price:
        for index in range(len(conditionals) - 1, -1, -1):
            constraint = conditionals[index].constraint
            if constraint is None or constraint.active(moment):
                return seed_prices[index]
        return seed_prices[0]

    cells: list[_Cell] = []
    previous: tuple[Any, ...] | None = None
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        probe_day = lo if lo is not None else (dates[0] - timedelta(days=1) if dates else date(2000, 1, 1))
        # Segments of the day, merging neighbours with equal prices.
        segments: list[list[Any]] = []
        for t_index, start in enumerate(times):
            end = times[t_index + 1] if t_index + 1 < len(times) else None
            price = winner(datetime.combine(probe_day, start, tzinfo=UTC))
            if segments and segments[-1][2] == price:
                segments[-1][1] = end
            else:
                segments.append([start, end, price])
        shape = tuple((s[0], s[1], s[2]) for s in segments)
        if previous is not None and previous == shape:
            # Same prices as the previous date interval: extend it.
            for i in range(len(segments)):
                cell = cells[-len(segments) + i]
                cells[-len(segments) + i] = _Cell(
                    cell.valid_from, hi, cell.daily_from, cell.daily_to, cell.whole_day, cell.price
                )
            continue
        previous = shape
        if len(segments) == 1:
            cells.append(_Cell(lo, hi, None, None, True, segments[0][2]))
        else:
            for start, end, price in segments:
                cells.append(_Cell(lo, hi, start, end, False, price))
    return cells


def _iso_day(value: date | None) -> str:
    return "" if value is None else f"{value.isoformat()}T00:00:00+00:00"


def _iso_time(value: time | None, *, end: bool) -> str:
    if value is None or (end and value == time(0, 0)):
        return "24:00:00" if end else "00:00:00"
    return value.isoformat()


def _cell_daily(cell: _Cell) -> tuple[str, str]:
    """daily_from/daily_to of a cell ('' and '' for the whole day)."""
    if cell.whole_day:
        return "", ""
    return _iso_time(cell.daily_from, end=False), _iso_time(cell.daily_to, end=True)


def _selectable_providers(providers: Sequence[gp.Provider]) -> list[tuple[int, gp.Provider]]:
    return [(order, p) for order, p in enumerate(providers) if p.model_match is not None]


def price_rows() -> list[dict[str, Any]]:
    """All seed rows, in the seed's sort order (provider_order, match_order, period, window)."""
    providers = data_snapshot.get_snapshot().providers
    by_id = {p.id: p for p in providers}
    SKIPPED.clear()
    rows: list[dict[str, Any]] = []
    for provider_order, provider in _selectable_providers(providers):
        provider_match = _clause_regex(provider.model_match)
        sources: list[tuple[gp.Provider, gp.ModelInfo]] = [(provider, m) for m in provider.models]
        for fallback_id in provider.fallback_model_providers or ():
            fallback = by_id.get(fallback_id)
            if fallback is not None:
                sources.extend((fallback, m) for m in fallback.models)
        seen_rules: set[tuple[str, str]] = set()
        match_order = 0
        for source, model in sources:
            try:
                cells = _price_cells(model)
                rules = list(_flatten_rule(model.match))
            except _Unrepresentable as exc:
                SKIPPED.append((provider.id, model.id, str(exc)))
                continue
            for match_type, match_value in rules:
                if (match_type, match_value) in seen_rules:
                    # An identical earlier rule always wins, so this one can never be picked.
                    continue
                seen_rules.add((match_type, match_value))
                match_order += 1
                for cell in cells:
                    daily_from, daily_to = _cell_daily(cell)
                    row: dict[str, Any] = {
                        "provider_id": provider.id,
                        "provider_order": provider_order,
                        "provider_match": provider_match,
                        "model_provider_id": source.id,
                        "model_id": model.id,
                        "model_name": model.name or "",
                        "match_order": match_order,
                        "match_type": match_type,
                        "match_value": match_value,
                        "valid_from": _iso_day(cell.valid_from),
                        "valid_to": _iso_day(cell.valid_to),
                        "daily_from": daily_from,
                        "daily_to": daily_to,
                    }
                    row.update(cell.price.__dict__)
                    rows.append(row)
    rows.sort(key=_sort_key)
    _check_rows(rows)
    return rows


def _sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["provider_order"], row["match_order"], row["valid_from"], row["daily_from"])


def _check_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Each rule's cells must tile all time exactly once (so nothing overlaps)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["match_type"] not in MATCH_TYPES:
            raise ValueError(f"bad match_type in {row}")
        groups.setdefault((row["provider_id"], row["match_type"], row["match_value"]), []).append(row)
    for key, group in groups.items():
        by_period: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for row in group:
            by_period.setdefault((row["valid_from"], row["valid_to"]), []).append((row["daily_from"], row["daily_to"]))
        periods = sorted(by_period, key=lambda p: p[0])
        if periods[0][0] != "" or periods[-1][1] != "":
            raise ValueError(f"{key}: periods do not cover all time: {periods}")
        for (_, prev_to), (next_from, _) in zip(periods, periods[1:], strict=False):
            if prev_to != next_from:
                raise ValueError(f"{key}: periods overlap or leave a gap: {periods}")
        for period, windows in by_period.items():
            if windows == [("", "")]:
                continue
            ordered = sorted(windows)
            if (
                ordered[0][0] != "00:00:00"
                or ordered[-1][1] != "24:00:00"
                or any(a[1] != b[0] for a, b in zip(ordered, ordered[1:], strict=False))
            ):
                raise ValueError(f"{key} {period}: daily windows do not tile the day: {ordered}")


def write_seed(path: str | Path = DEFAULT_SEED_PATH) -> int:
    """Write the seed CSV (header + rows, ``\\n`` line endings); return the number of rows."""
    rows = price_rows()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SEED_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def reprice(*, settings: Settings | None = None, progress: Progress = silent) -> None:
    """Price the stored calls again with the current price seed, in place, and rebuild the marts with it.

    Keys, values and lineage of the calls are unchanged; only estimated_cost_usd, cost_source and the chosen
    price (price_provider_id, price_model_id) of the calls whose price changed are rewritten.
    """
    settings = settings or Settings.from_env()
    with locked_database(settings, progress) as (conn, url):
        ensure_landing_tables(conn)
        cutoff = database_retention(conn, settings).cutoff
        recover_interrupted_loads(conn, url, cutoff, progress)
        run_models(conn, url, cutoff, progress)  # the seed, when it changed
        if relation_exists(conn, LLM_CALLS):
            progress("repricing the stored calls")
            reprice_calls(url, cutoff)
            progress("rebuilding the marts")
            rebuild_marts(url, cutoff, full_refresh=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1:
        sys.stderr.write("usage: python -m loader.prices [PATH]\n")
        return 2
    path = Path(args[0]) if args else DEFAULT_SEED_PATH
    count = write_seed(path)
    sys.stdout.write(f"wrote {count} rows to {path}\n")
    for provider_id, model_id, reason in SKIPPED:
        sys.stdout.write(f"skipped {provider_id}/{model_id}: {reason}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
