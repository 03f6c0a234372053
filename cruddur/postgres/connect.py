"""Opening a connection: the one connect(), application name, timeout rule, session filter,
the lock_timeout setting and session advisory locks."""

from __future__ import annotations

import math

import psycopg

from ..errors import DatabaseError, NoSuchDatabase, one_line
from ..timeouts import CONNECT_TIMEOUT
from . import urls

APPLICATION_NAME = "cruddur-ops"

# A non-superuser (as on RDS) sees other roles' sessions with most columns NULL, backend_type
# included: a row with a database is still a client session.
CLIENT_SESSION = "backend_type = 'client backend' OR (backend_type IS NULL AND datid IS NOT NULL)"


def connect_timeout(seconds: float) -> int:
    """libpq's connect_timeout for a wait of `seconds`: whole seconds, and libpq reads 1 as 2."""
    return max(2, math.ceil(seconds))


def connect(url: str, *, autocommit: bool = False, timeout: float = CONNECT_TIMEOUT) -> psycopg.Connection:
    """A connection, or DatabaseError saying why not (server down, auth, no such database)."""
    urls.parse(url)
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout(timeout), application_name=APPLICATION_NAME)
    except psycopg.OperationalError as e:
        reason = one_line(e).removeprefix("connection failed: ")
        if f'database "{urls.dbname(url)}" does not exist' in reason:
            raise NoSuchDatabase(f"cannot connect to {urls.describe(url)}: {reason}; {_missing_database_hint(url)}") from None
        raise DatabaseError(f"cannot connect to {urls.describe(url)}: {reason}") from None


def _missing_database_hint(url: str) -> str:
    """What to do about a missing database: create it, unless an interrupted db.setup or
    db.restore set it aside (creating one then would hide the data it holds)."""
    from .admin import MAINTENANCE_DB, swap_names

    aside = swap_names(urls.dbname(url))[1]
    try:
        with psycopg.connect(
            urls.with_dbname(url, MAINTENANCE_DB), connect_timeout=connect_timeout(CONNECT_TIMEOUT), application_name=APPLICATION_NAME
        ) as conn:
            set_aside = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (aside,)).fetchone() is not None
    except psycopg.Error:
        set_aside = False
    if set_aside:
        return f"an interrupted db.setup or db.restore set it aside as {aside!r}; a write task finishes the swap: inv db.migrate"
    return "create it with: inv db.create, or inv db.setup"


def set_lock_timeout(conn: psycopg.Connection, seconds: float, *, local: bool = False) -> None:
    """Let each statement wait at most `seconds` for a lock (libpq's milliseconds, at least 1;
    0 would mean no bound); `local`: until the end of the current transaction only."""
    conn.execute("SELECT set_config('lock_timeout', %s, %s)", (f"{max(1, round(seconds * 1000))}ms", local))


def advisory_lock(conn: psycopg.Connection, key: str, wait: float | None) -> bool:
    """Take the session advisory lock named `key`, held until the connection closes: wait up to
    `wait` seconds (psycopg.errors.LockNotAvailable when that runs out), or with None only try;
    whether it was taken."""
    if wait is None:
        return conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]
    set_lock_timeout(conn, wait)
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
    return True
