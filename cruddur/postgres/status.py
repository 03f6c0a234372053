"""What `db.status` reports about the database a task would use, found without starting,
creating or changing anything."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import MASK, CruddurError, DatabaseError, NoSuchDatabase
from ..timeouts import CONNECT_TIMEOUT
from . import local_server, migrations, urls
from .admin import MAINTENANCE_DB, swap_names
from .connect import connect


@dataclass(frozen=True)
class Status:
    environment: str  # local, dev or prod
    url: str  # password masked
    answers: bool  # the server runs (local) or answers (dev, prod)
    reason: str | None  # why it does not, in one line
    server_version: str | None
    database: str
    database_exists: bool | None  # None: unknown while the server does not answer
    # The embedded server only:
    data_folder: str | None = None
    data_bytes: int | None = None  # None: no data folder yet
    tcp_url: str | None = None  # password masked; None while it listens on the socket only
    password_file: str | None = None
    # How many versions are in each state (applied, pending, ...), read when the app database
    # exists, never creating schema_migrations; None when not read.
    migrations: dict[str, int] | None = None
    # What an interrupted db.setup or db.restore left: <db>__rebuild, <db>__old (see admin.swap_names).
    swap_leftovers: tuple[str, ...] = ()


def local(pgdata: Path, port: int, migrations_dir: Path | None = None) -> Status:
    """The embedded server in pgdata, as it is: running or not, never started here."""
    url = local_server.running_url(pgdata)
    size = _folder_bytes(pgdata)
    common = dict(
        environment="local",
        database=urls.DEFAULT_DBNAME,
        data_folder=str(pgdata),
        data_bytes=size,
        password_file=str(local_server.password_file(pgdata)),
    )
    if url is None:
        if size is not None:
            reason = "not running; any db task starts it, or: inv db.up"
        elif pgdata.exists():
            reason = "CRUDDUR_PGDATA names a file, not a folder: point it at a folder (it is created if missing)"
        else:
            reason = "no data folder yet; create it with: inv db.up"
        return Status(
            url=local_server.tcp_url(port, urls.DEFAULT_DBNAME, MASK),
            answers=False,
            reason=reason,
            server_version=_data_folder_version(pgdata),
            database_exists=None,
            tcp_url=local_server.tcp_url(port, urls.DEFAULT_DBNAME, MASK),
            **common,
        )
    found = local_server.lock_file(pgdata)
    listens = found is not None and found.listen_address == local_server.LISTEN_ADDRESS
    tcp = local_server.tcp_url(found.port, urls.DEFAULT_DBNAME, MASK) if listens else None
    app_url = urls.with_dbname(url, urls.DEFAULT_DBNAME)
    try:
        version, exists, leftovers = _ask(url, urls.DEFAULT_DBNAME)
    except DatabaseError as e:
        return Status(
            url=urls.mask(app_url), answers=False, reason=str(e), server_version=None, database_exists=None, tcp_url=tcp, **common
        )
    found = Status(
        url=urls.mask(app_url),
        answers=True,
        reason=None,
        server_version=version,
        database_exists=exists,
        tcp_url=tcp,
        swap_leftovers=leftovers,
        **common,
    )
    return _with_migrations(found, app_url, migrations_dir)


def remote(url: str, environment: str, migrations_dir: Path | None = None) -> Status:
    """The server a URL names: whether it answers, its version, whether the database exists."""
    database = urls.dbname(url)
    masked = urls.mask(url)
    try:
        with connect(url, autocommit=True, timeout=CONNECT_TIMEOUT) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            leftovers = _swap_leftovers(conn, database)
    except NoSuchDatabase:
        try:  # the maintenance database knows the version
            version, _, leftovers = _ask(urls.with_dbname(url, MAINTENANCE_DB), database)
        except DatabaseError:
            version, leftovers = None, ()
        return Status(environment, masked, True, None, version, database, False, swap_leftovers=leftovers)
    except DatabaseError as e:
        return Status(environment, masked, False, str(e), None, database, None)
    found = Status(environment, masked, True, None, version, database, True, swap_leftovers=leftovers)
    return _with_migrations(found, url, migrations_dir)


def _with_migrations(found: Status, url: str, directory: Path | None) -> Status:
    if directory is None or not found.database_exists:
        return found
    try:
        rows = migrations.status(url, directory)
    except CruddurError:
        return found  # an unreadable migration file: db.migrations says which; the rest still shows
    return replace(found, migrations=dict(Counter(row.state for row in rows)))


def _ask(maintenance_url: str, database: str) -> tuple[str, bool, tuple[str, ...]]:
    with connect(maintenance_url, autocommit=True, timeout=CONNECT_TIMEOUT) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None
        return version, exists, _swap_leftovers(conn, database)


def _swap_leftovers(conn, database: str) -> tuple[str, ...]:
    """The scratch and set-aside databases of an interrupted swap of `database` (pg_database is
    the same from any database of the server)."""
    names = list(swap_names(database))
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)).fetchall()
    return tuple(name for name in names if (name,) in rows)


def _data_folder_version(pgdata: Path) -> str | None:
    try:
        return (pgdata / "PG_VERSION").read_text().strip()
    except OSError:
        return None


def _folder_bytes(folder: Path) -> int | None:
    if not folder.is_dir():
        return None
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # a file the server removed meanwhile
    return total
