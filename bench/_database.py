"""Shared by the benchmarks that need PostgreSQL: an embedded server on a free port, a throwaway
database with the schema loaded."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from cruddur.postgres import local_server, urls

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (a developer's own server may hold 5432)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(pgdata: Path) -> str:
    """Start an embedded PostgreSQL in `pgdata` on a free port; its unix-socket URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return local_server.start(pgdata, free_port())


@contextmanager
def schema_database() -> Iterator[str]:
    """The URL of a new database holding sql/schema.sql, dropped afterwards: on TEST_DATABASE_URL's
    server when set (a server URL), else on an embedded PostgreSQL in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        server = os.environ.get("TEST_DATABASE_URL")
        pgdata = None
        if not server:
            pgdata = Path(tmp) / "pgdata"
            server = start_server(pgdata)
        name = f"bench_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            url = urls.with_dbname(server, name)
            with psycopg.connect(url) as conn:
                conn.execute((ROOT / "sql" / "schema.sql").read_bytes())
            print(f"database: {urls.describe(url)} ({'TEST_DATABASE_URL' if pgdata is None else 'embedded, unix socket'})")
            yield url
        finally:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if pgdata is not None:
                local_server.stop(pgdata)
