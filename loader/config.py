"""Where things are: environment variables, default paths and the dbt project.

The default data folder and CSV live in the project's ``.telemetry`` folder, found the way git finds ``.git``:
the nearest ``.telemetry`` folder in the current directory or one of its parents, else ``./.telemetry``. So
every subdirectory of a project uses the same embedded database.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from loader.errors import TelemetryError

#: The repository root, which holds dbt_project.yml (the package is installed editable).
PROJECT_DIR = Path(__file__).resolve().parent.parent
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

TELEMETRY_DIR_NAME = ".telemetry"
DEFAULT_CSV_PATH = Path(TELEMETRY_DIR_NAME) / "usage.csv"
DEFAULT_PGDATA = Path(TELEMETRY_DIR_NAME) / "pgdata"
DEFAULT_SPARK_WAREHOUSE = Path(TELEMETRY_DIR_NAME) / "spark"
#: TELEMETRY_ENGINE: where the tables live and dbt builds them.
ENGINES = ("postgres", "spark")
DEFAULT_RETENTION_MONTHS = 6
#: 100 years. Larger windows are surely typos (and dates before year 1 cannot be computed); 0 keeps everything.
MAX_RETENTION_MONTHS = 1200

RAW_SCHEMA = "telemetry_raw"
MODEL_SCHEMA = "telemetry"

_WHOLE_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also accepts '²' and '٣'


def _shown(value: str, limit: int = 40) -> str:
    """A setting's value for a one-line message: quoted, escaped, and cut when long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def parse_retention_months(text: str, source: str = "TELEMETRY_RETENTION_MONTHS") -> int:
    """A retention window in months from text (ASCII digits, 0..MAX_RETENTION_MONTHS); TelemetryError otherwise."""
    text = text.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        raise TelemetryError(
            f"{source}={_shown(text)} is not a whole number of months; set it to e.g. 6, to 0 to keep everything, "
            f"or unset it for the default {DEFAULT_RETENTION_MONTHS}"
        )
    months = int(text)
    if months > MAX_RETENTION_MONTHS:
        raise TelemetryError(
            f"{source}={_shown(text)} is more than {MAX_RETENTION_MONTHS} months (100 years); "
            f"set it to at most {MAX_RETENTION_MONTHS}, or to 0 to keep everything"
        )
    return months


def current_directory() -> Path:
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise TelemetryError(
            "the current directory no longer exists (it was deleted or moved); cd to your project and run again"
        ) from None


def find_telemetry_dir(start: Path | None = None) -> Path:
    """The project's ``.telemetry`` folder: the nearest one in ``start`` (default: the current directory) or one
    of its parents, else ``start/.telemetry`` (created by whatever first writes into it)."""
    start = (start or current_directory()).absolute()
    for folder in (start, *start.parents):
        candidate = folder / TELEMETRY_DIR_NAME
        try:
            if candidate.is_dir():
                return candidate
        except OSError:  # an unreadable parent: keep looking further up, as git does
            continue
    return start / TELEMETRY_DIR_NAME


def _setting(env: dict[str, str], name: str) -> str | None:
    """An environment variable's value; unset, empty and only-whitespace all mean "not set"."""
    value = env.get(name, "").strip()
    return value or None


def _path_setting(env: dict[str, str], name: str, cwd: Path) -> Path | None:
    value = _setting(env, name)
    if value is None:
        return None
    return cwd / Path(value).expanduser()  # an absolute value stays as it is; a relative one is from the cwd


@dataclass(frozen=True)
class Settings:
    """Configuration read from the environment; every field has a sane default."""

    database_url: str | None
    pgdata: Path
    csv_path: Path
    #: TELEMETRY_RETENTION_MONTHS; None when unset. It sets the window of a new database only (loader.retention).
    retention_months: int | None
    #: TELEMETRY_ENGINE (postgres or spark); with spark, TELEMETRY_SPARK_MASTER names the cluster (default: Spark
    #: inside this process, local[2]) and TELEMETRY_SPARK_WAREHOUSE the folder of its tables.
    engine: str = "postgres"
    spark_master: str = "local[2]"
    spark_warehouse: Path = DEFAULT_SPARK_WAREHOUSE

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        """Settings from ``env`` (default: os.environ); relative paths and the ``.telemetry`` lookup start at
        ``cwd`` (default: the current directory). Paths in the result are absolute."""
        env = dict(os.environ if env is None else env)
        months_text = _setting(env, "TELEMETRY_RETENTION_MONTHS")
        months = None if months_text is None else parse_retention_months(months_text)
        cwd = (cwd or current_directory()).absolute()
        pgdata = _path_setting(env, "TELEMETRY_PGDATA", cwd)
        csv_path = _path_setting(env, "TELEMETRY_CSV_PATH", cwd)
        warehouse = _path_setting(env, "TELEMETRY_SPARK_WAREHOUSE", cwd)
        if pgdata is None or csv_path is None or warehouse is None:
            telemetry_dir = find_telemetry_dir(cwd)
            pgdata = pgdata or telemetry_dir / DEFAULT_PGDATA.name
            csv_path = csv_path or telemetry_dir / DEFAULT_CSV_PATH.name
            warehouse = warehouse or telemetry_dir / DEFAULT_SPARK_WAREHOUSE.name
        engine = (_setting(env, "TELEMETRY_ENGINE") or "postgres").lower()
        if engine not in ENGINES:
            raise TelemetryError(f"TELEMETRY_ENGINE={_shown(engine)} is not an engine; set it to postgres (the "
                                 "default) or spark")
        return cls(
            database_url=_setting(env, "TELEMETRY_DATABASE_URL"),
            pgdata=pgdata,
            csv_path=csv_path,
            retention_months=months,
            engine=engine,
            spark_master=_setting(env, "TELEMETRY_SPARK_MASTER") or "local[2]",
            spark_warehouse=warehouse,
        )
