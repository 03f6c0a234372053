"""Who is connected, and who blocks whom: rows of pg_stat_activity, readable by any user (as on RDS)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..errors import DatabaseError, one_line
from ..timeouts import BLOCKER_POLL_SECONDS, BLOCKER_WATCH_AFTER, CONNECT_TIMEOUT
from .connect import CLIENT_SESSION, connect

# Every session field the tool shows (db.sessions, its --tree, db.kill's plans). A wait counts
# from when the lock was first asked for (pg_locks.waitstart), else from the state's change.
SESSIONS_SQL = sql.SQL("""
SELECT a.pid,
       a.usename AS "user",
       a.datname AS db,
       host(a.client_addr) AS client_addr,
       a.application_name AS app,
       a.state,
       a.backend_type,
       nullif(concat_ws(':', a.wait_event_type, a.wait_event), '') AS wait_event,
       CASE WHEN a.state_change IS NOT NULL
            THEN round(extract(epoch FROM greatest(clock_timestamp() - a.state_change, '0'))::numeric, 3)::float8
       END AS state_seconds,
       CASE WHEN a.query_start IS NOT NULL
            THEN round(extract(epoch FROM greatest(clock_timestamp() - a.query_start, '0'))::numeric, 3)::float8
       END AS query_seconds,
       a.query,
       blocking.pids AS blocked_by,
       CASE WHEN cardinality(blocking.pids) > 0 THEN
            extract(epoch FROM greatest(clock_timestamp() - coalesce(
                (SELECT min(l.waitstart) FROM pg_locks AS l WHERE l.pid = a.pid AND NOT l.granted),
                a.state_change, a.query_start), '0'))::float8
       END AS waited_seconds,
       CASE WHEN starts_with(a.state, 'idle in transaction') THEN
            extract(epoch FROM greatest(clock_timestamp() - a.state_change, '0'))::float8
       END AS idle_in_transaction_seconds,
       extract(epoch FROM greatest(clock_timestamp() - a.xact_start, '0'))::float8 AS transaction_seconds,
       a.pid = pg_backend_pid() AS this_session
FROM pg_stat_activity AS a
CROSS JOIN LATERAL (SELECT pg_blocking_pids(a.pid) AS pids) AS blocking
WHERE (%(all)s OR {client_session}) AND (%(pid)s::bigint IS NULL OR a.pid = %(pid)s::bigint)
ORDER BY a.datname NULLS LAST, a.backend_start, a.pid
""").format(client_session=sql.SQL(CLIENT_SESSION))


def list_sessions(url: str, include_server_processes: bool = False) -> list[dict]:
    """One dict per session, the query's full text included. Client backends only unless
    include_server_processes."""
    with connect(url, autocommit=True) as conn:
        return read_sessions(conn, include_server_processes)


def read_sessions(conn: psycopg.Connection, include_server_processes: bool = False, pid: int | None = None) -> list[dict]:
    """list_sessions() on a connection the caller holds (`pid`: that session only)."""
    try:
        with conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(SESSIONS_SQL, {"all": include_server_processes, "pid": pid}).fetchall()
    except psycopg.Error as e:
        raise DatabaseError(f"cannot list the sessions: {one_line(e)}") from None


def session(url: str, pid: int) -> dict:
    """Client session `pid`, with the fields list_sessions() gives: DatabaseError when there is none."""
    with connect(url, autocommit=True) as conn:
        found = read_sessions(conn, pid=pid)
    if not found:
        raise DatabaseError(f"no session has pid {pid}; inv db.sessions lists them")
    return found[0]


# Who holds what `pid` waits for: pg_blocking_pids names them; pg_stat_activity says who they
# are. "held" counts from the start of the blocker's transaction (when it may have taken the
# lock), else of its query or session.
BLOCKERS_SQL = """
SELECT blocker.pid,
       coalesce(nullif(blocker.application_name, ''), '?') AS application,
       coalesce(blocker.state, '?') AS state,
       extract(epoch FROM clock_timestamp()
               - coalesce(blocker.xact_start, blocker.query_start, blocker.backend_start))::float8 AS held_seconds
FROM unnest(pg_blocking_pids(%s)) AS blocking(pid)
JOIN pg_stat_activity AS blocker USING (pid)
ORDER BY held_seconds DESC NULLS LAST, blocker.pid
"""


@dataclass(frozen=True)
class Blocker:
    pid: int
    application: str
    state: str
    held_seconds: float | None

    def __str__(self) -> str:
        held = "" if self.held_seconds is None else f", for {self.held_seconds:.1f}s"
        return f"session {self.pid} ({self.application!r}, {self.state}{held})"


def blockers(conn: psycopg.Connection, pid: int) -> list[Blocker]:
    """The sessions that `pid` is waiting for right now (pg_blocking_pids), longest-held first."""
    return [Blocker(*row) for row in conn.execute(BLOCKERS_SQL, (pid,)).fetchall()]


def held_by(found: list[Blocker]) -> str:
    """Who held a lock that a statement waited for, for its error message: "session 123 ('psql',
    idle in transaction, for 12.3s)", several joined by commas; "another session" when the watch
    saw none (the wait was too short to look, or the holder had ended)."""
    return ", ".join(str(blocker) for blocker in found) or "another session"


# Who holds the session advisory lock named by a key (advisory_lock's hashtextextended), in this
# database. A session lock lives as long as its session: "held" counts from the session's start.
ADVISORY_HOLDERS_SQL = """
SELECT holder.pid,
       coalesce(nullif(holder.application_name, ''), '?') AS application,
       coalesce(holder.state, '?') AS state,
       extract(epoch FROM clock_timestamp() - holder.backend_start)::float8 AS held_seconds
FROM pg_locks AS lock
JOIN pg_stat_activity AS holder USING (pid)
CROSS JOIN (SELECT hashtextextended(%s, 0) AS value) AS key
WHERE lock.locktype = 'advisory' AND lock.granted AND lock.objsubid = 1
  AND lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND lock.classid = ((key.value >> 32) & 4294967295)::oid
  AND lock.objid = (key.value & 4294967295)::oid
ORDER BY holder.pid
"""


def advisory_lock_holders(conn: psycopg.Connection, key: str) -> list[Blocker]:
    """The sessions holding the advisory lock named `key` right now ([] if none, or if this role
    may not see them)."""
    try:
        return [Blocker(*row) for row in conn.execute(ADVISORY_HOLDERS_SQL, (key,)).fetchall()]
    except psycopg.Error:
        return []  # a best-effort diagnosis: the wait goes on all the same


class BlockerWatch:
    """Remembers who blocks session `pid`'s current statement, seen from a second connection while
    it waits, to name them when its lock_timeout fires (by then the wait is over and
    pg_blocking_pids is empty).

    One watch serves many statements: wrap each in statement(). It opens its connection only for
    a statement still running after a quarter of `lock_timeout` (BLOCKER_WATCH_AFTER at most), so statements
    that do not wait cost nothing."""

    def __init__(self, url: str, pid: int, lock_timeout: float):
        self.url, self.pid, self.after = url, pid, min(BLOCKER_WATCH_AFTER, lock_timeout / 4)
        self.found: list[Blocker] = []
        self._since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> BlockerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(CONNECT_TIMEOUT)

    @contextmanager
    def statement(self) -> Iterator[BlockerWatch]:
        """Watch the statement run inside; `found` then names who blocked it, if anyone did."""
        self.found = []
        self._since = time.monotonic()
        try:
            yield self
        finally:
            self._since = None

    def _watch(self) -> None:
        conn = None
        try:
            while not self._stop.wait(BLOCKER_POLL_SECONDS):
                since = self._since
                if since is None or time.monotonic() - since < self.after:
                    continue
                conn = conn or connect(self.url, autocommit=True)
                found = blockers(conn, self.pid)
                if found and self._since == since:  # still the statement that was waiting
                    self.found = found
        except (DatabaseError, psycopg.Error):
            pass  # a best-effort diagnosis: the statement's own error still says what happened
        finally:
            if conn is not None:
                conn.close()
