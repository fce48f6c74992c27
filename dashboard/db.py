"""The dashboard's only way into the database: a read-only session as telemetry_reader.

Each request opens its own connection (about 2 ms on the embedded server's socket, measured), so a database that
went away and came back needs no pool to recover; a page runs all its queries on that one connection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from loader.config import Settings
from loader.connection import describe_target
from loader.database import resolve_url
from loader.schema import READER_ROLE

#: A login of its own for the dashboard (a member of telemetry_reader); wins over the CLI's configuration.
URL_VARIABLE = "TELEMETRY_DASHBOARD_DATABASE_URL"

# Every session: the reader role (SELECT on the marts and llm_calls, nothing else), read-only transactions, and
# a bound on any one query so that a page cannot hold the database.
_SESSION_SETUP = (
    f"set role {READER_ROLE}",
    "set default_transaction_read_only = on",
    "set statement_timeout = '30s'",
    # Sorts and hash aggregates of a page (error patterns, sessions) stay in memory instead of spilling to disk.
    "set work_mem = '64MB'",
)


class DatabaseUnavailable(Exception):
    """The server does not answer: the page says so (HTTP 503) and the next request tries again."""


class NotLoadedYet(Exception):
    """Nothing to show yet: no marts, or not even the reader role (created by the first load)."""


class ReaderRoleRefused(Exception):
    """The login may not become telemetry_reader: a configuration problem the page explains (HTTP 503)."""


def dashboard_url(env: dict[str, str] | None = None) -> str:
    """TELEMETRY_DASHBOARD_DATABASE_URL when set, else the CLI's database (embedded unless configured)."""
    env = dict(os.environ if env is None else env)
    own = env.get(URL_VARIABLE, "").strip()
    return own or resolve_url(Settings.from_env(env))


def connect_reader(url: str) -> psycopg.Connection:
    """A connection that can only read what telemetry_reader may read, in read-only transactions."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5, application_name="telemetry-dashboard")
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe_target(url)}: {reason}") from None
    try:
        for statement in _SESSION_SETUP:
            conn.execute(statement)
    except psycopg.errors.InvalidParameterValue:  # the role does not exist: nothing was ever loaded here
        conn.close()
        raise NotLoadedYet(f"role {READER_ROLE} does not exist yet") from None
    except psycopg.errors.InsufficientPrivilege:
        user = conn.info.user
        conn.close()
        raise ReaderRoleRefused(
            f"user {user} is not a member of {READER_ROLE}; an administrator can run: "
            f"GRANT {READER_ROLE} TO {user}"
        ) from None
    conn.autocommit = False
    return conn


@contextmanager
def reading(url: str) -> Iterator[psycopg.Connection]:
    """One read-only transaction for one page; a server lost midway counts as unavailable."""
    try:
        with connect_reader(url) as conn:
            yield conn
            conn.rollback()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"lost the connection to PostgreSQL at {describe_target(url)}: {exc}") from None
