"""Database URLs and connections: checking a URL, naming its target without the password, connecting.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import conninfo

from loader.errors import TelemetryError

MIN_SERVER_VERSION = 150000


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``****`` (for messages and ``db url``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. an unclosed [ in the host: we cannot tell where a password would be
        return "(unparseable URL)"
    if not password:
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


def check_url(url: str) -> None:
    example = "e.g. postgresql://user:password@host:5432/dbname"
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError as exc:
        raise TelemetryError(f"TELEMETRY_DATABASE_URL is not a valid URL ({exc}); {example}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        shown = url.split(":", 1)[0].split("=", 1)[0][:20]  # the scheme, never what may follow (a password)
        raise TelemetryError(
            f"TELEMETRY_DATABASE_URL must be a postgresql:// URL, got one starting with {shown!r}; {example}"
        )
    try:
        conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if password:
            reason = reason.replace(password, "****")
        raise TelemetryError(f"TELEMETRY_DATABASE_URL {mask_url(url)} is not a valid URL: {reason}") from None


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
