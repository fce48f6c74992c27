"""Where things are: environment variables, default paths and the dbt project."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loader.errors import TelemetryError

#: The repository root, which holds dbt_project.yml (the package is installed editable).
PROJECT_DIR = Path(__file__).resolve().parent.parent
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

DEFAULT_CSV_PATH = Path(".telemetry") / "usage.csv"
DEFAULT_PGDATA = Path(".telemetry") / "pgdata"
DEFAULT_RETENTION_MONTHS = 6

RAW_SCHEMA = "telemetry_raw"
MODEL_SCHEMA = "telemetry"


@dataclass(frozen=True)
class Settings:
    """Configuration read from the environment; every field has a sane default."""

    database_url: str | None
    pgdata: Path
    csv_path: Path
    retention_months: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        months_text = env.get("TELEMETRY_RETENTION_MONTHS", "").strip()
        months = DEFAULT_RETENTION_MONTHS
        if months_text:
            if not months_text.isdigit():
                raise TelemetryError(
                    f"TELEMETRY_RETENTION_MONTHS={months_text!r} is not a whole number of months; "
                    "set it to e.g. 6, to 0 to keep everything, or unset it for the default 6"
                )
            months = int(months_text)
        return cls(
            database_url=env.get("TELEMETRY_DATABASE_URL", "").strip() or None,
            pgdata=Path(env.get("TELEMETRY_PGDATA", "").strip() or DEFAULT_PGDATA),
            csv_path=Path(env.get("TELEMETRY_CSV_PATH", "").strip() or DEFAULT_CSV_PATH),
            retention_months=months,
        )
