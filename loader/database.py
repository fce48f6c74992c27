"""Which PostgreSQL we talk to: the server named by TELEMETRY_DATABASE_URL, or the embedded one
(loader.embedded), started when needed.
"""

from __future__ import annotations

from loader.config import Settings
from loader.connection import check_url
from loader.embedded import embedded_url


def resolve_url(settings: Settings) -> str:
    """The URL to use: TELEMETRY_DATABASE_URL, else the embedded server (started when needed)."""
    if settings.database_url:
        check_url(settings.database_url)
        return settings.database_url
    return embedded_url(settings.pgdata)
