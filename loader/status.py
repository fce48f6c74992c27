"""``telemetry db status``: which database the commands use and what it holds; reads, never writes."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from loader.config import Settings
from loader.connection import connect, describe_target, mask_url
from loader.contract import LLM_CALLS, LOAD_AUDIT, LoadStatus, relation_exists
from loader.database import resolve_url
from loader.retention import disagreement, retention_cutoff, stored_months


def database_status(settings: Settings | None = None) -> dict[str, Any]:
    """The database, its server version, the retention window in force, calls, loads, last load and size."""
    settings = settings or Settings.from_env()
    url = resolve_url(settings)
    with connect(url) as conn:
        months = stored_months(conn)
        notice = disagreement(settings.retention_months, months) if months is not None else None
        cutoff = retention_cutoff(months) if months is not None else None
        calls = conn.execute(sql.SQL("select count(*) from {}").format(LLM_CALLS)).fetchone()[0] \
            if relation_exists(conn, LLM_CALLS) else None
        loads, last_load = conn.execute(
            sql.SQL("select count(*), max(finished_at) from {} where status = %s").format(LOAD_AUDIT),
            [LoadStatus.DONE.value],
        ).fetchone() if relation_exists(conn, LOAD_AUDIT) else (0, None)
        size = conn.execute("select pg_database_size(current_database())").fetchone()[0]
        return {
            "database": f"embedded, data in {settings.pgdata.resolve()}" if not settings.database_url
            else f"{mask_url(url)} ({describe_target(url)})",
            "server_version": conn.info.parameter_status("server_version"),
            "retention": {"months": months, "cutoff": cutoff.isoformat() if cutoff else None, "notice": notice},
            "calls": calls,
            "loads": loads,
            "last_load": last_load.isoformat() if last_load else None,
            "size_bytes": size,
        }
