"""The loader's own tables (loader/sql/schema.sql), the reader role, and the staging view the loader counts with.

All idempotent and cheap when nothing changed: the DDL runs only when its file changed, the staging view is
rebuilt only when its rules changed.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import psycopg
from psycopg import sql

from loader import dbt
from loader.config import PROJECT_DIR
from loader.contract import LOADER_STATE, READER_ROLE, STAGING_VIEW, get_state, relation_exists, set_state
from loader.errors import TelemetryError


def ensure_landing_tables(conn: psycopg.Connection) -> None:
    """Create the schemas, landing tables and the reader role when missing (idempotent).

    Skipped when the database already has this version of them: even an `if not exists` index statement takes
    a lock, which can wait on autovacuum and would slow every no-op run.
    """
    ddl = resources.files("loader").joinpath("sql/schema.sql").read_text()
    digest = hashlib.sha256(ddl.encode()).hexdigest()
    if relation_exists(conn, LOADER_STATE) and get_state(conn, "landing_schema") == digest:
        return
    conn.execute(ddl)
    ensure_reader_role(conn)
    set_state(conn, "landing_schema", digest)


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
    if relation_exists(conn, STAGING_VIEW) and get_state(conn, "staging_rules") == digest:
        return
    # The body is SQL compiled from our own dbt project, not user input.
    body = sql.SQL(dbt.compiled_sql(url, STAGING_VIEW.name))  # type: ignore[arg-type]
    try:
        with conn.transaction():
            conn.execute(sql.SQL("create or replace view {} as ").format(STAGING_VIEW) + body)
    except psycopg.errors.InvalidTableDefinition:  # columns changed: views built on it are rebuilt by dbt
        conn.execute(sql.SQL("drop view {} cascade").format(STAGING_VIEW))
        conn.execute(sql.SQL("create view {} as ").format(STAGING_VIEW) + body)
    set_state(conn, "staging_rules", digest)
