"""Throwaway databases beside a target, on its own server: built, read, then dropped.

The migration plan traces pending migrations on a copy of the target's schema, and the drift
check builds what the migration files say; neither ever writes to the target itself. The same
server means the same PostgreSQL version, so what is traced is what the target would do."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from ..errors import DatabaseError, one_line
from . import urls
from .admin import MAINTENANCE_DB
from .connect import connect


@contextmanager
def scratch_database(url: str, purpose: str) -> Iterator[str]:
    """The URL of a new, empty database on the server of `url` (from template0, so nothing the
    server's template1 holds leaks in), named <db>__<purpose>_<random>; dropped on the way out,
    whatever happened. DatabaseError in one line when the server refuses to create it."""
    name = f"{urls.dbname(url)[:40]}__{purpose}_{secrets.token_hex(4)}"
    maintenance = urls.with_dbname(url, MAINTENANCE_DB)
    with connect(maintenance, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.Error as e:
            raise DatabaseError(
                f"cannot create the scratch database {name!r} for the {purpose} on {urls.describe(maintenance)}: {one_line(e)}"
                " (the role needs CREATEDB; the target itself is never written)"
            ) from None
    try:
        yield urls.with_dbname(url, name)
    finally:
        with connect(maintenance, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
