"""Fixtures: real PostgreSQL servers and an empty database per test. Nothing is mocked.

Every database test runs on the embedded server (the product's default) and, when TELEMETRY_TEST_DATABASE_URL
is set, also on that server. Each test gets an empty database of its own: a new one, or one an earlier test of
this process used, emptied (see ``DatabasePool``). Shared builders are in helpers.py.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import CANONICAL_HEADER, CORPUS, PROJECT_DIR, Telemetry, csv_text, with_dbname
from psycopg import sql

from loader import dbt
from loader.embedded import embedded_url, stop_embedded

__all__ = ["CANONICAL_HEADER", "CORPUS", "PROJECT_DIR", "csv_text"]  # still importable from here


def _targets() -> list[str]:
    return ["embedded", "external"] if os.environ.get("TELEMETRY_TEST_DATABASE_URL") else ["embedded"]


@pytest.fixture(scope="session")
def embedded_admin_url(tmp_path_factory) -> Iterator[str]:
    """The product's own embedded server (private socket, peer authentication), started for the session."""
    pgdata = tmp_path_factory.mktemp("embedded") / "pgdata"
    yield with_dbname(embedded_url(pgdata), "postgres")
    stop_embedded(pgdata)


class DatabasePool:
    """Empty databases, reused from one test to the next within a test process.

    A test's database is emptied afterwards (every schema but public dropped, its sessions ended) and handed to a
    later test, rather than dropped: dbt keeps one parse of the project per database (its partial parse is keyed
    on the connection), so a reused database spares each test a full parse of the project, seconds of CPU.
    A database that holds anything else afterwards (a table in public, say) is dropped instead.
    """

    def __init__(self) -> None:
        self._free: dict[str, list[str]] = {}

    def take(self, admin: str) -> str:
        free = self._free.setdefault(admin, [])
        if free:
            return free.pop()
        name = f"telemetry_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return with_dbname(admin, name)

    def give_back(self, admin: str, url: str) -> None:
        if self._empty(url):
            self._free[admin].append(url)
            return
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        shutil.rmtree(dbt.target_path(url), ignore_errors=True)

    @staticmethod
    def _empty(url: str) -> bool:
        """Empties the database; whether it is now as new (else it is to be dropped)."""
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                             "where datname = current_database() and pid <> pg_backend_pid()")
                schemas = [row[0] for row in conn.execute(
                    "select nspname from pg_namespace where nspname <> 'public' and nspname <> 'information_schema' "
                    "and nspname not like 'pg\\_%'")]
                for schema in schemas:
                    conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
                leftovers = conn.execute(
                    "select count(*) from pg_class as c join pg_namespace as n on n.oid = c.relnamespace "
                    "where n.nspname = 'public'").fetchone()[0]
                return leftovers == 0
        except psycopg.Error:
            return False


    def drop_all(self) -> None:
        """Drops the pooled databases (those of a server already stopped go with it)."""
        for admin, urls in self._free.items():
            while urls:
                url = urls.pop()
                shutil.rmtree(dbt.target_path(url), ignore_errors=True)
                name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
                try:
                    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
                except psycopg.OperationalError:
                    pass


_POOL = DatabasePool()


@pytest.fixture(scope="session", autouse=True)
def _drop_pooled_databases() -> Iterator[None]:
    yield
    _POOL.drop_all()


@pytest.fixture(params=_targets())
def database_url(request) -> Iterator[str]:
    """URL of an empty database on the target server, for this test alone."""
    if request.param == "embedded":
        admin = request.getfixturevalue("embedded_admin_url")
    else:
        admin = os.environ["TELEMETRY_TEST_DATABASE_URL"]
    url = _POOL.take(admin)
    yield url
    _POOL.give_back(admin, url)


@pytest.fixture(scope="module")
def module_database_url(embedded_admin_url: str) -> Iterator[str]:
    """URL of an empty database on the embedded server, for the tests of one module together."""
    url = _POOL.take(embedded_admin_url)
    yield url
    _POOL.give_back(embedded_admin_url, url)


@pytest.fixture
def telemetry(database_url: str, tmp_path: Path) -> Telemetry:
    return Telemetry(url=database_url, tmp_path=tmp_path)


