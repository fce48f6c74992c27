"""Fixtures: real PostgreSQL servers and a fresh database per test. Nothing is mocked.

Every database test runs on the embedded server (the product's default) and, when TELEMETRY_TEST_DATABASE_URL
is set, also on that server. Each test gets its own database, dropped afterwards. Shared builders are in
helpers.py.
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
from loader.database import embedded_url, stop_embedded

__all__ = ["CANONICAL_HEADER", "CORPUS", "PROJECT_DIR", "csv_text"]  # still importable from here


def _targets() -> list[str]:
    return ["embedded", "external"] if os.environ.get("TELEMETRY_TEST_DATABASE_URL") else ["embedded"]


@pytest.fixture(scope="session")
def embedded_admin_url(tmp_path_factory) -> Iterator[str]:
    """The product's own embedded server (private socket, peer authentication), started for the session."""
    pgdata = tmp_path_factory.mktemp("embedded") / "pgdata"
    yield with_dbname(embedded_url(pgdata), "postgres")
    stop_embedded(pgdata)


@pytest.fixture(params=_targets())
def database_url(request) -> Iterator[str]:
    """URL of a new, empty database on the target server; dropped after the test."""
    if request.param == "embedded":
        admin = request.getfixturevalue("embedded_admin_url")
    else:
        admin = os.environ["TELEMETRY_TEST_DATABASE_URL"]
    name = f"telemetry_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_dbname(admin, name)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    shutil.rmtree(dbt.target_path(url), ignore_errors=True)


@pytest.fixture
def telemetry(database_url: str, tmp_path: Path) -> Telemetry:
    return Telemetry(url=database_url, tmp_path=tmp_path)


