"""The Spark engine's session and lock (TELEMETRY_ENGINE=spark).

dbt-spark's ``session`` method runs the Spark driver inside the loader's own process: the loader starts the
session with the settings of the profile's ``spark`` target (loader/profiles/profiles.yml, read here so that
they are written once), and dbt, run in-process, gets the same session back from ``getOrCreate``. The warehouse
folder (TELEMETRY_SPARK_WAREHOUSE) holds the parquet tables, their Derby catalog and ``ingest.lock``, the file
lock that serialises ingests (Spark has no advisory locks; Derby itself admits one process at a time).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loader.config import PROFILES_DIR, Settings
from loader.errors import TelemetryError
from loader.progress import Progress

_ENV_VAR = re.compile(r"""\{\{\s*env_var\('([A-Z_]+)'(?:,\s*'([^']*)')?\)\s*\}\}""")


def profile_env(settings: Settings) -> dict[str, str]:
    """The variables the profile's spark target reads."""
    return {"TELEMETRY_SPARK_MASTER": settings.spark_master,
            "TELEMETRY_SPARK_WAREHOUSE": str(settings.spark_warehouse)}


def session_parameters(settings: Settings) -> dict[str, str]:
    """The profile's ``server_side_parameters`` of the spark target, its env_var() calls resolved."""
    import yaml  # dbt's own dependency

    env = profile_env(settings)
    profile = yaml.safe_load((PROFILES_DIR / "profiles.yml").read_text())
    parameters = profile["llm_telemetry"]["outputs"]["spark"]["server_side_parameters"]
    return {key: _ENV_VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), str(value))
            for key, value in parameters.items()}


def _check_java() -> None:
    from shutil import which

    if not (os.environ.get("JAVA_HOME") or which("java")):
        raise TelemetryError("TELEMETRY_ENGINE=spark needs Java 17 or newer; install it (Debian: "
                             "apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME")


def start_session(settings: Settings):
    """The Spark session dbt will use (created once a process)."""
    _check_java()
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise TelemetryError("TELEMETRY_ENGINE=spark needs pyspark and dbt-spark: run pnpm install") from None
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings.spark_warehouse.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in session_parameters(settings).items():
        builder = builder.config(key, value)
    builder = builder.config("spark.driver.extraJavaOptions", f"-Dderby.system.home={settings.spark_warehouse}")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


@contextmanager
def locked_warehouse(settings: Settings, progress: Progress) -> Iterator[object]:
    """The Spark session, holding the warehouse's ingest lock (released when the process ends, however)."""
    settings.spark_warehouse.mkdir(parents=True, exist_ok=True)
    lock_path = Path(settings.spark_warehouse) / "ingest.lock"
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another ingest is running on this warehouse; waiting for it to finish...")
            fcntl.flock(lock, fcntl.LOCK_EX)
            progress("the other ingest finished; continuing")
        progress(f"starting the Spark session ({settings.spark_master})")
        yield start_session(settings)
