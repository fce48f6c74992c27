"""Data lifecycle and hardening: retention, incremental reads, rotation, concurrency, crashes, access."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from helpers import PROJECT_DIR, csv_text
from psycopg import sql
from reference import csv_calls

from bench.generate import write as generate_csv
from loader.retention import retention_cutoff, set_retention

NOW = datetime.now(UTC).replace(microsecond=0)  # fixed, so that the same row() is the same row all session


def recent(days_ago: float, i: int = 0) -> str:
    moment = NOW - timedelta(days=days_ago) + timedelta(seconds=i)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def row(days_ago: float, i: int, notes: str = "Phase 1 work") -> str:
    return f"{recent(days_ago, i)},gpt-4o,{100 + i},{10 + i},true,execute,1000,{notes} {i}"


def audit_statuses(telemetry) -> list[str]:
    return [r[0] for r in telemetry.query("select status from telemetry_raw.load_audit order by load_id")]


# --- retention -------------------------------------------------------------------------------------------------


def test_prune_dry_run_on_eight_months_reports_what_it_would_delete(telemetry):
    path = generate_csv(telemetry.tmp_path / "8months.csv", 600, seed=5,
                        end=datetime.now(UTC).date() - timedelta(days=1), days=240)
    telemetry.ingest(path)  # retention off while loading: all 8 months are stored
    cutoff = retention_cutoff(6)
    calls = csv_calls(path)
    old = sum(1 for c in calls if c["timestamp"] < cutoff)
    assert 0 < old < len(calls)

    dry = telemetry.cli("prune", "--dry-run", "--json", "--months", "6")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert (report["calls"], report["rejected_rows"], report["dry_run"]) == (old, 0, True)
    assert telemetry.count("telemetry.llm_calls") == len(calls)  # nothing deleted

    human = telemetry.cli("prune", "--dry-run", "--months", "6").stdout
    assert f"{old:,}" in human and "would delete" in human

    done = json.loads(telemetry.cli("prune", "--json", "--months", "6").stdout)
    assert done["calls"] == old
    assert telemetry.count("telemetry.llm_calls") == len(calls) - old
    assert telemetry.scalar('select min("timestamp") from telemetry.llm_calls') >= cutoff
    assert telemetry.count("telemetry_raw.usage_rows") == 0  # a done load's landing rows are released
    assert telemetry.scalar("select min(call_date) from telemetry.daily_cost_trend") >= cutoff.date()


def test_old_rows_are_expired_and_never_come_back(telemetry):
    telemetry.retention_months = 6
    text = csv_text(row(400, 1), row(250, 2), row(3, 3), row(2, 4))
    first = telemetry.ingest(telemetry.write("mixed.csv", text)).as_dict()
    assert (first["rows_read"], first["inserted"], first["expired"]) == (4, 2, 2)
    again = telemetry.ingest(telemetry.write("mixed-again.csv", text)).as_dict()
    assert (again["inserted"], again["duplicates"], again["expired"]) == (0, 2, 2)
    assert again["rows_read"] == again["inserted"] + again["duplicates"] + again["rejected"] + again["expired"]
    assert telemetry.count("telemetry.llm_calls") == 2
    assert telemetry.count("telemetry_raw.usage_rows") == 0  # nothing of a done load is kept but its calls


def test_every_ingest_ends_with_pruning(telemetry):
    telemetry.ingest(telemetry.write("a.csv", csv_text(row(200, 1), row(1, 2))))  # retention off: both stored
    assert telemetry.cli("retention", "set", "6").returncode == 0
    summary = telemetry.ingest(telemetry.write("b.csv", csv_text(row(1, 3))))
    assert summary.pruned.calls == 1
    assert telemetry.count("telemetry.llm_calls") == 2


def test_the_retention_window_is_a_setting_of_the_database(telemetry):
    """History loaded with retention off survives a plain cron run; only `retention set` changes the window."""
    telemetry.ingest(telemetry.write("history.csv", csv_text(row(400, 1), row(1, 2))))  # a new database: 0 stored
    plain = telemetry.cli("ingest", "csv", str(telemetry.write("cron.csv", csv_text(row(1, 3)))), "--json",
                          env={"TELEMETRY_RETENTION_MONTHS": ""})
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["pruned"]["calls"] == 0 and "warning" not in plain.stderr
    disagreeing = telemetry.cli("ingest", "csv", str(telemetry.write("cron.csv", csv_text(row(1, 3)))),
                                env={"TELEMETRY_RETENTION_MONTHS": "6"})
    assert disagreeing.returncode == 0
    assert ("warning: TELEMETRY_RETENTION_MONTHS=6 differs from this database's retention window of 0 months, "
            "which is used; to change the window run: telemetry retention set 6") in disagreeing.stderr
    assert telemetry.count("telemetry.llm_calls") == 3
    status = json.loads(telemetry.cli("db", "status", "--json", env={"TELEMETRY_RETENTION_MONTHS": ""}).stdout)
    assert (status["retention"]["months"], status["calls"]) == (0, 3)

    assert telemetry.cli("retention", "set", "6").returncode == 0
    status = json.loads(telemetry.cli("db", "status", "--json", env={"TELEMETRY_RETENTION_MONTHS": ""}).stdout)
    assert status["retention"] == {"months": 6, "cutoff": retention_cutoff(6).isoformat(), "notice": None}
    applied = json.loads(telemetry.cli("ingest", "csv", str(telemetry.tmp_path / "cron.csv"), "--json").stdout)
    assert applied["pruned"]["calls"] == 1
    assert telemetry.count("telemetry.llm_calls") == 2


def test_the_cutoff_is_midnight_utc_so_it_moves_once_a_day():
    assert retention_cutoff(6, datetime(2026, 11, 25, 13, 45, tzinfo=UTC)) == datetime(2026, 5, 25, tzinfo=UTC)
    assert retention_cutoff(6, datetime(2026, 8, 31, 23, 59, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)
    assert retention_cutoff(0) is None


def _exactly_months_ago(now: datetime, months: int) -> datetime:
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    for day in range(now.day, 0, -1):
        try:
            return now.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def test_a_run_that_loads_nothing_on_an_aging_database_prunes_nothing_and_runs_no_dbt(telemetry):
    """Calls one second apart right at 'now minus 6 months' would age out between any two runs, each run
    pruning a few and rebuilding the marts; the cutoff is midnight UTC, so they age out once, at midnight."""
    telemetry.retention_months = 6
    edge = _exactly_months_ago(datetime.now(UTC).replace(microsecond=0), 6)
    rows = [f"{(edge + timedelta(seconds=i)):%Y-%m-%dT%H:%M:%SZ},gpt-4o,1,1,true,execute,1,edge {i}"
            for i in range(60)]
    path = telemetry.write("usage.csv", csv_text(*rows))
    first = telemetry.ingest(path)
    assert first.total("inserted") == 60
    time.sleep(2)
    messages: list[str] = []
    again = telemetry.ingest(path, progress=messages.append)
    assert (again.loads[0].read, again.pruned.calls) == ("unchanged", 0)
    assert not any("dbt" in m for m in messages), messages


SESSION_HEADER = "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes,session_id"


def marts_agree_with_llm_calls(telemetry) -> None:
    """Every mart that retention prunes itself holds exactly what llm_calls says, and nothing before the cutoff."""
    assert telemetry.query(
        "select call_date, model, phase, prompt_name, calls, successes, failures, estimated_cost_usd, unpriced_calls "
        "from telemetry.daily_usage order by 1, 2, 3, 4") == telemetry.query(
        "select (\"timestamp\" at time zone 'UTC')::date, model, coalesce(phase, '(none)'), prompt_name, count(*), "
        "count(*) filter (where success), count(*) filter (where not success), "
        "coalesce(sum(estimated_cost_usd), 0), count(*) filter (where estimated_cost_usd is null) "
        "from telemetry.llm_calls group by 1, 2, 3, 4 order by 1, 2, 3, 4")
    assert telemetry.query(
        "select grain, call_date, coalesce(model, phase, prompt_name), calls from telemetry.daily_usage_rollups "
        "order by 1, 2, 3") == telemetry.query(
        "select g, call_date, v, sum(calls) from telemetry.daily_usage, "
        "lateral (values ('model', model), ('phase', phase), ('prompt_name', prompt_name)) as d(g, v) "
        "group by 1, 2, 3 order by 1, 2, 3")
    assert telemetry.query('select "timestamp", session_id from telemetry.failed_calls order by 1, 2') == \
        telemetry.query('select "timestamp", session_id from telemetry.llm_calls where not success order by 1, 2')
    assert telemetry.query("select call_date, sum(failures)::int from telemetry.error_summary group by 1 order by 1") \
        == telemetry.query("select (\"timestamp\" at time zone 'UTC')::date, count(*)::int from telemetry.llm_calls "
                           "where not success group by 1 order by 1")
    assert telemetry.query("select session_id, calls, first_call_at, last_call_at, estimated_cost_usd "
                           "from telemetry.cost_by_session order by 1") == telemetry.query(
        "select session_id, count(*), min(\"timestamp\"), max(\"timestamp\"), coalesce(sum(estimated_cost_usd), 0) "
        "from telemetry.llm_calls where not session_id_derived group by 1 order by 1")


@pytest.mark.parametrize("spanning", [False, True], ids=["no-session-spans-the-cutoff", "a-session-spans-it"])
def test_calls_ageing_out_leave_the_marts_without_a_dbt_run(telemetry, spanning):
    """The first run after the cutoff moved deletes the day that left the window from llm_calls and every mart
    itself (their rows belong to one call or one day), exactly, and starts no dbt; only a session with calls on
    both sides of the cutoff needs dbt, to recompute that session."""
    cutoff = retention_cutoff(6)
    before, after = cutoff - timedelta(hours=20), cutoff + timedelta(hours=3)
    calls = [f"{(before + timedelta(minutes=i)):%Y-%m-%dT%H:%M:%SZ},gpt-4o,100,10,{'false' if i % 3 else 'true'},"
             f"plan,1,Phase {i % 4} timeout after {i}s,old-{i % 2}" for i in range(12)]
    calls += [f"{(after + timedelta(minutes=i)):%Y-%m-%dT%H:%M:%SZ},claude-sonnet-4-5,200,20,"
              f"{'false' if i % 2 else 'true'},verify,1,Phase {i % 3} error {i},new-{i % 2}" for i in range(12)]
    calls += [f"{before + timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ},gpt-4o-mini,5,5,true,plan,1,no session,",
              f"{after + timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ},gpt-4o-mini,5,5,true,plan,1,no session,"]
    if spanning:
        calls += [f"{before + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ},gpt-4o-mini,5,5,true,plan,1,Phase 9,spanning",
                  f"{after + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ},gpt-4o-mini,5,5,true,plan,1,Phase 9,spanning"]
    path = telemetry.write("usage.csv", csv_text(*calls, header=SESSION_HEADER))
    telemetry.ingest(path)  # retention off: both sides of the cutoff are stored
    marts_agree_with_llm_calls(telemetry)

    set_retention(6, settings=telemetry.settings)
    messages: list[str] = []
    ingest = telemetry.ingest(path, progress=messages.append)
    assert (ingest.loads[0].read, ingest.pruned.calls) == ("unchanged", 13 + spanning)
    assert telemetry.scalar('select count(*) from telemetry.llm_calls where "timestamp" < %s', [cutoff]) == 0
    marts_agree_with_llm_calls(telemetry)
    assert not any("running dbt" in m for m in messages), messages
    assert any("recomputing 1 sessions" in m for m in messages) == spanning, messages
    if spanning:
        assert telemetry.scalar("select calls from telemetry.cost_by_session where session_id = 'spanning'") == 1


@pytest.mark.parametrize("months", ["99999", "1201", "²", "-1", "6.5"])
def test_an_absurd_retention_window_is_refused_in_one_line(telemetry, months):
    for args in (("retention", "set", months), ("prune", "--months", months)):
        result = telemetry.cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr


# --- incremental reads and rotation ------------------------------------------------------------------------------


def test_unchanged_file_is_not_read_and_dbt_does_not_run(telemetry):
    path = telemetry.write("usage.csv", csv_text(row(1, 1), row(1, 2)))
    telemetry.ingest(path)
    messages: list[str] = []
    summary = telemetry.ingest(path, progress=messages.append)
    assert (summary.loads[0].read, summary.total("rows_read")) == ("unchanged", 0)
    assert not any("dbt" in m for m in messages), messages
    assert telemetry.count("telemetry_raw.load_audit") == 1


def test_grown_file_loads_only_the_appended_bytes(telemetry):
    path = telemetry.write("usage.csv", csv_text(row(1, 1), row(1, 2)))
    telemetry.ingest(path)
    with path.open("a") as handle:
        handle.write(row(1, 3) + "\n" + "not-a-time,gpt-4o,1,1,true,x,1,bad\n" + row(1, 4) + "\n")
    summary = telemetry.ingest(path)
    load = summary.loads[0]
    assert (load.read, load.rows_read, load.inserted, load.rejected) == ("grown", 3, 2, 1)
    assert load.rejects[0].first_lines == [5]  # line numbers continue across reads
    offset = telemetry.scalar("select byte_offset from telemetry_raw.load_audit where load_id = %s", [load.load_id])
    assert offset == len(csv_text(row(1, 1), row(1, 2)).encode())
    assert telemetry.count("telemetry.llm_calls") == 4


def test_truncated_or_rewritten_file_is_read_in_full(telemetry):
    path = telemetry.write("usage.csv", csv_text(row(1, 1), row(1, 2), row(1, 3)))
    telemetry.ingest(path)
    path.write_text(csv_text(row(1, 3), row(1, 4)))  # the writer started over
    summary = telemetry.ingest(path)
    load = summary.loads[0]
    assert (load.read, load.rows_read, load.inserted, load.duplicates) == ("changed", 2, 1, 1)


def test_rotated_backups_load_from_a_directory_or_a_glob(telemetry):
    folder = telemetry.tmp_path / ".telemetry"
    current = telemetry.write(".telemetry/usage.csv", csv_text(row(2, 1), row(2, 2)))
    telemetry.ingest(current)
    with current.open("a") as handle:  # written after the last load, then rotated away at 10 MB
        handle.write(row(2, 3) + "\n")
    current.rename(folder / "usage_backup_20261124_101010.csv")
    telemetry.write(".telemetry/usage.csv", csv_text(row(1, 4)))
    result = telemetry.cli("ingest", "csv", str(folder / "*.csv"), "--json")
    data = json.loads(result.stdout)
    assert (data["rows_read"], data["inserted"], data["duplicates"]) == (4, 2, 2), result.stderr
    assert telemetry.count("telemetry.llm_calls") == 4
    again = json.loads(telemetry.cli("ingest", "csv", str(folder), "--json").stdout)
    assert again["rows_read"] == 0 and [f["read"] for f in again["files"]] == ["unchanged", "unchanged"]


# --- concurrency and crashes ---------------------------------------------------------------------------------------


def _cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "loader.cli", *args]


def _env(telemetry) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update({"TELEMETRY_DATABASE_URL": telemetry.url, "TELEMETRY_RETENTION_MONTHS": "0"})
    return env


def test_concurrent_ingests_of_overlapping_files_serialise(telemetry):
    files = [telemetry.write(f"f{i}.csv", csv_text(*(row(1, j) for j in range(i * 5, i * 5 + 12))))
             for i in range(4)]  # each file shares 7 rows with the next
    processes = [subprocess.Popen(_cli_command("ingest", "csv", str(f), "--json"), env=_env(telemetry),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=telemetry.tmp_path)
                 for f in files]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    summaries = [json.loads(out) for out, _ in outputs]
    distinct = 3 * 5 + 12
    assert telemetry.count("telemetry.llm_calls") == distinct
    assert sum(s["inserted"] for s in summaries) == distinct
    assert sum(s["duplicates"] for s in summaries) == 4 * 12 - distinct
    assert any("waiting for it to finish" in err for _, err in outputs)
    assert telemetry.scalar("select count(*) - count(distinct (\"timestamp\", session_id, prompt_name)) "
                            "from telemetry.llm_calls") == 0


def test_sigkill_at_any_moment_loses_nothing_and_counts_nothing_twice(telemetry):
    """Kill an ingest at random moments (10 trials); the next run must finish with exact counts."""
    rng = random.Random(20261124)
    path = telemetry.tmp_path / "usage.csv"
    path.write_text(csv_text(*(row(3, j) for j in range(30))))
    telemetry.ingest(path)
    killed_at = []
    for trial in range(10):
        with path.open("a") as handle:  # the agents keep writing: 20 new rows and 5 repeats
            handle.write("".join(row(2, 1000 * (trial + 1) + j) + "\n" for j in range(20)))
            handle.write("".join(row(3, j) + "\n" for j in range(5)))
        process = subprocess.Popen(_cli_command("ingest", "csv", str(path), "-q"), env=_env(telemetry),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=telemetry.tmp_path)
        delay = rng.uniform(0.3, 5.0)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(round(delay, 2))
        # Between the kill and the next run, no audit row may claim success for a load that is not whole.
        for inserted, load_id in telemetry.query(
                "select inserted, load_id from telemetry_raw.load_audit where status = 'done'"):
            assert telemetry.scalar("select count(*) from telemetry.llm_calls where load_id = %s",
                                    [load_id]) == inserted
        recovery = telemetry.ingest(path)
        data = recovery.as_dict()
        assert data["rows_read"] == data["inserted"] + data["duplicates"] + data["rejected"] + data["expired"]
        assert set(audit_statuses(telemetry)) <= {"done", "aborted"}, audit_statuses(telemetry)
        expected = len(csv_calls(path))
        assert telemetry.count("telemetry.llm_calls") == expected, f"trial {trial}, killed after {delay:.2f}s"
        assert telemetry.scalar("select sum(inserted) from telemetry_raw.load_audit where status = 'done'") == expected
        assert telemetry.scalar("select sum(calls) from telemetry.daily_cost_trend") == expected
    print("SIGKILL delays (s):", killed_at)


# --- access ----------------------------------------------------------------------------------------------------------


def test_reader_role_reads_the_marts_and_nothing_else(telemetry):
    telemetry.ingest(telemetry.write("usage.csv", csv_text(row(1, 1), "bad,gpt-4o,1,1,true,x,1,rejected")))
    user = f"dashboard_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(telemetry.url, autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login in role telemetry_reader").format(sql.Identifier(user)))
    parts = urlsplit(telemetry.url)
    host = parts.netloc.rsplit("@", 1)[-1]
    reader_url = urlunsplit(parts._replace(netloc=f"{user}@{host}"))
    try:
        with psycopg.connect(reader_url, autocommit=True) as conn:
            for relation in ["llm_calls", "tokens_by_model", "cost_by_phase", "cost_by_prompt_name",
                             "success_rate_by_phase", "daily_cost_trend", "error_summary"]:
                conn.execute(sql.SQL("select * from telemetry.{}").format(sql.Identifier(relation))).fetchall()
            for statement in ["insert into telemetry.llm_calls (model) values ('x')",
                              "delete from telemetry.daily_usage",
                              "select * from telemetry_raw.usage_rows",
                              "select * from telemetry_raw.load_audit",
                              "select * from telemetry.rejected_rows",
                              "create table telemetry.mine (x int)"]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        with psycopg.connect(telemetry.url, autocommit=True) as admin:
            admin.execute(sql.SQL("drop role {}").format(sql.Identifier(user)))


def test_passwords_never_appear_in_output_or_logs(telemetry):
    secret = f"pw-{uuid.uuid4().hex}"
    parts = urlsplit(telemetry.url)
    user_host = parts.netloc.rsplit("@", 1)
    user = (user_host[0].split(":")[0] if len(user_host) == 2 else "") or "postgres"
    url = urlunsplit(parts._replace(netloc=f"{user}:{secret}@{user_host[-1]}"))  # trust auth ignores it
    path = telemetry.write("usage.csv", csv_text(row(1, 1), "bad,gpt-4o,1,1,true,x,1,rejected"))
    outputs = [
        telemetry.cli("ingest", "csv", str(path), env={"TELEMETRY_DATABASE_URL": url}),
        telemetry.cli("stats", env={"TELEMETRY_DATABASE_URL": url}),
        telemetry.cli("db", "url", env={"TELEMETRY_DATABASE_URL": url}),
        telemetry.cli("ingest", "csv", str(path), env={"TELEMETRY_DATABASE_URL": url.replace(
            user_host[-1], "127.0.0.1:1/nowhere") if "host=" not in url else url + "&port=1"}),
    ]
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert "****" in outputs[2].stdout
    logs = (PROJECT_DIR / "logs" / "dbt.log")
    text = "".join(o.stdout + o.stderr for o in outputs) + (logs.read_text(errors="replace") if logs.exists() else "")
    assert secret not in text
