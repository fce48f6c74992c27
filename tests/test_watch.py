"""`telemetry ingest csv --watch`: a call appended to the file reaches llm_calls while the command runs, exactly once,
an unfinished line waits for its line ending, and SIGTERM or Ctrl-C ends the watch cleanly (exit 0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import csv_text


def row(i: int, notes: str = "Phase 1 watched") -> str:
    return f"2026-11-20T10:{i // 60:02d}:{i % 60:02d}Z,gpt-4o,{100 + i},20,true,execute,900,{notes}"


def start_watch(telemetry, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update({"TELEMETRY_DATABASE_URL": telemetry.url, "TELEMETRY_RETENTION_MONTHS": "0"})
    return subprocess.Popen([sys.executable, "-m", "loader.cli", "ingest", "csv", "--watch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=telemetry.tmp_path)


def replace(path, text: str) -> None:
    """Write a whole file at once, as a writer that rotates does (the watch never sees it half written)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def calls(telemetry) -> int:
    if not telemetry.relation_exists("telemetry.llm_calls"):
        return 0
    return telemetry.count("telemetry.llm_calls")


def wait_for(telemetry, watch: subprocess.Popen, expected: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while calls(telemetry) != expected:
        if watch.poll() is not None:
            pytest.fail(f"the watch exited ({watch.returncode}): {watch.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            watch.kill()
            pytest.fail(f"llm_calls holds {calls(telemetry)} calls, not {expected}: {watch.communicate()[1][-3000:]}")
        time.sleep(0.1)


def stop(watch: subprocess.Popen, sig: int) -> tuple[str, str]:
    watch.send_signal(sig)
    try:
        out, err = watch.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        watch.kill()
        pytest.fail(f"the watch did not stop on {signal.Signals(sig).name}")
    assert watch.returncode == 0, (watch.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    return out, err


def test_appended_calls_load_exactly_once_while_the_watch_runs_and_sigterm_ends_it(telemetry):
    path = telemetry.write("usage.csv", csv_text(row(1), row(2)))
    watch = start_watch(telemetry, str(path), "--json")
    try:
        wait_for(telemetry, watch, 2)
        with path.open("a") as writer:  # two appends, then a line the writer has not finished
            writer.write(row(3) + "\n" + row(4) + "\n")
            writer.flush()
            wait_for(telemetry, watch, 4)
            writer.write(row(5) + "\n" + row(6)[:25])
            writer.flush()
            wait_for(telemetry, watch, 5)
            time.sleep(1)
            assert calls(telemetry) == 5  # the unfinished line waits
            writer.write(row(6)[25:] + "\n" + row(2) + "\n")  # the rest of it, and a duplicate
        wait_for(telemetry, watch, 6)
    finally:
        if watch.poll() is None:
            out, err = stop(watch, signal.SIGTERM)
    runs = [json.loads(line) for line in out.splitlines()]
    assert sum(r["inserted"] for r in runs) == 6 and sum(r["duplicates"] for r in runs) == 1
    assert all(r["rows_read"] == r["inserted"] + r["duplicates"] + r["rejected"] + r["expired"] for r in runs)
    assert "stopped watching" in err
    again = telemetry.ingest(path)  # a cron run after the watch: nothing is new
    assert (again.total("rows_read"), again.total("inserted")) == (0, 0)
    assert sorted(n for (n,) in telemetry.query("select source_line_number from telemetry.llm_calls")) == [
        2, 3, 4, 5, 6, 7]


def test_a_watch_waits_for_its_file_says_what_is_wrong_with_it_and_ctrl_c_ends_it(telemetry):
    path = telemetry.tmp_path / "later" / "usage.csv"
    watch = start_watch(telemetry, str(path))
    try:
        time.sleep(3)
        assert watch.poll() is None
        path.parent.mkdir()
        replace(path, "when,what\n1,2\n")  # not a usage CSV: said once, and the watch goes on
        time.sleep(3)
        assert watch.poll() is None
        replace(path, csv_text(row(1), row(2), row(3)))  # the writer fixes it
        wait_for(telemetry, watch, 3)
    finally:
        if watch.poll() is None:
            out, err = stop(watch, signal.SIGINT)
    assert f"waiting for {path} to appear" in err
    problems = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(problems) == 1 and "timestamp" in problems[0] and problems[0].endswith("still watching"), problems
    assert "rows read" in out and "inserted" in out


def test_watch_and_dry_run_do_not_go_together(telemetry):
    result = telemetry.cli("ingest", "csv", "--watch", "--dry-run", str(telemetry.write("u.csv", csv_text(row(1)))))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--dry-run" in result.stderr
