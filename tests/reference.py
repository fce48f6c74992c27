"""Independent brute-force answers, computed in Python from the CSV file or from llm_calls rows.

They share no code with the loader or the dbt models: the tests compare the two.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from genai_prices import Usage, calc_price

from loader.config import PROJECT_DIR

SEED = PROJECT_DIR / "seeds" / "model_prices.csv"


def seed_providers() -> set[str]:
    with SEED.open() as handle:
        return {row["provider_id"] for row in csv.DictReader(handle)}


_PROVIDERS = seed_providers()


def reference_cost(model: str, when: datetime, input_tokens: int, output_tokens: int) -> Decimal | None:
    """genai_prices.calc_price; a 'provider/' prefix naming a known provider is passed as provider_id."""
    provider = None
    if "/" in model:
        prefix, rest = model.split("/", 1)
        if prefix.lower() in _PROVIDERS:
            provider, model = prefix.lower(), rest
        else:
            model = model.rsplit("/", 1)[1]
    try:
        result = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens), model,
                            provider_id=provider, genai_request_timestamp=when)
    except LookupError:
        return None
    return Decimal(str(result.total_price))


def parse_timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def csv_calls(path: Path) -> list[dict]:
    """The distinct calls of a canonical CSV (whole-row identity, as without a session_id column)."""
    seen: set[tuple] = set()
    calls = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            ts = parse_timestamp(row["timestamp"])
            success = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
                row["task_success"].strip().lower())
            key = (ts, row["model"], row["prompt_tokens"], row["completion_tokens"], success, row["task_type"],
                   row["duration_ms"], row["notes"])
            if key in seen:
                continue
            seen.add(key)
            calls.append({"timestamp": ts, "model": row["model"], "input_tokens": int(row["prompt_tokens"]),
                          "output_tokens": int(row["completion_tokens"]), "success": success})
    return calls


def totals(calls: list[dict]) -> dict:
    """calls, tokens, success rate and estimated cost per model, by brute force."""
    by_model: dict[str, dict] = defaultdict(lambda: {"calls": 0, "cost": Decimal(0), "unpriced": 0})
    for call in calls:
        entry = by_model[call["model"]]
        entry["calls"] += 1
        cost = reference_cost(call["model"], call["timestamp"], call["input_tokens"], call["output_tokens"])
        if cost is None:
            entry["unpriced"] += 1
        else:
            entry["cost"] += cost
    successes = sum(1 for c in calls if c["success"] is True)
    failures = sum(1 for c in calls if c["success"] is False)
    return {
        "calls": len(calls),
        "input_tokens": sum(c["input_tokens"] for c in calls),
        "output_tokens": sum(c["output_tokens"] for c in calls),
        "success_rate": Decimal(successes) / (successes + failures) if successes + failures else None,
        "by_model": dict(by_model),
    }


def error_pattern(message: str | None) -> str:
    """error_summary's pattern of an error message: lower-cased, hex ids and numbers as '#', blanks squeezed."""
    text = (message or "").lower()
    text = re.sub(r"[0-9a-f]{8,}(-[0-9a-f]{4,})*", "#", text)
    text = re.sub(r"[0-9]+([.,:][0-9]+)*", "#", text)
    text = re.sub(r"\s+", " ", text).strip()[:200]
    return text or "(no message)"
