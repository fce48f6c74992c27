"""What a load leaves behind: each row written durably once, as a call, a reject or a conflict.

The landing table and the typed rows are unlogged work tables that hold only the loads in flight; once every load
is done they are empty, and what the rows became is kept with its lineage: a call in llm_calls (load_id,
source_line_number, the file in loads), a reject with its raw text in rejected_rows, a conflict with both versions
in call_conflicts. A crash of the server empties unlogged tables: a load that was not done then is read again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from helpers import CANONICAL_HEADER, csv_text

WORK_TABLES = ("telemetry_raw.usage_rows", "telemetry.int_usage_rows_typed")


def _file_rows() -> list[str]:
    return [
        "2026-11-01T10:00:00Z,gpt-4o,100,50,true,plan,10,Phase 1 first",  # line 2: a call
        "2026-11-01T10:05:00Z,gpt-4o,200,60,false,execute,20,Phase 2 second",  # line 3: a call
        "not-a-time,gpt-4o,1,1,true,plan,1,kept as written",  # line 4: a reject
        "2026-11-01T10:10:00Z,,5,5,true,plan,1,no model",  # line 5: a reject with a timestamp
    ]


def _persistence(telemetry, relation: str) -> str:
    return telemetry.scalar("select relpersistence from pg_class where oid = to_regclass(%s)", [relation])


def test_a_done_load_keeps_its_calls_with_lineage_and_empties_the_work_tables(telemetry):
    path = telemetry.write("usage.csv", csv_text(*_file_rows()))
    summary = telemetry.ingest(path).as_dict()
    assert (summary["inserted"], summary["rejected"]) == (2, 2)

    for relation in WORK_TABLES:
        assert telemetry.count(relation) == 0, relation
        assert _persistence(telemetry, relation) == "u", relation  # no WAL is written for them
    assert _persistence(telemetry, "telemetry.llm_calls") == "p"

    load_id = summary["files"][0]["load_id"]
    assert telemetry.query(
        'select c.load_id, l.source_file, c.source_line_number, c.notes from telemetry.llm_calls as c '
        'join telemetry.loads as l using (load_id) order by c.source_line_number'
    ) == [(load_id, str(path.resolve()), 2, "Phase 1 first"), (load_id, str(path.resolve()), 3, "Phase 2 second")]


def test_rejects_keep_their_raw_text_and_reason_after_the_landing_rows_are_gone(telemetry):
    path = telemetry.write("usage.csv", csv_text(*_file_rows()))
    telemetry.ingest(path)
    assert telemetry.count("telemetry_raw.usage_rows") == 0
    rejects = telemetry.query(
        'select source_file, line_number, rejection_reason, "timestamp", raw_timestamp, raw_model, raw_notes '
        "from telemetry.rejected_rows order by line_number")
    assert [r[:2] for r in rejects] == [(str(path.resolve()), 4), (str(path.resolve()), 5)]
    assert rejects[0][2].startswith("timestamp is not ISO 8601") and rejects[0][3:] == (
        None, "not-a-time", "gpt-4o", "kept as written")
    assert rejects[1][2:] == ("model is empty", datetime(2026, 11, 1, 10, 10, tzinfo=UTC), "2026-11-01T10:10:00Z",
                              None, "no model")  # an empty field is landed as NULL


def test_a_conflict_keeps_both_versions_after_the_landing_rows_are_gone(telemetry):
    first = "2026-11-01T10:00:00Z,gpt-4o,100,50,true,plan,10,Phase 1 first"
    header = CANONICAL_HEADER + ",session_id"
    telemetry.ingest(telemetry.write("a.csv", csv_text(first + ",s1", header=header)))
    second = telemetry.ingest(telemetry.write("b.csv", csv_text(first.replace(",100,", ",999,") + ",s1",
                                                                header=header)))
    assert (second.total("inserted"), second.total("conflicts")) == (0, 1)
    assert telemetry.count("telemetry_raw.usage_rows") == 0
    assert telemetry.query("select stored_input_tokens, conflicting_input_tokens, line_number "
                           "from telemetry.call_conflicts") == [(100, 999, 2)]


def test_rejects_age_out_with_the_retention_window(telemetry):
    telemetry.retention_months = 6
    old = (datetime.now(UTC) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = telemetry.ingest(telemetry.write("usage.csv", csv_text(
        f"{old},,1,1,true,plan,1,old reject", f"{new},,1,1,true,plan,1,new reject",
        "nonsense,gpt-4o,1,1,true,plan,1,no timestamp"))).as_dict()
    assert (summary["rejected"], summary["pruned"]["rejected_rows"]) == (3, 1)
    assert telemetry.query("select raw_notes from telemetry.rejected_rows order by line_number") == [
        ("new reject",), ("no timestamp",)]


def test_a_load_whose_work_rows_a_server_crash_emptied_is_read_again_with_exact_counts(telemetry):
    """A crash of PostgreSQL empties unlogged tables; a load past 'modelled' but not 'done' lost its rejects and
    conflicts with them, so it is undone (its calls too) and its file read again."""
    path = telemetry.write("usage.csv", csv_text(*_file_rows()))
    telemetry.ingest(path)
    calls = telemetry.calls()
    rejects = telemetry.query("select line_number, rejection_reason from telemetry.rejected_rows order by 1")
    # The state a crash leaves between llm_calls' transaction and the load's 'done': typed rows gone.
    with psycopg.connect(telemetry.url, autocommit=True) as conn:
        conn.execute("update telemetry_raw.load_audit set status = 'modelled'")

    again = telemetry.ingest(path).as_dict()
    assert (again["rows_read"], again["inserted"], again["rejected"]) == (4, 2, 2), again
    assert telemetry.calls() == calls
    assert telemetry.query("select line_number, rejection_reason from telemetry.rejected_rows order by 1") == rejects
    assert telemetry.query("select status, count(*) from telemetry_raw.load_audit group by 1 order by 1") == [
        ("aborted", 1), ("done", 1)]
    assert telemetry.scalar("select sum(inserted) from telemetry_raw.load_audit where status = 'done'") == 2
    assert telemetry.scalar("select sum(calls) from telemetry.daily_cost_trend") == 2
    assert telemetry.ingest(path).total("inserted") == 0  # and a second run adds nothing
