"""Shared test builders: the system under test bound to one database, CSV text, and where the test data is.

Fixtures (servers, fresh databases) live in conftest.py; test modules import these names from here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from loader.config import PROJECT_DIR, Settings
from loader.ingest import IngestSummary, ingest_csv

__all__ = ["CANONICAL_HEADER", "CORPUS", "PROJECT_DIR", "Telemetry", "csv_text", "with_dbname"]

CORPUS = PROJECT_DIR.parent / "shared" / "corpus"
CANONICAL_HEADER = "timestamp,model,prompt_tokens,completion_tokens,task_success,task_type,duration_ms,notes"


def with_dbname(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


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


def csv_text(*rows: str, header: str = CANONICAL_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"
