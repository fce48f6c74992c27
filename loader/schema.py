"""The loader's own tables, the dashboard role, and the staging view the loader reads its counts from."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql

from loader import dbt
from loader.errors import TelemetryError

STAGING_MODEL = "stg_telemetry__usage_rows"
READER_ROLE = "telemetry_reader"


def ensure_landing_tables(conn: psycopg.Connection) -> None:
    """Create the schemas, landing tables and the reader role when missing (idempotent)."""
    conn.execute(resources.files("loader").joinpath("sql/schema.sql").read_text())
    ensure_reader_role(conn)


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


def ensure_staging_view(conn: psycopg.Connection, url: str) -> None:
    """Create dbt's staging view from its compiled SQL when dbt has not built it yet.

    The loader counts rejects and duplicates through this view, so its rules are dbt's rules; on a new
    database the view must exist before the first dbt run. dbt replaces it with its own on that run.
    """
    exists = conn.execute("select to_regclass(%s) is not null", [f"telemetry.{STAGING_MODEL}"]).fetchone()[0]
    if not exists:
        compiled = dbt.compiled_sql(url, STAGING_MODEL)
        # The body is SQL compiled from our own dbt project, not user input.
        conn.execute(sql.SQL("create view {}.{} as ").format(sql.Identifier("telemetry"), sql.Identifier(
            STAGING_MODEL)) + sql.SQL(compiled))  # type: ignore[operator]
