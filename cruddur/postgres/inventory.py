"""What a database holds, read without writing anything: the tables with their rows and sizes, for
the plan a write task shows before it asks and for the check it prints after it acted."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from ..errors import DatabaseError, NoSuchDatabase, one_line
from ..timeouts import TABLE_COUNT_WAIT
from .connect import connect, set_lock_timeout

TABLES_SQL = """
SELECT n.nspname, c.relname, pg_total_relation_size(c.oid), c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
ORDER BY n.nspname, c.relname
"""


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    rows: int  # exact, or the planner's estimate when counting took too long (exact False)
    exact: bool
    bytes: int

    @property
    def qualified(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


def tables(url: str) -> list[Table] | None:
    """Every table of the URL's database with its rows and size; None when the database does not exist."""
    try:
        conn = connect(url, autocommit=True)
    except NoSuchDatabase:
        return None
    with conn:
        try:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(TABLE_COUNT_WAIT * 1000)}ms",))
            set_lock_timeout(conn, TABLE_COUNT_WAIT)
            found = conn.execute(TABLES_SQL).fetchall()
            return [_table(conn, *row) for row in found]
        except psycopg.Error as e:
            raise DatabaseError(f"cannot list the tables of {conn.info.dbname!r}: {one_line(e)}") from None


def _table(conn: psycopg.Connection, schema: str, name: str, size: int, estimate: int) -> Table:
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
    try:
        return Table(schema, name, conn.execute(query).fetchone()[0], True, size)
    except (errors.QueryCanceled, errors.LockNotAvailable, errors.InsufficientPrivilege):
        return Table(schema, name, max(estimate, 0), False, size)
