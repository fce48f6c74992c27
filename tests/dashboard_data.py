"""The data the dashboard tests read: generated calls, plus hostile names, loaded through the real loader.

One database per test module (module-scoped fixtures), since the dashboard only reads: loading it once keeps the
dashboard tests quick.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from helpers import CANONICAL_HEADER, Telemetry, with_dbname
from psycopg import sql

from bench.generate import write as generate_csv
from loader import dbt

HOSTILE_MODEL = "<script>alert(1)</script>"
ESCAPE_MODEL = "evil\x1b[31mred"
UNPRICED_MODEL = "acme-internal-llm-v2"  # bench.generate's model without a price

HOSTILE_CSV = "\n".join([
    CANONICAL_HEADER + ",session_id",
    f'2026-11-18T10:00:00Z,{HOSTILE_MODEL},100,10,false,"<img src=x onerror=alert(2)>",10,'
    '"Phase 3 <b>x</b>: Error <script>alert(3)</script> after 5s",<i>hostile-1</i>',
    f"2026-11-18T11:00:00Z,{ESCAPE_MODEL},100,10,true,plan,10,Phase 2 ok \x1b[0m,hostile-2",
    f"2026-11-19T11:00:00Z,{HOSTILE_MODEL},200,20,true,plan,10,Phase 3 second call,hostile-3",
]) + "\n"


def create_database(admin_url: str) -> str:
    name = f"telemetry_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return with_dbname(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    shutil.rmtree(dbt.target_path(url), ignore_errors=True)


def loaded_database(admin_url: str, tmp_path: Path) -> Iterator[tuple[Telemetry, Path]]:
    """A database with 600 generated calls over 30 days (in sessions of 7 calls) and the hostile rows; yields it and
    the generated CSV."""
    url = create_database(admin_url)
    telemetry = Telemetry(url=url, tmp_path=tmp_path)
    generated = generate_csv(tmp_path / "generated.csv", 600, seed=5, end=date(2026, 11, 20), days=30,
                             calls_per_session=7)
    telemetry.ingest(generated)
    telemetry.ingest(telemetry.write("hostile.csv", HOSTILE_CSV))
    try:
        yield telemetry, generated
    finally:
        drop_database(admin_url, url)
