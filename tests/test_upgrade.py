"""Upgrades keep data: a database built by a released version keeps working with the current code.

Each released version (RELEASES: 0.1.0 and 0.2.0) is materialised from git into a temporary folder and run as
its own ``telemetry`` CLI (its own ``loader`` package, its own dbt project). It builds a database; then the
``telemetry`` of the current tree runs on that same database. Schema changes must migrate in place on that first
run, and nothing stored may be lost or counted again: the calls, marts, rejects and load audit of the release stay
exactly as they were in every column it had (but for the one documented change: a group of calls that are all
unpriced now costs NULL, not 0), files already read stay read, and new rows load as usual.

A missing released commit (e.g. a shallow clone) fails these tests: fetch the history (git fetch --unshallow).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from helpers import CANONICAL_HEADER, CORPUS, PROJECT_DIR, csv_text
from psycopg import sql

#: The released versions and their commits.
RELEASES = {"0.1.0": "ad715eb8361054616433d6a1c3eb977904c0030a", "0.2.0": "3da8f8c9cd5426916eabfd719ef0c80b69eb6195"}

MARTS = ("tokens_by_model", "cost_by_phase", "cost_by_prompt_name", "success_rate_by_phase", "daily_cost_trend",
         "error_summary")
# The marts 0.2.0 added; compared where the released version built them.
LATER_MARTS = ("daily_usage", "daily_usage_rollups", "cost_by_session", "failed_calls")
KEY = ("timestamp", "session_id", "prompt_name")
# Real files of ../shared/corpus that 0.1.0 loads with retention off (see its SOURCES.md).
CORPUS_FILES = ("viflo__telemetry_usage.csv", "portabilidad-rag__logs_llm_usage.csv")
# The 0.1.0 load_audit columns that say what a load read and counted.
AUDIT_COUNTS = ("load_id", "source_file", "sha256", "bytes", "byte_offset", "line_offset", "rows_read", "inserted",
                "duplicates", "rejected", "expired")

# A file of our own: an in-file duplicate (line 4 repeats line 2), a rejected row (line 5), a failed call,
# an unpriced model, and notes with quotes and a comma.
AGENT_ROWS = (
    "2026-11-20T10:00:00Z,gpt-4o,1000,200,true,execute,1500,Phase 2 upgrade fixture",
    "2026-11-20T10:05:00Z,claude-sonnet-4-5,2000,300,false,verify,2500,Phase 2.1 timeout after 30s",
    "2026-11-20T10:00:00Z,gpt-4o,1000,200,true,execute,1500,Phase 2 upgrade fixture",
    "2026-11-20T10:10:00Z,gpt-4o,not-a-number,10,true,plan,100,Phase 3 rejected row",
    '2026-11-20T10:15:00Z,unknown-model-x,50,5,,discuss,,"notes with ""quotes"", and a comma"',
)
APPENDED_ROWS = (
    "2026-11-21T08:00:00Z,gpt-4o,500,50,true,execute,700,Phase 4 appended after the upgrade",
    "2026-11-21T08:01:00Z,gpt-4o-mini,600,60,false,execute,800,Phase 4 appended after the upgrade: 429 rate limit",
)
NEW_HEADER = CANONICAL_HEADER + ",session_id"
# A file with a session_id column that 0.1.0 loads: two calls of one session, and one whose session_id is blank, so
# that 0.1.0 derived it from the values (the upgrade must tell them apart: llm_calls.session_id_derived).
SESSION_ROWS = (
    "2026-11-20T11:00:00Z,gpt-4o,10,2,true,plan,100,Phase 3 in a session,sess-released-1",
    "2026-11-20T11:01:00Z,gpt-4o-mini,20,4,false,verify,100,Phase 3 in a session: timeout,sess-released-1",
    "2026-11-20T11:02:00Z,gpt-4o,10,2,true,plan,100,Phase 3 without one,  ",
    "2026-11-20T11:03:00Z,unknown-model-y,10,2,true,plan,100,Phase 3 in a session of unpriced calls,sess-released-2",
)
NEW_ROWS = (
    "2026-11-24T09:00:00Z,gpt-4o-mini,1200,300,true,plan,900,Phase 7 upgrade check,sess-upgrade-1",
    "2026-11-24T09:01:00Z,claude-sonnet-4-5,800,150,false,verify,1200,Phase 7 HTTP 529 overloaded,sess-upgrade-1",
    "2026-11-24T09:02:00Z,mystery-model,10,1,true,quick,50,no phase here,sess-upgrade-2",
)
NEW_KEYS = {
    (datetime(2026, 11, 24, 9, 0, tzinfo=UTC), "sess-upgrade-1", "plan"),
    (datetime(2026, 11, 24, 9, 1, tzinfo=UTC), "sess-upgrade-1", "verify"),
    (datetime(2026, 11, 24, 9, 2, tzinfo=UTC), "sess-upgrade-2", "quick"),
}


# --- the released version, materialised from git -----------------------------------------------------------------


def _python_env(**settings: str) -> dict[str, str]:
    """The caller's environment without any TELEMETRY_* setting or PYTHONPATH, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_") and k != "PYTHONPATH"}
    env.update(settings)
    return env


def _which_loader(cwd: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """(loader/__init__.py, loader.config.PROJECT_DIR) as a subprocess with this cwd and env imports them."""
    code = "import loader, loader.config; print(loader.__file__); print(loader.config.PROJECT_DIR)"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env,
                           timeout=120)
    assert probe.returncode == 0, probe.stderr
    module, project = probe.stdout.split("\n")[:2]
    return Path(module).resolve(), Path(project).resolve()


@pytest.fixture(scope="session", params=sorted(RELEASES))
def released(request, tmp_path_factory) -> Path | str:
    """The source tree of each released version (see _materialise)."""
    return _materialise(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def released_0_1_0(tmp_path_factory) -> Path | str:
    """The source tree of 0.1.0 alone, for what only a database of 0.1.0 holds."""
    return _materialise("0.1.0", tmp_path_factory)


def _materialise(version: str, tmp_path_factory) -> Path | str:
    """The source tree of a released version, from git, checked to be what `python -m loader.cli` runs there.

    When the commit is missing, the reason (a string): the tests then fail with it (released_tree), rather than
    erroring in a fixture or skipping.
    """
    commit = RELEASES[version]
    found = subprocess.run(["git", "-C", str(PROJECT_DIR), "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        shallow = subprocess.run(["git", "-C", str(PROJECT_DIR), "rev-parse", "--is-shallow-repository"],
                                 capture_output=True, text=True).stdout.strip()
        return (
            f"the released version {version} (commit {commit}) is not in the git repository at "
            f"{PROJECT_DIR} (shallow clone: {shallow or 'not a git repository'}); the upgrade test needs it: run "
            f"`git fetch --unshallow` (or `git fetch origin {commit}`). {found.stderr.strip()}"
        )
    archive = subprocess.run(["git", "-C", str(PROJECT_DIR), "archive", "--format=tar", commit],
                             capture_output=True, timeout=120)
    assert archive.returncode == 0, archive.stderr.decode(errors="replace")
    tree = tmp_path_factory.mktemp(f"released-{version}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")

    # The current tree is installed editable; its finder comes after sys.path, so PYTHONPATH must win.
    module, project = _which_loader(tree, _python_env(PYTHONPATH=str(tree)))
    print(f"released {version} CLI imports {module}")
    assert module == tree / "loader" / "__init__.py" and project == tree, (
        f"the released CLI would import loader from {module} (project {project}), not from {tree}")
    module, project = _which_loader(tmp_path_factory.mktemp("new-cwd"), _python_env())
    assert module == PROJECT_DIR / "loader" / "__init__.py" and project == PROJECT_DIR, (
        f"the current CLI would import loader from {module} (project {project}), not from {PROJECT_DIR}")
    return tree


def released_tree(released: Path | str) -> Path:
    if isinstance(released, str):
        pytest.fail(released, pytrace=False)
    return released


# --- running both versions on one database ------------------------------------------------------------------------


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert "Traceback" not in result.stderr, result.stderr[-6000:]
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:], result.stderr[-4000:])
    return result


@dataclass
class Versions:
    """The released and the current `telemetry` CLI, with the same TELEMETRY_* settings."""

    released_tree: Path
    work: Path
    settings: dict[str, str] = field(default_factory=dict)

    def old(self, *args: str) -> subprocess.CompletedProcess:
        return ok(self._run(args, cwd=self.released_tree, PYTHONPATH=str(self.released_tree)))

    def new(self, *args: str) -> subprocess.CompletedProcess:
        cwd = self.work / "cwd"
        cwd.mkdir(parents=True, exist_ok=True)
        return ok(self._run(args, cwd=cwd))

    def _run(self, args, *, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "loader.cli", *args], capture_output=True, text=True,
                              cwd=cwd, env=_python_env(**self.settings, **extra), timeout=600)

    def old_ingest(self, path: Path) -> dict:
        return _checked_summary(self.old("ingest", "csv", str(path), "--json", "-q"))

    def new_ingest(self, path: Path) -> dict:
        return _checked_summary(self.new("ingest", "csv", str(path), "--json", "-q"))


def _checked_summary(result: subprocess.CompletedProcess) -> dict:
    summary = json.loads(result.stdout)
    for counts in [summary, *summary["files"]]:
        assert counts["rows_read"] == (counts["inserted"] + counts["duplicates"] + counts["rejected"]
                                       + counts["expired"]), summary
    return summary


def assert_nothing_new(summary: dict) -> None:
    """Nothing inserted: each file unchanged since it was read, or read again and every row already known."""
    assert summary["inserted"] == 0, summary
    for file in summary["files"]:
        assert file["read"] == "unchanged" or (
            file["duplicates"] == file["rows_read"] - file["rejected"] - file["expired"]), summary


def _versions(released_tree: Path, tmp_path: Path, url: str, retention: str | None = "0") -> Versions:
    settings = {"TELEMETRY_DATABASE_URL": url, "TELEMETRY_PGDATA": str(tmp_path / "unused-pgdata")}
    if retention is not None:
        settings["TELEMETRY_RETENTION_MONTHS"] = retention
    return Versions(released_tree, tmp_path, settings)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- snapshots of what 0.1.0 stored -------------------------------------------------------------------------------


def columns(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
        "order by ordinal_position", [schema, table]).fetchall()]


@dataclass
class Snapshot:
    """Everything the released version stored, in the columns it had."""

    columns: dict[str, list[str]]  # relation -> its released columns (llm_calls: key first)
    rows: dict[str, list[tuple]]

    @classmethod
    def take(cls, url: str, like: Snapshot | None = None) -> Snapshot:
        with psycopg.connect(url) as conn:
            if like is None:
                cols = {f"telemetry.{m}": columns(conn, "telemetry", m) for m in MARTS}
                cols.update({f"telemetry.{m}": found for m in LATER_MARTS if (found := columns(conn, "telemetry", m))})
                calls = columns(conn, "telemetry", "llm_calls")
                cols["telemetry.llm_calls"] = [*KEY, *(c for c in calls if c not in KEY)]
                cols["telemetry.rejected_rows"] = columns(conn, "telemetry", "rejected_rows")
                cols["telemetry_raw.load_audit"] = list(AUDIT_COUNTS)
            else:
                cols = like.columns
            for relation, wanted in cols.items():
                schema, table = relation.split(".")
                assert wanted, f"{relation} does not exist"
                missing = [c for c in wanted if c not in columns(conn, schema, table)]
                assert not missing, f"{relation} lost its released columns {missing}"
            rows = {relation: [_hashable(row) for row in conn.execute(_select(relation, wanted))]
                    for relation, wanted in cols.items()}
        return cls(cols, rows)

    def calls(self) -> list[tuple]:
        return self.rows["telemetry.llm_calls"]

    def keys(self) -> set[tuple]:
        return {row[:3] for row in self.calls()}

    def load_ids(self) -> set[int]:
        return {row[0] for row in self.rows["telemetry_raw.load_audit"]}


def _hashable(row: tuple) -> tuple:
    """A row with its arrays (cost_by_session's models, phases, prompt_names) as tuples."""
    return tuple(tuple(value) if isinstance(value, list) else value for value in row)


def _select(relation: str, wanted: list[str]) -> sql.Composed:
    schema, table = relation.split(".")
    if table == "llm_calls":
        order = sql.SQL(", ").join(map(sql.Identifier, KEY))
    elif table in ("rejected_rows", "load_audit"):
        order = sql.SQL(", ").join(map(sql.Identifier, ("load_id", "line_number") if table == "rejected_rows"
                                       else ("load_id",)))
    else:  # a mart: every column, so that the order is total
        order = sql.SQL(", ").join(sql.SQL(str(i)) for i in range(1, len(wanted) + 1))
    return sql.SQL("select {} from {} order by {}").format(
        sql.SQL(", ").join(map(sql.Identifier, wanted)), sql.Identifier(schema, table), order)


def assert_kept(before: Snapshot, after: Snapshot, *, marts: bool = True) -> None:
    """Every call, reject and audit row of the release is still there, unchanged in its released columns (the
    landing rows are not: once a load is done, what its rows became is kept instead; assert_released)."""
    old_keys = before.keys()
    kept = [row for row in after.calls() if row[:3] in old_keys]
    assert kept == before.calls(), _diff(before.calls(), kept)
    old_loads = before.load_ids()
    for relation in ("telemetry.rejected_rows", "telemetry_raw.load_audit"):  # load_id first
        kept = [row for row in after.rows[relation] if row[0] in old_loads]
        assert kept == before.rows[relation], (relation, _diff(before.rows[relation], kept))
    if marts:
        for relation in (r for r in before.columns if r.removeprefix("telemetry.") in MARTS + LATER_MARTS):
            names = before.columns[relation]
            expected, got = unknown_costs(names, before.rows[relation]), unknown_costs(names, after.rows[relation])
            assert Counter(got) == Counter(expected), (relation, _diff(expected, got))


def assert_released(url: str) -> None:
    """The released version's landing and typed rows (a copy of every row it read) are gone, their space given
    back, and the tables are unlogged work tables now; rejected_rows is a table that keeps the rejects' text."""
    with psycopg.connect(url) as conn:
        for relation in ("telemetry_raw.usage_rows", "telemetry.int_usage_rows_typed"):
            persistence, size = conn.execute(
                "select relpersistence, pg_relation_size(oid) from pg_class where oid = to_regclass(%s)",
                [relation]).fetchone()
            assert (persistence, size) == ("u", 0), relation
        assert conn.execute("select relkind from pg_class where oid = 'telemetry.rejected_rows'::regclass"
                            ).fetchone() == ("r",)
        for relation in ("telemetry_raw.usage_rows", "telemetry.int_usage_rows_typed"):  # one BRIN index each
            assert [r[0] for r in conn.execute(
                "select a.amname from pg_index as i join pg_class as c on c.oid = i.indexrelid "
                "join pg_am as a on a.oid = c.relam where i.indrelid = %s::regclass", [relation])] == ["brin"]


def unknown_costs(names: list[str], rows: list[tuple]) -> list[tuple]:
    """The released versions summed a group of calls that were all unpriced to an estimated cost of 0; the new
    code makes it NULL (unknown), and changes nothing else. A mart that counts its unpriced calls tells which
    rows; in one that does not (success_rate_by_phase), a cost of 0 and NULL are taken as one."""
    if "estimated_cost_usd" not in names:
        return rows
    cost = names.index("estimated_cost_usd")
    if {"calls", "unpriced_calls"} <= set(names):
        calls, unpriced = names.index("calls"), names.index("unpriced_calls")
        unknown = [bool(row[calls]) and row[unpriced] == row[calls] for row in rows]
    else:
        unknown = [row[cost] == 0 for row in rows]
    return [tuple(None if i == cost and gone else value for i, value in enumerate(row))
            for row, gone in zip(rows, unknown, strict=True)]


def _diff(expected: list[tuple], got: list[tuple]) -> str:
    missing = [r for r in expected if r not in got][:5]
    extra = [r for r in got if r not in expected][:5]
    return f"{len(expected)} rows expected, {len(got)} found; missing {missing}; unexpected {extra}"


def llm_calls_totals(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
            "coalesce(sum(total_tokens), 0), coalesce(sum(estimated_cost_usd), 0), "
            "count(*) filter (where estimated_cost_usd is null), count(*) filter (where success), "
            "count(*) filter (where not success) from telemetry.llm_calls").fetchone()
    names = ("calls", "input_tokens", "output_tokens", "total_tokens", "estimated_cost_usd", "unpriced_calls",
             "successes", "failures")
    return dict(zip(names, row, strict=True))


def stats_totals(result: subprocess.CompletedProcess) -> dict[str, object]:
    """`stats --json` totals, numbers read as Decimal (exactly as printed)."""
    return json.loads(result.stdout, parse_float=Decimal)["totals"]


def same_number(printed: object, stored: object) -> bool:
    """A stats --json number against the database's exact value.

    0.1.0 prints numeric values as JSON floats (the repr of float(value)); printing them exactly, as a number or
    a string, is fine too. Integers must match exactly.
    """
    if isinstance(printed, str):
        printed = Decimal(printed)
    if isinstance(stored, int) or stored is None:
        return printed == stored
    return printed == stored or printed == Decimal(repr(float(stored)))


def same_stats(result: subprocess.CompletedProcess, expected: dict[str, object]) -> bool:
    totals = stats_totals(result)
    wrong = {k: (totals.get(k), v) for k, v in expected.items() if not same_number(totals.get(k), v)}
    assert not wrong, f"stats --json totals differ from the sums over llm_calls (printed, stored): {wrong}"
    return True


# --- tests --------------------------------------------------------------------------------------------------------


def test_new_code_keeps_and_extends_a_database_built_by_the_released_version(database_url, released, tmp_path):
    versions = _versions(released_tree(released), tmp_path, database_url)
    examples = versions.released_tree / "examples" / "usage.csv"
    corpus = [CORPUS / name for name in CORPUS_FILES if (CORPUS / name).is_file()]
    agent = write(tmp_path / "inbox" / "agent-usage.csv", csv_text(*AGENT_ROWS))

    # 0.1.0 builds the database.
    loaded = versions.old_ingest(examples)
    assert (loaded["rows_read"], loaded["inserted"]) == (60, 60), loaded
    for path in corpus:
        loaded = versions.old_ingest(path)
        assert loaded["inserted"] > 0 and loaded["rejected"] == loaded["expired"] == 0, (path.name, loaded)
    loaded = versions.old_ingest(agent)
    assert (loaded["rows_read"], loaded["inserted"], loaded["duplicates"], loaded["rejected"]) == (5, 3, 1, 1), loaded
    sessions_file = write(tmp_path / "inbox" / "sessions.csv", csv_text(*SESSION_ROWS, header=NEW_HEADER))
    loaded = versions.old_ingest(sessions_file)
    assert (loaded["rows_read"], loaded["inserted"]) == (4, 4), loaded
    before_totals = llm_calls_totals(database_url)
    assert same_stats(versions.old("stats", "--json"), before_totals)
    before = Snapshot.take(database_url)
    assert len(before.calls()) == 60 + 3 + 4 + sum(len(p.read_text().splitlines()) - 1 for p in corpus)
    assert len(before.rows["telemetry.rejected_rows"]) == 1

    # (a) The current code on the same files: the first run migrates; nothing is inserted or counted again.
    for path in [examples, *corpus, agent, sessions_file]:
        assert_nothing_new(versions.new_ingest(path))
    assert_released(database_url)
    # The migration told the calls 0.1.0 stored with a session_id from the CSV from those with a derived one, and
    # only the former make sessions.
    with psycopg.connect(database_url) as conn:
        origin = conn.execute("select session_id, session_id_derived from telemetry.llm_calls").fetchall()
        sessions = conn.execute("select session_id, calls, estimated_cost_usd is null from telemetry.cost_by_session "
                                "order by 1").fetchall()
        cost_indexes = [r[0] for r in conn.execute(
            "select indexdef from pg_indexes where schemaname = 'telemetry' and tablename = 'cost_by_session' "
            "and indexdef like '%estimated_cost_usd%'")]
    assert sorted(s for s, derived in origin if derived is not True) == [
        "sess-released-1", "sess-released-1", "sess-released-2"]
    assert all(derived is True for s, derived in origin if not s.startswith("sess-released-")), origin
    # A session whose calls are all unpriced costs NULL (0.2.0 stored 0), and the index the dashboard orders
    # sessions by puts those last (0.2.0's index was replaced).
    assert sessions == [("sess-released-1", 2, False), ("sess-released-2", 1, True)]
    assert len(cost_indexes) == 1 and "NULLS FIRST" in cost_indexes[0], cost_indexes
    copy = tmp_path / "inbox" / "usage-copy.csv"
    shutil.copyfile(examples, copy)
    again = versions.new_ingest(copy)
    assert (again["rows_read"], again["inserted"], again["duplicates"], again["rejected"]) == (60, 0, 60, 0), again
    after = Snapshot.take(database_url, like=before)
    assert len(after.calls()) == len(before.calls())
    assert_kept(before, after)
    new_rejects = [r for r in after.rows["telemetry.rejected_rows"] if r[0] not in before.load_ids()]
    assert len(new_rejects) == 0 or all(r[1] == str(agent) for r in new_rejects), new_rejects
    assert llm_calls_totals(database_url) == before_totals
    assert same_stats(versions.new("stats", "--json"), before_totals)

    # (b) A new file with new calls (and one call 0.1.0 stored): exactly the new ones are inserted.
    old_key = next(k for k in sorted(before.keys()) if k[2] != "(none)")
    known = f"{old_key[0].astimezone(UTC).isoformat()},gpt-4o,1,1,true,{old_key[2]},1,already stored,{old_key[1]}"
    fresh = versions.new_ingest(write(tmp_path / "inbox" / "new-calls.csv", csv_text(*NEW_ROWS, known,
                                                                                     header=NEW_HEADER)))
    assert (fresh["rows_read"], fresh["inserted"], fresh["duplicates"], fresh["rejected"]) == (4, 3, 1, 0), fresh
    after = Snapshot.take(database_url, like=before)
    assert after.keys() - before.keys() == NEW_KEYS
    assert_kept(before, after, marts=False)

    # (d) A file 0.1.0 read grows: only the appended lines are read (its checkpoint survived the upgrade).
    with agent.open("a", encoding="utf-8") as f:
        f.write("\n".join(APPENDED_ROWS) + "\n")
    grown = versions.new_ingest(agent)
    assert [file["read"] for file in grown["files"]] == ["grown"], grown
    assert (grown["rows_read"], grown["inserted"], grown["duplicates"], grown["rejected"]) == (2, 2, 0, 0), grown
    after = Snapshot.take(database_url, like=before)
    appended = sorted(set(after.keys()) - before.keys() - NEW_KEYS)
    assert [k[0] for k in appended] == [datetime(2026, 11, 21, 8, 0, tzinfo=UTC), datetime(2026, 11, 21, 8, 1,
                                                                                           tzinfo=UTC)]
    with psycopg.connect(database_url) as conn:
        lines = [r[0] for r in conn.execute(
            "select source_line_number from telemetry.llm_calls where \"timestamp\" >= '2026-11-21T08:00:00Z' "
            "and \"timestamp\" < '2026-11-21T09:00:00Z' order by 1").fetchall()]
    assert lines == [len(AGENT_ROWS) + 2, len(AGENT_ROWS) + 3]  # header + rows: line numbers continue
    assert_kept(before, after, marts=False)
    assert len(after.calls()) == len(before.calls()) + len(NEW_KEYS) + len(APPENDED_ROWS)

    # (c) stats --json totals are the sums over llm_calls, exactly.
    assert same_stats(versions.new("stats", "--json"), llm_calls_totals(database_url))

    # (e) prune --dry-run works on the upgraded database and deletes nothing.
    report = json.loads(versions.new("prune", "--dry-run", "--json").stdout)
    assert (report["cutoff"], report["calls"], report["dry_run"]) == (None, 0, True), report
    report = json.loads(versions.new("prune", "--dry-run", "--json", "--months", "6").stdout)
    with psycopg.connect(database_url) as conn:
        older = conn.execute('select count(*) from telemetry.llm_calls where "timestamp" < %s',
                             [datetime.fromisoformat(report["cutoff"])]).fetchone()[0]
    assert report["dry_run"] is True and report["calls"] == older, report
    if corpus:  # their calls are from 2025 and early 2026
        assert older > 0
    assert Snapshot.take(database_url, like=before).rows == after.rows


def test_upgrade_with_the_default_retention_keeps_expired_calls_out(database_url, released, tmp_path):
    versions = _versions(released_tree(released), tmp_path, database_url, retention=None)  # default: 6 months
    now = datetime.now(UTC).replace(microsecond=0)

    def at(days_ago: float) -> str:
        return (now - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = [f"{at(400)},gpt-4o,100,10,true,execute,1000,Phase 1 old",
            f"{at(250)},gpt-4o,100,10,true,execute,1000,Phase 1 older than the window",
            f"{at(3)},gpt-4o,100,10,true,execute,1000,Phase 2 recent",
            f"{at(2)},claude-sonnet-4-5,200,20,false,verify,1000,Phase 2 recent failure",
            f"{at(1)},gpt-4o-mini,300,30,true,plan,1000,Phase 3 recent"]
    mixed = write(tmp_path / "inbox" / "mixed.csv", csv_text(*rows))
    loaded = versions.old_ingest(mixed)
    assert (loaded["rows_read"], loaded["inserted"], loaded["expired"]) == (5, 3, 2), loaded
    before = Snapshot.take(database_url)

    assert_nothing_new(versions.new_ingest(mixed))
    copy = write(tmp_path / "inbox" / "mixed-copy.csv", mixed.read_text())
    again = versions.new_ingest(copy)
    assert (again["rows_read"], again["inserted"], again["duplicates"], again["expired"]) == (5, 0, 3, 2), again
    assert_kept(before, Snapshot.take(database_url, like=before))
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from telemetry.llm_calls").fetchone()[0] == 3

    report = json.loads(versions.new("prune", "--dry-run", "--json").stdout)
    assert (report["calls"], report["raw_rows"], report["dry_run"]) == (0, 0, True), report
    assert same_stats(versions.new("stats", "--json"), llm_calls_totals(database_url))


def test_history_0_1_0_kept_without_retention_survives_a_plain_first_run(database_url, released_0_1_0, tmp_path):
    """0.1.0 pruned with whatever window each run had. A database it filled with TELEMETRY_RETENTION_MONTHS=0
    holds calls older than the default window; the first run of this version without the variable (a plain cron
    job) stores "keep everything" instead of pruning them, and says how to choose a window."""
    kept_everything = _versions(released_tree(released_0_1_0), tmp_path, database_url, retention="0")
    plain = _versions(released_tree(released_0_1_0), tmp_path, database_url, retention=None)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [f"{(now - timedelta(days=days)):%Y-%m-%dT%H:%M:%SZ},gpt-4o,100,10,true,execute,1000,Phase 1 day {days}"
            for days in (400, 250, 3)]
    history = write(tmp_path / "inbox" / "history.csv", csv_text(*rows))
    assert kept_everything.old_ingest(history)["inserted"] == 3
    before = Snapshot.take(database_url)

    first = plain.new("ingest", "csv", str(history), "--json", "-q")
    assert_nothing_new(_checked_summary(first))
    assert "keeps everything until you choose a window, e.g. telemetry retention set 6" in first.stderr
    assert first.stderr.count("\n") == 1, first.stderr
    assert_kept(before, Snapshot.take(database_url, like=before))
    status = json.loads(plain.new("db", "status", "--json").stdout)
    assert status["retention"]["months"] == 0, status
    # from then on the stored window is the database's, and choosing one applies it
    plain.new("retention", "set", "6")
    report = json.loads(plain.new("prune", "--json").stdout)
    assert report["calls"] == 2, report


def _stop_embedded(pgdata: Path) -> None:
    """Cleanup, whatever the code under test did: stop a server still running in pgdata (SIGINT = fast shutdown)."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def _embedded_calls(url: str, cols: list[str] | None = None) -> tuple[list[str], list[tuple]]:
    """llm_calls of the embedded database at url, in key order, in `cols` (default: all, key first)."""
    with psycopg.connect(url) as conn:
        cols = cols or [*KEY, *(c for c in columns(conn, "telemetry", "llm_calls") if c not in KEY)]
        return cols, conn.execute(_select("telemetry.llm_calls", cols)).fetchall()


@pytest.mark.parametrize("old_server", ["stopped", "left-running"])
def test_embedded_default_database_survives_the_upgrade(released, tmp_path, old_server):
    """No TELEMETRY_DATABASE_URL: the embedded server's data folder written by 0.1.0 works with the new code.

    "stopped" is the documented upgrade (db stop, then upgrade); "left-running" is what happens when a user
    upgrades without stopping the server that 0.1.0 leaves running between commands.
    """
    pgdata = tmp_path / "pgdata"
    versions = Versions(released_tree(released), tmp_path, {"TELEMETRY_PGDATA": str(pgdata),
                                                            "TELEMETRY_RETENTION_MONTHS": "0"})
    examples = versions.released_tree / "examples" / "usage.csv"
    new_url = None
    try:
        loaded = versions.old_ingest(examples)
        assert (loaded["rows_read"], loaded["inserted"]) == (60, 60), loaded
        old_url = versions.old("db", "url", "--show-password").stdout.strip()
        assert same_stats(versions.old("stats", "--json"), llm_calls_totals(old_url))
        cols, old_calls = _embedded_calls(old_url)
        old_totals = llm_calls_totals(old_url)
        if old_server == "stopped":
            versions.old("db", "stop")
            assert not (pgdata / "postmaster.pid").exists(), "0.1.0's db stop left the server running"

        assert_nothing_new(versions.new_ingest(examples))
        new_url = versions.new("db", "url", "--show-password").stdout.strip()
        assert _embedded_calls(new_url, cols)[1] == old_calls
        assert llm_calls_totals(new_url) == old_totals
        assert same_stats(versions.new("stats", "--json"), old_totals)
        versions.new("db", "stop")
        assert not (pgdata / "postmaster.pid").exists(), "db stop left the server running"
    finally:
        _stop_embedded(pgdata)
        if new_url:
            from loader import dbt

            shutil.rmtree(dbt.target_path(new_url), ignore_errors=True)
