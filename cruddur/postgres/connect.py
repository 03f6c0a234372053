"""Opening a connection: the one connect(), application name, timeout rule, session filter,
the lock_timeout setting and session advisory locks."""

from __future__ import annotations

import math

import psycopg

from ..errors import DatabaseError, NoSuchDatabase, ServerNotAnswering, one_line
from ..polling import Deadline
from ..timeouts import ADVISORY_LOCK_MAX_POLL, CONNECT_TIMEOUT, WAIT_NOTICE_AFTER
from ..waits import waits_log
from . import urls

APPLICATION_NAME = "cruddur-ops"

# A non-superuser (as on RDS) sees other roles' sessions with most columns NULL, backend_type
# included: a row with a database is still a client session.
CLIENT_SESSION = "backend_type = 'client backend' OR (backend_type IS NULL AND datid IS NOT NULL)"


def connect_timeout(seconds: float) -> int:
    """libpq's connect_timeout for a wait of `seconds`: whole seconds, and libpq reads 1 as 2."""
    return max(2, math.ceil(seconds))


def connect(url: str, *, autocommit: bool = False, timeout: float = CONNECT_TIMEOUT) -> psycopg.Connection:
    """A connection, or DatabaseError saying why not (server down, auth, no such database;
    ServerNotAnswering when it took the connection and never answered)."""
    urls.parse(url)
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout(timeout), application_name=APPLICATION_NAME)
    except psycopg.errors.ConnectionTimeout:
        # The server, not the database: every database there (the maintenance one too) waits as long.
        server = urls.describe(url).rsplit("/", 1)[0]
        raise ServerNotAnswering(f"cannot connect to {server}: the server did not answer within {connect_timeout(timeout)}s") from None
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


def lock_timeout_query(seconds: float, *, local: bool = False) -> tuple[str, tuple[str, bool]]:
    """The (query, params) that let each statement wait at most `seconds` for a lock (libpq's
    milliseconds, at least 1: 0 would mean no bound); `local`: until the end of the transaction."""
    return "SELECT set_config('lock_timeout', %s, %s)", (f"{max(1, round(seconds * 1000))}ms", local)


def set_lock_timeout(conn: psycopg.Connection, seconds: float, *, local: bool = False) -> None:
    """Run lock_timeout_query on `conn`."""
    conn.execute(*lock_timeout_query(seconds, local=local))


def advisory_lock(conn: psycopg.Connection, key: str, wait: float | None, what: str | None = None) -> bool:
    """Take the session advisory lock named `key`, held until the connection closes: try until
    `wait` seconds have passed (None: try once); whether it was taken. `conn` must be in
    autocommit mode.

    Each try is a statement of its own (pg_try_advisory_lock): between tries the session holds
    no transaction and no snapshot, so a CREATE INDEX CONCURRENTLY in the session that holds
    the lock never waits for this one (pg_advisory_lock would wait inside one statement, holding
    its snapshot: the two would deadlock). A wait longer than WAIT_NOTICE_AFTER says once on the
    `cruddur.waits` logger what it waits for (`what`, else the key) and which session holds the lock."""
    deadline = Deadline(wait or 0)
    pause, noticed = 0.01, False
    while not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]:
        if not noticed and deadline.elapsed() >= WAIT_NOTICE_AFTER:
            from .sessions import advisory_lock_holders, held_by

            noticed = True
            waits_log.warning(
                "waiting up to %gs more for %s (the lock is held by %s)",
                (wait or 0) - WAIT_NOTICE_AFTER,
                what or f"the lock {key!r}",
                held_by(advisory_lock_holders(conn, key)),
            )
        if not deadline.pause(pause):
            return False
        pause = min(pause * 2, ADVISORY_LOCK_MAX_POLL)
    return True
