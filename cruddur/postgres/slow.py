"""Which statements cost the most: pg_stat_statements, read for the app database.

The module must be loaded when the server starts (shared_preload_libraries; RDS does so by
default, the embedded server is started with it), and the extension created in the database
(CREATE EXTENSION) before its view can be read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import psycopg
from psycopg import errors, sql

from ..errors import DatabaseError, one_line
from ..timeouts import EXTENSION_LOCK_TIMEOUT
from .connect import connect, set_lock_timeout

EXTENSION = "pg_stat_statements"


class Readiness(Enum):
    READY = "ready"
    NOT_CREATED = "loaded, extension not created"
    NOT_LOADED = "not loaded"


@dataclass(frozen=True)
class Statement:
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    user: str | None
    query: str


# The module defines its settings only when it is loaded at server start; a setting written in
# the configuration without the module shows as a placeholder of type string.
LOADED_SQL = "SELECT EXISTS (SELECT FROM pg_settings WHERE name = 'pg_stat_statements.max' AND vartype = 'integer')"
SCHEMA_SQL = "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = %s"

TOP_SQL = """
SELECT s.calls, s.total_exec_time, s.mean_exec_time, s.rows, r.rolname, s.query
FROM {view} AS s
LEFT JOIN pg_roles AS r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.total_exec_time DESC, s.calls DESC
LIMIT %s
"""


def readiness(url: str) -> Readiness:
    """Whether the statements' statistics can be read in the URL's database, or what is missing."""
    with connect(url, autocommit=True) as conn:
        return _readiness(conn)


def _readiness(conn: psycopg.Connection) -> Readiness:
    try:
        if not conn.execute(LOADED_SQL).fetchone()[0]:
            return Readiness.NOT_LOADED
        created = conn.execute(SCHEMA_SQL, (EXTENSION,)).fetchone()
    except psycopg.Error as e:
        raise DatabaseError(f"cannot tell whether {EXTENSION} is loaded: {one_line(e)}") from None
    return Readiness.READY if created else Readiness.NOT_CREATED


def create_extension(url: str) -> None:
    """CREATE EXTENSION pg_stat_statements in the URL's database (kept if it exists)."""
    with connect(url, autocommit=True) as conn:
        try:
            set_lock_timeout(conn, EXTENSION_LOCK_TIMEOUT)
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(EXTENSION)))
        except errors.InsufficientPrivilege as e:
            raise DatabaseError(
                f"cannot create the extension {EXTENSION}: {one_line(e)} (a superuser, or RDS's master user, may)"
            ) from None
        except psycopg.Error as e:
            raise DatabaseError(f"cannot create the extension {EXTENSION}: {one_line(e)}") from None


def top_statements(url: str, limit: int | None) -> list[Statement]:
    """The app database's statements with the most total execution time, most first (all of
    them with limit None)."""
    with connect(url, autocommit=True) as conn:
        view = _view(conn)
        try:
            rows = conn.execute(sql.SQL(TOP_SQL).format(view=view), (limit,)).fetchall()
        except errors.ObjectNotInPrerequisiteState:
            raise DatabaseError(f"{EXTENSION} is created but the module is not loaded; {_LOAD_IT}") from None
        except psycopg.Error as e:
            raise DatabaseError(f"cannot read {EXTENSION}: {one_line(e)}") from None
    return [Statement(calls, total, mean, count, user, query) for calls, total, mean, count, user, query in rows]


def reset(url: str) -> None:
    """Forget the statistics gathered so far (pg_stat_statements_reset())."""
    with connect(url, autocommit=True) as conn:
        schema = _schema(conn)
        try:
            conn.execute(sql.SQL("SELECT {}()").format(sql.Identifier(schema, "pg_stat_statements_reset")))
        except psycopg.Error as e:
            raise DatabaseError(f"cannot reset {EXTENSION}: {one_line(e)}") from None


_LOAD_IT = "restart the server with it in shared_preload_libraries"


def _schema(conn: psycopg.Connection) -> str:
    try:
        found = conn.execute(SCHEMA_SQL, (EXTENSION,)).fetchone()
    except psycopg.Error as e:
        raise DatabaseError(f"cannot read {EXTENSION}: {one_line(e)}") from None
    if found is None:
        raise DatabaseError(f"the extension {EXTENSION} is not created in {conn.info.dbname}")
    return found[0]


def _view(conn: psycopg.Connection) -> sql.Composable:
    return sql.Identifier(_schema(conn), EXTENSION)
