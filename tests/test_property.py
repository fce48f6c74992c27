"""Property: however valid rows are split across files, duplicated and ordered, llm_calls ends up holding
exactly the distinct rows (one call per distinct key)."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from helpers import Telemetry, with_dbname
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
HEADER = ["timestamp", "model", "prompt_tokens", "completion_tokens", "task_success", "task_type", "notes"]

notes = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from([",", '"', "\n"]),
            max_size=12),
    st.sampled_from(["Phase 2.1: plan, review", 'said "hi"']),
)
valid_row = st.tuples(
    st.integers(min_value=0, max_value=5).map(lambda s: BASE + timedelta(seconds=s)),
    st.sampled_from(["gpt-4o", "claude-3-opus", "openai/gpt-4.1"]),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=100),
    st.sampled_from([True, False, None]),
    st.sampled_from(["plan", "execute", ""]),
    notes,
)


@st.composite
def split_into_files(draw):
    rows = draw(st.lists(valid_row, min_size=1, max_size=12))
    files = draw(st.lists(
        st.lists(st.sampled_from(rows), min_size=0, max_size=15), min_size=1, max_size=3))
    return rows, files


def _write(path, rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        for ts, model, inp, out, ok, task, text in rows:
            writer.writerow([ts.strftime("%Y-%m-%dT%H:%M:%SZ"), model, inp, out,
                             "" if ok is None else str(ok).lower(), task, text])


def _normalised(row) -> tuple:
    ts, model, inp, out, ok, task, text = row
    return (ts, model, inp, out, ok, task or "(none)", text or None)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=split_into_files())
def test_llm_calls_holds_exactly_the_distinct_rows(embedded_admin_url, tmp_path, case):
    rows, files = case
    name = f"telemetry_prop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(embedded_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        folder = tmp_path / name
        folder.mkdir()
        telemetry = Telemetry(url=with_dbname(embedded_admin_url, name), tmp_path=folder)
        read = 0
        for i, file_rows in enumerate(files):
            path = folder / f"part{i}.csv"
            _write(path, file_rows)
            summary = telemetry.ingest(path).as_dict()
            assert summary["rows_read"] == len(file_rows)
            assert summary["rows_read"] == summary["inserted"] + summary["duplicates"]
            read += summary["rows_read"]
        stored = telemetry.query(
            'select "timestamp", model, input_tokens, output_tokens, success, prompt_name, notes '
            "from telemetry.llm_calls") if any(files) else []
        loaded = {_normalised(r) for f in files for r in f}
        assert len(stored) == len(set(stored)) == len(loaded)
        assert set(stored) == loaded
    finally:
        with psycopg.connect(embedded_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
