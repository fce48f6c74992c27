"""The loader's own tables, and the staging view it reads its counts from."""

from __future__ import annotations

from importlib import resources

import psycopg

from loader import dbt

STAGING_MODEL = "stg_telemetry__usage_rows"


def ensure_landing_tables(conn: psycopg.Connection) -> None:
    """Create the schemas and landing tables when missing (idempotent)."""
    conn.execute(resources.files("loader").joinpath("sql/schema.sql").read_text())


def ensure_staging_view(conn: psycopg.Connection, url: str) -> None:
    """Create dbt's staging view from its compiled SQL when dbt has not built it yet.

    The loader counts rejects and duplicates through this view, so its rules are dbt's rules; on a new
    database the view must exist before the first dbt run. dbt replaces it with its own on that run.
    """
    exists = conn.execute("select to_regclass(%s) is not null", [f"telemetry.{STAGING_MODEL}"]).fetchone()[0]
    if not exists:
        compiled = dbt.compiled_sql(url, STAGING_MODEL)
        conn.execute(f"create view telemetry.{STAGING_MODEL} as {compiled}")  # SQL from our own dbt project
