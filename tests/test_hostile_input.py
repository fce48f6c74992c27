"""Hostile input: every bad file gets the documented exit code, a clear message or per-row rejects, no traceback.

The files and their expected outcomes come from tests/hostile_files.py; the real files of ../shared/corpus/ are
tested too when present. Everything runs through the real `telemetry` command in a subprocess.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from helpers import CORPUS
from hostile_files import COUNT_KEYS, HostileCase, build

from loader.checkpoints import plan_read
from loader.csv_header import read_header
from loader.sources import resolve_paths

_FILES = Path(tempfile.mkdtemp(prefix="hostile-csv-"))
atexit.register(shutil.rmtree, _FILES, ignore_errors=True)
CASES = build(_FILES)

CORPUS_FILES = sorted(CORPUS.glob("*.csv")) if CORPUS.is_dir() else []
CANONICAL_CORPUS_FILE = "viflo__telemetry_usage.csv"
#: The one-line notice about a last record whose line ending is not written yet (ReadPlan.pending_notice).
_PENDING = re.compile(r"has no line ending yet|has not ended yet")


def _no_traceback(result) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-4000:]


def _assert_refused(telemetry, result, names: str, mentions: tuple[str, ...] = ()) -> None:
    """Exit 2, one stderr line `error: ...` naming the file, nothing on stdout, nothing written."""
    _no_traceback(result)
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert names in lines[0], (names, lines[0])
    for pattern in mentions:
        assert re.search(pattern, lines[0], re.IGNORECASE), (pattern, lines[0])
    assert result.stdout == ""
    assert telemetry.count("telemetry_raw.usage_rows") == 0
    assert telemetry.count("telemetry_raw.load_audit") == 0


def _assert_loaded(telemetry, result) -> dict:
    """Exit 0, the identity holds, rejected_rows holds the rejects with reasons, llm_calls the inserted rows."""
    _no_traceback(result)
    assert result.returncode == 0, (result.returncode, result.stderr[-4000:])
    assert not [line for line in result.stderr.splitlines() if line.startswith("error:")], result.stderr
    data = json.loads(result.stdout)
    counts = {k: data[k] for k in COUNT_KEYS}
    assert counts["rows_read"] == counts["inserted"] + counts["duplicates"] + counts["rejected"] + counts[
        "expired"], counts

    rejected = telemetry.query(
        "select line_number, rejection_reason from telemetry.rejected_rows order by line_number"
    ) if telemetry.relation_exists("telemetry.rejected_rows") else []
    assert len(rejected) == counts["rejected"], (counts, rejected)
    assert all(reason and reason.strip() for _, reason in rejected), rejected
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")
                and not _PENDING.search(line)]
    assert len(warnings) == len({reason for _, reason in rejected}), (warnings, rejected)

    assert telemetry.count("telemetry.llm_calls") == counts["inserted"]
    audit = telemetry.query(
        "select coalesce(sum(rows_read), 0), coalesce(sum(inserted), 0), coalesce(sum(duplicates), 0), "
        "coalesce(sum(rejected), 0), coalesce(sum(expired), 0) from telemetry_raw.load_audit"
    )[0]
    assert dict(zip(COUNT_KEYS, map(int, audit), strict=True)) == counts
    return counts | {"rejected_rows": rejected}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_file(telemetry, case: HostileCase):
    result = telemetry.cli("ingest", "csv", str(case.path), "--json")
    if case.expect == "file_error":
        _assert_refused(telemetry, result, case.error_names or str(case.path), case.error_mentions)
        return

    got = _assert_loaded(telemetry, result)
    rejected = got.pop("rejected_rows")
    assert got == case.counts, case.about
    assert [line for line, _ in rejected] == sorted(case.rejects), rejected
    wrong = [(line, reason, case.rejects[line]) for line, reason in rejected
             if not re.search(case.rejects[line], reason, re.IGNORECASE)]
    assert not wrong, wrong
    for statement, expected in case.checks:
        assert telemetry.query(statement) == expected, statement
    _assert_nothing_left_to_read(telemetry, case, result)


def _assert_nothing_left_to_read(telemetry, case: HostileCase, result) -> None:
    """A second run would read nothing; an unfinished last record is announced with its line, never read."""
    with psycopg.connect(telemetry.url, autocommit=True) as conn:
        plans = [plan_read(conn, read_header(path)) for path in resolve_paths(case.path)]
    assert all(plan.unchanged for plan in plans), [(p.path, p.reason, p.start, p.end) for p in plans]
    notices = [plan.pending_notice for plan in plans if plan.pending_notice]
    if case.pending_line is None:
        assert notices == [], notices
    else:
        assert [plan.pending_line for plan in plans if plan.pending_notice] == [case.pending_line], notices
        assert f": line {case.pending_line} has no line ending yet" in notices[0] or (
            f"the record that starts on line {case.pending_line} has not ended yet" in notices[0]), notices
    printed = [line for line in result.stderr.splitlines() if _PENDING.search(line)]
    assert printed in ([], [f"warning: {notice}" for notice in notices]), printed


@pytest.mark.parametrize(
    "path",
    CORPUS_FILES or [pytest.param(None, marks=pytest.mark.skip(reason="../shared/corpus is not beside the repo"))],
    ids=[p.name for p in CORPUS_FILES] or ["corpus-absent"],
)
def test_corpus_file_loads_what_maps_or_is_refused_clearly(telemetry, path: Path):
    result = telemetry.cli("ingest", "csv", str(path), "--json")
    _no_traceback(result)
    if path.name == CANONICAL_CORPUS_FILE:
        got = _assert_loaded(telemetry, result)
        assert got["rows_read"] == got["inserted"] == 5 and got["rejected_rows"] == [], got
        return
    assert result.returncode in (0, 2), (result.returncode, result.stderr[-4000:])
    if result.returncode == 2:
        _assert_refused(telemetry, result, str(path))
    else:
        _assert_loaded(telemetry, result)
