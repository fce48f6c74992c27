"""The loader's own tables, the dashboard role, and the staging view the loader reads its counts from."""

from __future__ import annotations

import hashlib
from importlib import resources

import psycopg
from psycopg import sql

from loader import dbt
from loader.config import PROJECT_DIR
from loader.errors import TelemetryError

STAGING_MODEL = "stg_telemetry__usage_rows"
READER_ROLE = "telemetry_reader"


def relation_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether a table or view such as 'telemetry.llm_calls' exists."""
    return conn.execute("select to_regclass(%s) is not null", [name]).fetchone()[0]


def ensure_landing_tables(conn: psycopg.Connection) -> None:
    """Create the schemas, landing tables and the reader role when missing (idempotent).

    Skipped when the database already has this version of them: even an `if not exists` index statement takes
    a lock, which can wait on autovacuum and would slow every no-op run.
    """
    ddl = resources.files("loader").joinpath("sql/schema.sql").read_text()
    digest = hashlib.sha256(ddl.encode()).hexdigest()
    if relation_exists(conn, "telemetry_raw.loader_state"):
        current = conn.execute("select value from telemetry_raw.loader_state where key = 'landing_schema'").fetchone()
        if current and current[0] == digest:
            return
    conn.execute(ddl)
    ensure_reader_role(conn)
    conn.execute(
        "insert into telemetry_raw.loader_state (key, value) values ('landing_schema', %s) "
        "on conflict (key) do update set value = excluded.value",
        [digest],
    )


def ensure_reader_role(conn: psycopg.Connection) -> None:
    """The role dbt grants SELECT on the marts to (dbt_project.yml); roles are per server, not per database."""
    if conn.execute("select 1 from pg_roles where rolname = %s", [READER_ROLE]).fetchone():
        return
    try:
        with conn.transaction():
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(READER_ROLE)))
    except psycopg.errors.DuplicateObject:
        pass  # created by a concurrent load on another database of the same server
    except psycopg.errors.InsufficientPrivilege:
        user = conn.info.user
        raise TelemetryError(
            f"role {READER_ROLE} does not exist and user {user} may not create roles; ask an administrator "
            f"to run: CREATE ROLE {READER_ROLE} NOLOGIN"
        ) from None


def staging_rules_digest() -> str:
    """A digest of everything the staging view is compiled from (its model and the macros)."""
    digest = hashlib.sha256()
    for path in sorted([*(PROJECT_DIR / "models" / "staging").glob("*.sql"), *(PROJECT_DIR / "macros").rglob("*.sql")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def price_seed_digest() -> str:
    return hashlib.sha256((PROJECT_DIR / "seeds" / "model_prices.csv").read_bytes()).hexdigest()


def ensure_staging_view(conn: psycopg.Connection, url: str) -> None:
    """Make sure the staging view exists and follows the current rules.

    The loader counts rejects and duplicates through this view, so its rules must be dbt's rules: on a new
    database, or after the rules changed, it is (re)built from dbt's compiled SQL before any count. dbt's own
    runs replace it with the same definition.
    """
    digest = staging_rules_digest()
    exists = relation_exists(conn, f"telemetry.{STAGING_MODEL}")
    built_from = conn.execute("select value from telemetry_raw.loader_state where key = 'staging_rules'").fetchone()
    if exists and built_from and built_from[0] == digest:
        return
    # The body is SQL compiled from our own dbt project, not user input.
    body = sql.SQL(dbt.compiled_sql(url, STAGING_MODEL))  # type: ignore[arg-type]
    view = sql.Identifier("telemetry", STAGING_MODEL)
    try:
        with conn.transaction():
            conn.execute(sql.SQL("create or replace view {} as ").format(view) + body)
    except psycopg.errors.InvalidTableDefinition:  # columns changed: views built on it are rebuilt by dbt
        conn.execute(sql.SQL("drop view {} cascade").format(view))
        conn.execute(sql.SQL("create view {} as ").format(view) + body)
    conn.execute(
        "insert into telemetry_raw.loader_state (key, value) values ('staging_rules', %s) "
        "on conflict (key) do update set value = excluded.value",
        [digest],
    )
