"""`telemetry ingest csv`: from a usage CSV to deduplicated rows in telemetry.llm_calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import CANONICAL_HEADER, CORPUS, PROJECT_DIR, csv_text

ROW_A = "2026-02-23T22:19:28Z,claude-3-opus,2500,4800,true,execute,125000,Phase 5 CI setup"
ROW_B = "2026-02-23T22:20:28Z,claude-3-opus,3200,5600,true,execute,180000,Phase 6 test suite"
ROW_C = "2026-02-23T22:21:28Z,gemini-1.5-flash,800,1200,false,quick,15000,Fix typo in README"


def assert_accounted(summary) -> None:
    data = summary.as_dict()
    assert data["rows_read"] == data["inserted"] + data["duplicates"] + data["rejected"] + data["expired"]


# --- the file format ----------------------------------------------------------------------------------------


def test_bundled_example_loads_every_row(telemetry):
    summary = telemetry.ingest(PROJECT_DIR / "examples" / "usage.csv")
    assert (summary.total("rows_read"), summary.total("inserted")) == (60, 60)
    assert telemetry.count("telemetry.llm_calls") == 60


def test_quoted_notes_keep_commas_quotes_and_newlines(telemetry):
    notes = 'Phase 3: "quoted", with commas,\nand a second line'
    path = telemetry.write("usage.csv", csv_text(
        '2026-02-23T22:19:28Z,m,1,2,true,plan,3,"Phase 3: ""quoted"", with commas,\nand a second line"', ROW_B))
    summary = telemetry.ingest(path)
    assert summary.total("inserted") == 2
    assert telemetry.scalar("select notes from telemetry.llm_calls where model = 'm'") == notes
    assert telemetry.scalar("select phase from telemetry.llm_calls where model = 'm'") == "3"
    # the record after the two-line one starts on line 4
    assert telemetry.scalar("select source_line_number from telemetry.llm_calls where model = 'claude-3-opus'") == 4


def test_crlf_line_endings_load_like_lf(telemetry):
    path = telemetry.write("crlf.csv", csv_text(ROW_A, '2026-02-23T22:22:28Z,m,1,2,true,plan,3,"two\nlines"'),
                           newline="\r\n")
    assert telemetry.ingest(path).total("inserted") == 2
    assert telemetry.scalar("select notes from telemetry.llm_calls where model = 'm'") == "two\nlines"
    assert telemetry.scalar("select duration_ms from telemetry.llm_calls where model = 'claude-3-opus'") == 125000
    lf = telemetry.write("lf.csv", csv_text(ROW_A, '2026-02-23T22:22:28Z,m,1,2,true,plan,3,"two\nlines"'))
    assert telemetry.ingest(lf).total("duplicates") == 2


def test_utf8_bom_before_the_header_is_ignored(telemetry):
    path = telemetry.write("bom.csv", b"\xef\xbb\xbf" + csv_text(ROW_A).encode())
    assert telemetry.ingest(path).total("inserted") == 1


def test_headers_match_in_any_order_and_case(telemetry):
    header = " NOTES ,Model,TIMESTAMP,Task_Type,prompt_tokens,COMPLETION_TOKENS,task_success,duration_ms"
    path = telemetry.write("reordered.csv", csv_text("Phase 2 work,gpt-4o,2026-02-23T22:19:28Z,plan,10,20,yes,5",
                                                     header=header))
    assert telemetry.ingest(path).total("inserted") == 1
    row = telemetry.query("select model, prompt_name, input_tokens, output_tokens, success, phase, duration_ms "
                          "from telemetry.llm_calls")
    assert row == [("gpt-4o", "plan", 10, 20, True, "2", 5)]


def test_unknown_extra_columns_are_ignored(telemetry):
    path = telemetry.write("extra.csv", csv_text(ROW_A + ",x1,x2", header=CANONICAL_HEADER + ",host,branch"))
    summary = telemetry.ingest(path)
    assert (summary.total("inserted"), summary.total("rejected")) == (1, 0)


def test_a_file_with_only_the_two_required_columns_loads(telemetry):
    path = telemetry.write("minimal.csv", "timestamp,model\n2026-02-23 22:19:28,gpt-4o\n2026-02-23 22:19:29,gpt-4o\n")
    assert telemetry.ingest(path).total("inserted") == 2
    rows = telemetry.query('select "timestamp", prompt_name, input_tokens, total_tokens, success '
                           'from telemetry.llm_calls order by 1')
    assert rows[0] == (datetime(2026, 2, 23, 22, 19, 28, tzinfo=UTC), "(none)", None, 0, None)


def test_header_only_file_loads_nothing(telemetry):
    path = telemetry.write("header.csv", CANONICAL_HEADER + "\n")
    summary = telemetry.ingest(path)
    assert summary.as_dict()["rows_read"] == 0
    assert telemetry.count("telemetry.llm_calls") == 0


def test_timestamp_spellings_are_typed_as_utc(telemetry):
    path = telemetry.write("ts.csv", "timestamp,model,notes\n"
                           "2026-02-23T22:19:28Z,m,z\n"
                           "2026-02-23T23:19:28+01:00,m,offset\n"
                           "2026-02-23T22:19:28.250Z,m,fraction\n"
                           "2026-02-23 22:19:28,m,naive means UTC\n"
                           "2026-02-23T17:19:28.5-0500,m,compact offset\n")
    assert telemetry.ingest(path).total("inserted") == 5
    got = dict(telemetry.query('select notes, "timestamp" from telemetry.llm_calls'))
    base = datetime(2026, 2, 23, 22, 19, 28, tzinfo=UTC)
    assert got["z"] == got["offset"] == got["naive means UTC"] == base
    assert got["fraction"] == base.replace(microsecond=250000)
    assert got["compact offset"] == base.replace(microsecond=500000)


def test_booleans_in_any_spelling_and_big_counts(telemetry):
    path = telemetry.write("b.csv", "timestamp,model,task_success,prompt_tokens,notes\n"
                           "2026-02-23T22:19:28Z,m,TRUE,9000000000000,a\n"
                           "2026-02-23T22:19:28Z,m,No,0,b\n"
                           "2026-02-23T22:19:28Z,m,1,1,c\n"
                           "2026-02-23T22:19:28Z,m,,2,d\n")
    assert telemetry.ingest(path).total("inserted") == 4
    got = {n: (s, t) for n, s, t in telemetry.query("select notes, success, input_tokens from telemetry.llm_calls")}
    assert got == {"a": (True, 9_000_000_000_000), "b": (False, 0), "c": (True, 1), "d": (None, 2)}


def test_session_id_and_error_message_columns_are_used_when_present(telemetry):
    header = "timestamp,model,task_success,task_type,notes,session_id,error_message"
    path = telemetry.write("s.csv", csv_text(
        "2026-02-23T22:19:28Z,m,false,plan,Phase 1,sess-1,rate limited",
        "2026-02-23T22:19:28Z,m,false,plan,Phase 1 retry,sess-2,",
        "2026-02-23T22:19:28Z,m,true,plan,worked,sess-3,ignored for a success", header=header))
    telemetry.ingest(path)
    got = telemetry.query("select session_id, error_message from telemetry.llm_calls order by session_id")
    assert got == [("sess-1", "rate limited"), ("sess-2", "Phase 1 retry"), ("sess-3", None)]


def test_viflo_file_gives_exactly_five_rows(telemetry):
    path = CORPUS / "viflo__telemetry_usage.csv"
    if not path.exists():
        pytest.skip("../shared/corpus is not beside the repository")
    summary = telemetry.ingest(path)
    assert summary.as_dict() | {"elapsed_seconds": 0} == summary.as_dict() | {
        "rows_read": 5, "inserted": 5, "duplicates": 0, "rejected": 0, "elapsed_seconds": 0}
    assert telemetry.count("telemetry.llm_calls") == 5
    assert telemetry.scalar("select count(*) from telemetry.llm_calls where prompt_name = 'execute'") == 3
    assert telemetry.scalar("select count(distinct \"timestamp\") from telemetry.llm_calls") == 1


# --- idempotency and deduplication ---------------------------------------------------------------------------


def test_rerun_inserts_nothing_and_leaves_llm_calls_unchanged(telemetry):
    path = telemetry.write("usage.csv", csv_text(ROW_A, ROW_B, ROW_C))
    first = telemetry.ingest(path)
    before = telemetry.calls()
    second = telemetry.ingest(path)  # unchanged: nothing is even read
    copy = telemetry.write("copy-of-usage.csv", path.read_bytes())
    third = telemetry.ingest(copy)  # the same rows from another file: all duplicates
    assert (first.total("inserted"), first.total("duplicates")) == (3, 0)
    assert (second.loads[0].read, second.total("rows_read"), second.total("inserted")) == ("unchanged", 0, 0)
    assert (third.total("inserted"), third.total("duplicates")) == (0, 3)
    assert telemetry.calls() == before


def test_overlapping_files_dedupe(telemetry):
    first = telemetry.write("first.csv", csv_text(ROW_A, ROW_B))
    second = telemetry.write("second.csv", csv_text(ROW_B, ROW_C))
    telemetry.ingest(first)
    summary = telemetry.ingest(second)
    assert (summary.total("inserted"), summary.total("duplicates")) == (1, 1)
    assert telemetry.count("telemetry.llm_calls") == 3


def test_duplicates_inside_one_file_count_once(telemetry):
    path = telemetry.write("dupes.csv", csv_text(ROW_A, ROW_A, ROW_B, ROW_A))
    summary = telemetry.ingest(path)
    assert (summary.total("rows_read"), summary.total("inserted"), summary.total("duplicates")) == (4, 2, 2)
    assert telemetry.count("telemetry.llm_calls") == 2


def test_rows_that_differ_only_in_notes_stay_distinct(telemetry):
    path = telemetry.write("notes.csv", csv_text(ROW_A, ROW_A.replace("Phase 5 CI setup", "Phase 5 CI setup!")))
    assert telemetry.ingest(path).total("inserted") == 2


def test_explicit_session_ids_make_the_key(telemetry):
    header = "timestamp,model,task_type,session_id,notes"
    path = telemetry.write("s.csv", csv_text("2026-02-23T22:19:28Z,m,plan,s1,first write",
                                             "2026-02-23T22:19:28Z,m,plan,s1,second write of the same key",
                                             "2026-02-23T22:19:28Z,m,execute,s1,other prompt", header=header))
    summary = telemetry.ingest(path)
    assert (summary.total("inserted"), summary.total("duplicates")) == (2, 1)
    assert telemetry.scalar("select notes from telemetry.llm_calls where prompt_name = 'plan'") == "first write"


def test_a_stored_key_with_other_values_is_a_conflict_counted_warned_and_kept(telemetry):
    header = "timestamp,model,prompt_tokens,task_type,session_id,notes"
    first = telemetry.write("first.csv", csv_text("2026-02-23T22:19:28Z,m,100,plan,s1,first write",
                                                  "2026-02-23T22:20:00Z,m,5,plan,s2,same in both", header=header))
    telemetry.ingest(first)
    second = telemetry.write("second.csv", csv_text(
        "2026-02-23T22:19:28Z,m,999,plan,s1,rewritten",       # line 2: the stored key, other values
        "2026-02-23T22:20:00Z,m,5,plan,s2,same in both",      # line 3: an identical duplicate, no conflict
        "2026-02-23T22:21:00Z,m,1,plan,s3,new",               # line 4: new
        "2026-02-23T22:21:00Z,m,2,plan,s3,new but changed",   # line 5: same key as line 4 in this file
        header=header))
    dry = json.loads(telemetry.cli("ingest", "csv", str(second), "--dry-run", "--json").stdout)
    result = telemetry.cli("ingest", "csv", str(second), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["inserted"], summary["duplicates"], summary["conflicts"]) == (1, 3, 2)
    assert summary["files"][0]["conflict_lines"] == [2, 5]
    assert {k: dry[k] for k in ("inserted", "duplicates", "conflicts")} == {"inserted": 1, "duplicates": 3,
                                                                           "conflicts": 2}
    warning = [line for line in result.stderr.splitlines() if "not inserted" in line]
    assert warning == [f"warning: {second}: 2 rows not inserted: same (timestamp, session_id, prompt_name) as a "
                       f"call already stored but other values (lines 2, 5); counted as duplicates; both versions "
                       f"are in telemetry.call_conflicts where load_id = {summary['files'][0]['load_id']}"]
    assert telemetry.query("select input_tokens from telemetry.llm_calls order by session_id") == [(100,), (5,), (1,)]
    assert telemetry.query(
        "select line_number, stored_line_number, stored_input_tokens, conflicting_input_tokens, conflicting_notes,"
        " stored_source_file, source_file from telemetry.call_conflicts order by line_number"
    ) == [(2, 2, 100, 999, "rewritten", str(first), str(second)),
          (5, 4, 1, 2, "new but changed", str(second), str(second))]
    assert telemetry.scalar("select conflicts from telemetry_raw.load_audit where source_file = %s", [str(second)]) == 2
    again = json.loads(telemetry.cli("ingest", "csv", str(second), "--json").stdout)
    assert again["files"][0]["read"] == "unchanged" and telemetry.count("telemetry.call_conflicts") == 2


# --- rejects ---------------------------------------------------------------------------------------------------


def test_rejected_rows_are_counted_kept_and_explained(telemetry):
    path = telemetry.write("bad.csv", csv_text(
        ROW_A,
        "not a time,m,1,2,true,plan,3,x",
        "2026-02-23T22:19:28Z,,1,2,true,plan,3,empty model",
        "2026-02-23T22:19:28Z,m,-1,2,true,plan,3,negative",
        "2026-02-23T22:19:28Z,m,1.5,2,true,plan,3,fraction",
        "2026-02-23T22:19:28Z,m,1,2,maybe,plan,3,bool",
        "2026-02-23T22:19:28Z,m,1,2,true,plan",
        ROW_B))
    summary = telemetry.ingest(path)
    assert_accounted(summary)
    assert (summary.total("inserted"), summary.total("rejected")) == (2, 6)
    reasons = {r.reason: r.first_lines for r in summary.loads[0].rejects}
    assert reasons == {
        "timestamp is not ISO 8601 (e.g. 2026-02-23T22:19:28Z) or YYYY-MM-DD HH:MM:SS": [3],
        "model is empty": [4],
        "prompt_tokens is not a non-negative integer": [5, 6],
        "task_success is not a boolean (true/false/1/0/yes/no)": [7],
        "the record has 6 fields, the header has 8": [8],
    }
    kept = telemetry.query("select line_number, raw_timestamp, rejection_reason from telemetry.rejected_rows "
                           "order by line_number")
    assert [k[0] for k in kept] == [3, 4, 5, 6, 7, 8]
    assert kept[0][1] == "not a time"


def test_cli_warns_once_per_reject_reason_and_exits_0(telemetry):
    path = telemetry.write("bad.csv", csv_text(ROW_A, "x,m,1,2,true,plan,3,a", "y,m,1,2,true,plan,3,b"))
    result = telemetry.cli("ingest", "csv", str(path))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "2 rows rejected: timestamp is not ISO 8601" in warnings[0]
    assert "lines 3, 4" in warnings[0]
    assert "rejected" in result.stdout


# --- dry run ---------------------------------------------------------------------------------------------------


def test_dry_run_writes_nothing(telemetry):
    path = telemetry.write("usage.csv", csv_text(ROW_A, ROW_B, "bad,m,1,2,true,plan,3,x"))
    summary = telemetry.ingest(path, dry_run=True)
    assert (summary.total("inserted"), summary.total("rejected")) == (2, 1)
    assert not telemetry.relation_exists("telemetry_raw.usage_rows")
    assert not telemetry.relation_exists("telemetry.llm_calls")


def test_dry_run_predicts_the_real_run(telemetry):
    telemetry.ingest(telemetry.write("first.csv", csv_text(ROW_A)))
    path = telemetry.write("second.csv", csv_text(ROW_A, ROW_B, ROW_B, "bad,m,1,2,true,plan,3,x"))
    before = (telemetry.count("telemetry_raw.usage_rows"), telemetry.count("telemetry_raw.load_audit"))
    dry = telemetry.ingest(path, dry_run=True).as_dict()
    assert (telemetry.count("telemetry_raw.usage_rows"), telemetry.count("telemetry_raw.load_audit")) == before
    real = telemetry.ingest(path).as_dict()
    keys = ("rows_read", "inserted", "duplicates", "rejected", "expired")
    assert {k: dry[k] for k in keys} == {k: real[k] for k in keys} == {
        "rows_read": 4, "inserted": 1, "duplicates": 2, "rejected": 1, "expired": 0}


# --- the command line ------------------------------------------------------------------------------------------


def test_json_summary_has_the_documented_keys(telemetry):
    path = telemetry.write("usage.csv", csv_text(ROW_A, ROW_A))
    result = telemetry.cli("ingest", "csv", str(path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("rows_read", "inserted", "duplicates", "rejected")} == {
        "rows_read": 2, "inserted": 1, "duplicates": 1, "rejected": 0}


def test_path_argument_beats_the_environment_variable(telemetry):
    arg = telemetry.write("arg.csv", csv_text(ROW_A))
    env = telemetry.write("env.csv", csv_text(ROW_B, ROW_C))
    result = telemetry.cli("ingest", "csv", str(arg), "--json", env={"TELEMETRY_CSV_PATH": str(env)})
    assert json.loads(result.stdout)["rows_read"] == 1


def test_path_comes_from_the_environment_variable(telemetry):
    env = telemetry.write("env.csv", csv_text(ROW_B, ROW_C))
    result = telemetry.cli("ingest", "csv", "--json", env={"TELEMETRY_CSV_PATH": str(env)})
    assert json.loads(result.stdout)["rows_read"] == 2


def test_default_path_is_dot_telemetry_usage_csv(telemetry):
    telemetry.write(".telemetry/usage.csv", csv_text(ROW_A, ROW_B, ROW_C))
    result = telemetry.cli("ingest", "csv", "--json")
    assert json.loads(result.stdout)["rows_read"] == 3


def _one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_missing_required_column_is_refused_and_nothing_written(telemetry):
    path = telemetry.write("nomodel.csv", "timestamp,prompt_tokens\n2026-02-23T22:19:28Z,5\n")
    line = _one_line_error(telemetry.cli("ingest", "csv", str(path)))
    assert str(path) in line and "missing required column model" in line and "'prompt_tokens'" in line
    assert not telemetry.relation_exists("telemetry_raw.load_audit")


def test_empty_file_is_refused(telemetry):
    path = telemetry.write("empty.csv", b"")
    line = _one_line_error(telemetry.cli("ingest", "csv", str(path)))
    assert "empty" in line and str(path) in line


def test_missing_file_is_refused(telemetry):
    line = _one_line_error(telemetry.cli("ingest", "csv", str(telemetry.tmp_path / "nope.csv")))
    assert "no such file" in line


def test_unreachable_database_names_the_host_and_hides_the_password(telemetry):
    path = telemetry.write("usage.csv", csv_text(ROW_A))
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/telemetry"
    result = telemetry.cli("ingest", "csv", str(path), env={"TELEMETRY_DATABASE_URL": url})
    line = _one_line_error(result)
    assert "127.0.0.1:1" in line and "s3cret-pw" not in result.stderr + result.stdout


def test_help_explains_the_command():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "loader.cli", "ingest", "csv", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for word in ("--dry-run", "--json", "TELEMETRY_CSV_PATH", "exit codes", "rejected_rows"):
        assert word in out


def test_llm_calls_passes_its_dbt_schema_tests(telemetry):
    from loader import dbt

    telemetry.ingest(telemetry.write("usage.csv", csv_text(ROW_A, ROW_A, ROW_B, ROW_C, "x,m,1,2,true,plan,3,x")))
    result = dbt.invoke(telemetry.url, ["test", "--select", "llm_calls", "rejected_rows"])
    assert result.success and len(result.result.results) >= 7


def test_embedded_database_is_the_default(tmp_path: Path):
    """No TELEMETRY_DATABASE_URL: the CLI starts its own PostgreSQL in TELEMETRY_PGDATA and keeps the data."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update({"TELEMETRY_PGDATA": str(tmp_path / "pgdata"), "TELEMETRY_RETENTION_MONTHS": "0"})
    csv = tmp_path / "usage.csv"
    csv.write_text(csv_text(ROW_A, ROW_B))

    def run(*args: str):
        return subprocess.run([sys.executable, "-m", "loader.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=600)

    try:
        first = run("ingest", "csv", str(csv), "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["inserted"] == 2
        url = run("db", "url").stdout.strip()
        assert url.startswith("postgresql://") and str(tmp_path / "pgdata") in url
        assert run("db", "stop").returncode == 0
        csv.write_text(csv_text(ROW_C, ROW_B, ROW_A))  # rewritten: read in full, two rows already stored
        again = run("ingest", "csv", str(csv), "--json")  # starts the server again, data kept
        assert {k: json.loads(again.stdout)[k] for k in ("inserted", "duplicates")} == {"inserted": 1,
                                                                                       "duplicates": 2}
    finally:
        run("db", "stop")


def test_a_line_that_looks_like_copys_end_marker_loses_nothing(telemetry):
    path = telemetry.write("marker.csv", csv_text(ROW_A, "\\.", ROW_B, ROW_C))
    summary = telemetry.ingest(path).as_dict()
    assert (summary["rows_read"], summary["inserted"], summary["rejected"]) == (4, 3, 1)


def test_quotes_inside_an_unquoted_field_are_kept_as_written(telemetry):
    path = telemetry.write("q.csv", csv_text('2026-02-23T22:19:28Z,m,1,2,true,plan,3,say "hi" twice', ROW_B))
    telemetry.ingest(path)
    assert telemetry.scalar("select notes from telemetry.llm_calls where model = 'm'") == 'say "hi" twice'


def test_text_from_the_data_reaches_the_terminal_with_control_characters_escaped(telemetry):
    """A model name, a task type or an error can hold terminal escape sequences; the CLI shows them as \\x1b."""
    path = telemetry.write("esc\x1b[2J.csv", csv_text(
        "2026-11-20T10:00:00Z,evil\x1b[31mred,10,1,false,plan\x07,5,Phase 1: boom \x1b]0;pwned\x07",
        "2026-11-20T10:01:00Z,gpt-4o,not-a-count\x1b[5m,1,true,plan,5,Phase 1 ok",
    ))
    ingest = telemetry.cli("ingest", "csv", str(path))
    stats = telemetry.cli("stats")
    assert ingest.returncode == 0 and stats.returncode == 0, (ingest.stderr, stats.stderr)
    for output in (ingest.stdout, ingest.stderr, stats.stdout, stats.stderr):
        assert "\x1b" not in output and "\x07" not in output, output
    assert "esc\\x1b[2J.csv" in ingest.stdout + ingest.stderr
    assert "evil\\x1b[31mred" in stats.stdout
    assert "pwned\\x07" in stats.stdout  # the error text, in the top errors


def test_progress_from_dbts_worker_threads_reaches_stderr_one_whole_line_at_a_time(capfd):
    """dbt reports each model from the thread that ran it; two reports never share a line."""
    import threading

    from loader.cli import _progress_printer

    progress = _progress_printer(True)
    messages = [f"  model_{t}_{i}: success" for t in range(8) for i in range(500)]

    def report(thread: int) -> None:
        for i in range(500):
            progress(f"  model_{thread}_{i}: success")

    threads = [threading.Thread(target=report, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(capfd.readouterr().err.splitlines()) == sorted(messages)
