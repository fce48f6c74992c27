"""The load lifecycle around the files: the lock, recovery of interrupted loads, and running dbt.

Every command that changes the database (``ingest csv``, ``prune``, ``prices reprice``) opens it through
``locked_database``: one connection holding the advisory lock that serialises them; each then makes sure the
loader's tables are in place and recovers any load a crash left half-way (``recover_interrupted_loads``, see the
state machine in ``loader.contract``). Then:
``run_models`` builds llm_calls and everything downstream of the typed rows (and drops what earlier versions
built and this one does not), ``rebuild_marts`` only what is downstream of llm_calls (after an interrupted load,
or for the sessions that retention cut in two), and ``release_landed_rows`` empties the landing and typed tables
once every load is done.

What is kept. A row is written durably once: as a call in llm_calls (with its lineage: load_id and
source_line_number), as a reject in rejected_rows or a conflict in call_conflicts (with its raw text). The landing
table and the typed rows are unlogged work tables that hold only the loads in flight: no WAL is written for
them, and they are emptied when no load is left in flight. Unlogged tables are emptied by PostgreSQL itself
after a crash of the server; a load that had not reached 'done' then lost its rows, and is undone and read
again from its file (``recover_interrupted_loads``), so a load whose landing rows are gone is always done.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from loader import dbt
from loader.config import PROJECT_DIR, Settings
from loader.connection import connect
from loader.contract import (
    CALL_CONFLICTS,
    FILE_CHECKPOINTS,
    LLM_CALLS,
    LOAD_AUDIT,
    PRICE_SEED,
    REJECTED_ROWS,
    RETIRED,
    STAGING_VIEW,
    TYPED_ROWS,
    USAGE_ROWS,
    LoadStatus,
    Relation,
    dbt_vars,
    get_state,
    is_table,
    relation_exists,
    set_state,
)
from loader.database import resolve_url
from loader.outcomes import LoadResult, measure_outcomes
from loader.progress import Progress
from loader.schema import price_seed_digest, staging_rules_digest

#: Advisory lock key shared by every ingest and prune on a database ('llm-tele' as a number).
INGEST_LOCK_KEY = 0x6C6C6D2D74656C65


def acquire_lock(conn: psycopg.Connection, progress: Progress) -> None:
    """Take the ingest lock, saying so when another ingest holds it."""
    got = conn.execute("select pg_try_advisory_lock(%s)", [INGEST_LOCK_KEY]).fetchone()[0]
    if not got:
        progress("another ingest is running on this database; waiting for it to finish...")
        conn.execute("select pg_advisory_lock(%s)", [INGEST_LOCK_KEY])
        progress("the other ingest finished; continuing")


@contextmanager
def locked_database(settings: Settings, progress: Progress) -> Iterator[tuple[psycopg.Connection, str]]:
    """An autocommit connection to the configured database, holding the ingest lock, and its URL.

    The lock is a session lock: it goes with the connection, also when the process dies.
    """
    url = resolve_url(settings)
    with connect(url, autocommit=True) as conn:
        acquire_lock(conn, progress)
        yield conn, url


def recover_interrupted_loads(
    conn: psycopg.Connection, url: str, cutoff: datetime | None, progress: Progress
) -> None:
    """Undo loads a crash left 'loaded' (raw rows in, llm_calls not), finish 'modelled' ones.

    A 'modelled' load whose typed rows are not all there (a crash of the server empties unlogged tables) cannot
    be finished: its rejects and conflicts are gone with them. It is undone too, its calls with it, and the marts
    are rebuilt. Runs under the ingest lock, so no other load is in progress. An undone load's files lose their
    checkpoint, so the next read takes them whole and deduplication restores exact counts.
    """
    with conn.transaction():
        pending = [r[0] for r in conn.execute(
            sql.SQL("select load_id from {} where status = %s order by load_id for update").format(LOAD_AUDIT),
            [LoadStatus.LOADED.value],
        )]
        emptied = _modelled_loads_without_rows(conn)
        if pending or emptied:
            undone = sorted(pending + emptied)
            progress(f"undoing {len(undone)} interrupted load(s): {', '.join(map(str, undone))}")
            for relation in (USAGE_ROWS, TYPED_ROWS, LLM_CALLS, CALL_CONFLICTS, REJECTED_ROWS):
                if is_table(conn, relation):
                    conn.execute(sql.SQL("delete from {} where load_id = any(%s)").format(relation), [undone])
            conn.execute(
                sql.SQL("delete from {checkpoints} as c using {audit} as a "
                        "where a.load_id = any(%s) and a.source_file = c.source_file")
                .format(checkpoints=FILE_CHECKPOINTS, audit=LOAD_AUDIT),
                [undone],
            )
            conn.execute(
                sql.SQL("update {} set status = %s, finished_at = clock_timestamp() where load_id = any(%s)")
                .format(LOAD_AUDIT),
                [LoadStatus.ABORTED.value, undone],
            )
    if emptied:
        progress("rebuilding the marts without the undone loads' calls")
        rebuild_marts(url, cutoff, full_refresh=True)
    modelled = [LoadResult(source_file=source, load_id=load_id) for load_id, source in conn.execute(
        sql.SQL("select load_id, source_file from {} where status = %s order by load_id").format(LOAD_AUDIT),
        [LoadStatus.MODELLED.value],
    )]
    if modelled:
        progress(f"finishing {len(modelled)} interrupted load(s): rebuilding the marts")
        rebuild_marts(url, cutoff)
        with conn.transaction():
            measure_outcomes(conn, modelled, cutoff)
    if pending or emptied or modelled:
        release_landed_rows(conn)


def _modelled_loads_without_rows(conn: psycopg.Connection) -> list[int]:
    """'modelled' loads that have fewer typed rows than they read (locked, in the caller's transaction)."""
    if not relation_exists(conn, TYPED_ROWS):
        return []
    return [r[0] for r in conn.execute(
        sql.SQL("select a.load_id from {audit} as a where a.status = %s and a.rows_read > "
                "(select count(*) from {typed} as t where t.load_id = a.load_id) order by a.load_id for update")
        .format(audit=LOAD_AUDIT, typed=TYPED_ROWS),
        [LoadStatus.MODELLED.value],
    )]


def release_landed_rows(conn: psycopg.Connection) -> None:
    """Empty the landing and typed tables when no load is in flight (every load is done or aborted).

    What a done load's rows became is kept elsewhere (llm_calls, rejected_rows, call_conflicts), so its landing
    and typed rows are no copy anyone reads: TRUNCATE gives their space back at once (a DELETE would leave it to
    VACUUM). Runs under the ingest lock. A table an earlier version created logged is made unlogged here, while
    it is empty (the change rewrites the table). Nothing is emptied while rejected_rows is still the view an
    earlier version built: the rejects' text then lives only in the landing table.
    """
    in_flight = conn.execute(
        sql.SQL("select exists (select 1 from {} where status in (%s, %s))").format(LOAD_AUDIT),
        [LoadStatus.LOADED.value, LoadStatus.MODELLED.value],
    ).fetchone()[0]
    if in_flight or not is_table(conn, REJECTED_ROWS):
        return
    for relation in (USAGE_ROWS, TYPED_ROWS):
        if not is_table(conn, relation):
            continue
        if conn.execute(sql.SQL("select exists (select 1 from {})").format(relation)).fetchone()[0]:
            conn.execute(sql.SQL("truncate {}").format(relation))
        if _persistence(conn, relation) == "p":
            conn.execute(sql.SQL("alter table {} set unlogged").format(relation))


def _persistence(conn: psycopg.Connection, relation: Relation) -> str:
    """'p' (logged), 'u' (unlogged) or 't' (temporary)."""
    return conn.execute("select relpersistence from pg_class where oid = to_regclass(%s)",
                        [str(relation)]).fetchone()[0]


def run_models(conn: psycopg.Connection, url: str, cutoff: datetime | None, progress: Progress, *,
               idle: list[str] | None = None) -> None:
    """Build llm_calls and everything downstream of the typed rows with dbt.

    Views (the staging view among them) and the price seed are rebuilt only when their files changed or when they
    are missing: each dbt node costs time on every load, and a view whose SQL did not change is already what dbt
    would create. ``idle``: marts the batch cannot change (loader.idle_models), left out of the run unless the
    project changed since the last run (then everything is built).
    """
    fresh = {"staging_rules": staging_rules_digest(), "price_seed": price_seed_digest(), "views": _views_digest()}
    select, known = _selection(conn, url, "int_usage_rows_typed+", views_digest=fresh["views"])
    exclude = ["--exclude", *idle] if idle and known else []
    if get_state(conn, "staging_rules") != fresh["staging_rules"] or not relation_exists(conn, STAGING_VIEW):
        select.append(STAGING_VIEW.name)
    if get_state(conn, "price_seed") != fresh["price_seed"] or not relation_exists(conn, PRICE_SEED):
        select.append(PRICE_SEED.name)
    all_loads = not relation_exists(conn, LLM_CALLS) and _loads_past_loaded(conn)
    dbt.invoke(
        url,
        ["build", "--resource-type", "seed", "--resource-type", "model", "--select", *select, *exclude],
        dbt_vars=dbt_vars(cutoff, all_loads=all_loads),
        on_node=lambda name, status: progress(f"  {name}: {status}"),
        write_json=not known,  # the manifest of the project as it is is there already
    )
    for relation in RETIRED:  # what earlier versions built and this one replaced
        conn.execute(sql.SQL("drop table if exists {}").format(relation))
    for key, value in fresh.items():
        set_state(conn, key, value)


#: Loads this large are followed by ANALYZE of the tables they grew, rather than waiting for autovacuum.
ANALYZE_AFTER_ROWS = 100_000


def refresh_statistics(conn: psycopg.Connection, rows_read: int) -> None:
    """After a large load, the planner's statistics of the tables it grew: without them the next run's
    retention and the dashboard's queries can be planned as if the tables were empty (a scan of every call to
    delete a few). A sample of 30,000 rows a table: about 0.1 s each, against tens of seconds of loading."""
    if rows_read >= ANALYZE_AFTER_ROWS:
        conn.execute(sql.SQL("analyze {}").format(LLM_CALLS))


def _loads_past_loaded(conn: psycopg.Connection) -> bool:
    """Whether a load has gone past 'loaded' (so that llm_calls, when missing, must be rebuilt from every load).

    On a new database every load is 'loaded', and the batch of the loads not yet modelled is every load: dbt's
    variables then stay those of the next runs, and dbt keeps its partial parse (a change of --vars makes it
    parse the whole project again, about 2 s).
    """
    return conn.execute(
        sql.SQL("select exists (select 1 from {} where status not in (%s, %s))").format(LOAD_AUDIT),
        [LoadStatus.LOADED.value, LoadStatus.ABORTED.value],
    ).fetchone()[0]


def rebuild_marts(url: str, cutoff: datetime | None, *, only: list[str] | None = None,
                  full_refresh: bool = False) -> None:
    """Bring what is downstream of llm_calls up to date with it (``only``: just these models); views are left
    alone, as in run_models. ``full_refresh``: rebuild the marts from every call (after calls were repriced or
    taken out); the durable models (llm_calls, rejected_rows, call_conflicts) are never rebuilt from scratch."""
    with connect(url, autocommit=True) as conn:
        if only:
            select = only
        elif full_refresh:  # a table rebuilt from scratch drops the views over it: they are rebuilt too
            select = ["llm_calls+"]
        else:
            select, _ = _selection(conn, url, "llm_calls+", views_digest=_views_digest())
        dbt.invoke(url, ["run", "--select", *select, "--exclude", "llm_calls",
                         *(["--full-refresh"] if full_refresh else [])], dbt_vars=dbt_vars(cutoff))


def reprice_calls(url: str, cutoff: datetime | None) -> None:
    """Price the stored calls again with the seed in the database (dbt's reprice_calls macro), in place."""
    dbt.invoke(url, ["run-operation", "reprice_calls"], dbt_vars=dbt_vars(cutoff))


def models_current(conn: psycopg.Connection) -> bool:
    """Whether the last dbt run on this database built the project as it is now (else, after an upgrade or an
    edit of the models, the next run must build them even when it loads nothing)."""
    return _views_current(conn, _views_digest())


def _views_digest() -> str:
    """A digest of everything a model is compiled from: the models, the macros and dbt_project.yml."""
    digest = hashlib.sha256()
    paths = [*(PROJECT_DIR / "models").rglob("*"), *(PROJECT_DIR / "macros").rglob("*"),
             PROJECT_DIR / "dbt_project.yml"]
    for path in sorted(p for p in paths if p.is_file()):
        digest.update(str(path.relative_to(PROJECT_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _views_current(conn: psycopg.Connection, digest: str) -> bool:
    return get_state(conn, "views") == digest


def _selection(conn: psycopg.Connection, url: str, root: str, *, views_digest: str) -> tuple[list[str], bool]:
    """dbt's --select for ``root`` and what is downstream of it, without the views that need no rebuild; and
    whether dbt's manifest of the last run describes the project as it is (so that it need not be written again).

    A view is rebuilt when the project's files changed since the last run (its SQL may have), or when it is missing
    (e.g. on a new database); otherwise only the tables and incremental models downstream of ``root`` are built.
    The views are listed from dbt's manifest of the last run on this database, which matches the files when the
    digest does (the digest is stored only after a successful run).
    """
    views = None if not _views_current(conn, views_digest) else _manifest_views(url)
    if views is None:
        return [root], False
    present = {row[0] for row in conn.execute(
        "select n.nspname || '.' || c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace "
        "where c.relkind = 'v' and n.nspname || '.' || c.relname = any(%s)", [list(views.values())])}
    missing = [name for name, relation in views.items() if relation not in present and name != STAGING_VIEW.name]
    return [f"{root},config.materialized:incremental", f"{root},config.materialized:table", *missing], True


def _manifest_views(url: str) -> dict[str, str] | None:
    """The project's views as {model name: 'schema.relation'}, from dbt's manifest (None when there is none)."""
    manifest = Path(dbt.target_path(url)) / "manifest.json"
    try:
        nodes = json.loads(manifest.read_text())["nodes"].values()
    except (OSError, ValueError, KeyError):
        return None
    return {node["name"]: f"{node['schema']}.{node.get('alias') or node['name']}" for node in nodes
            if node.get("resource_type") == "model" and node.get("config", {}).get("materialized") == "view"}
