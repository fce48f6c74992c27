"""A small append builds only the marts it can change, and every mart stays what a rebuild from scratch makes.

Each dbt node costs fixed time, so before dbt runs the loader asks the batch which outcomes it holds (loader
idle_models): rejects, rows left out of llm_calls, new calls, new failures, new calls in sessions. The marts an
append cannot change are left out of the run; the others are built as always.
"""

from __future__ import annotations

from helpers import CANONICAL_HEADER, csv_text

from loader.pipeline import rebuild_marts

HEADER = CANONICAL_HEADER + ",session_id"
ALWAYS = {"int_usage_rows_typed", "llm_calls"}
BY_DAY = {"daily_usage", "daily_usage_rollups"}
FAILURES = {"failed_calls", "error_summary"}
#: The marts rebuilt from llm_calls alone: an incremental run must leave them as a rebuild from scratch would.
REBUILT = ("daily_usage", "daily_usage_rollups", "error_summary", "failed_calls", "cost_by_session")


def _row(minute: int, *, success: str = "true", session: str = "", model: str = "gpt-4o", notes: str = "Phase 1 x"
         ) -> str:
    return f"2026-11-10T10:{minute:02d}:00Z,{model},100,50,{success},plan,10,{notes},{session}"


def _append(telemetry, name: str, *rows: str) -> tuple[set[str], dict]:
    built: set[str] = set()

    def progress(message: str) -> None:
        if message.startswith("  ") and message.endswith(": success"):
            built.add(message.strip().rsplit(":", 1)[0])

    summary = telemetry.ingest(telemetry.write(name, csv_text(*rows, header=HEADER)), progress=progress)
    return built, summary.as_dict()


def _marts(telemetry) -> dict[str, list[tuple]]:
    return {name: sorted(telemetry.query(f"select * from telemetry.{name}"), key=repr) for name in REBUILT}


def test_each_append_builds_what_it_can_change_and_the_marts_stay_exact(telemetry):
    built, _ = _append(telemetry, "base.csv", _row(0), _row(1, success="false", session="s1"), "nonsense,,,,,,,,")
    assert {"rejected_rows", "call_conflicts", "cost_by_session", *BY_DAY, *FAILURES} <= built  # a first build

    built, summary = _append(telemetry, "new-calls.csv", _row(2), _row(3))
    assert built == ALWAYS | BY_DAY, built
    assert summary["inserted"] == 2

    built, summary = _append(telemetry, "a-reject.csv", "2026-11-10T10:04:00Z,,1,1,true,plan,1,no model,")
    assert built == ALWAYS | {"rejected_rows"}, built
    assert summary["rejected"] == 1

    built, summary = _append(telemetry, "a-conflict.csv", _row(1, success="false", session="s1", notes="other"))
    assert built == ALWAYS | {"call_conflicts"}, built
    assert (summary["duplicates"], summary["conflicts"]) == (1, 1)

    built, summary = _append(telemetry, "twice.csv", _row(5, session="s2"), _row(5, session="s2", notes="again"))
    assert built == ALWAYS | BY_DAY | {"call_conflicts", "cost_by_session"}, built  # the batch's own duplicate
    assert (summary["inserted"], summary["conflicts"]) == (1, 1)

    built, summary = _append(telemetry, "a-failure.csv", _row(6, success="false", session="s1"))
    assert built == ALWAYS | BY_DAY | FAILURES | {"cost_by_session"}, built

    assert telemetry.count("telemetry.rejected_rows") == 2
    assert telemetry.count("telemetry.call_conflicts") == 2
    assert telemetry.count("telemetry.llm_calls") == 6
    incremental = _marts(telemetry)
    rebuild_marts(telemetry.url, None, full_refresh=True)  # retention is off in this database
    assert _marts(telemetry) == incremental
