"""`inv db.sessions --tree` and `inv db.slow` against `inv db.sessions`, as a user runs them
(a process each), on a database where sessions wait on each other.

Run: python bench/bench_stalls.py [rounds]

Uses TEST_DATABASE_URL (a maintenance database URL) when set, else an embedded server in a
temporary folder (which loads pg_stat_statements). The scene: 20 idle sessions, one holder of an
advisory lock in an open transaction and a chain of 5 sessions waiting behind it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psycopg
from _database import schema_database
from _timing import compare, time_command
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
IDLE, CHAIN = 20, 5


def _waiting(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (pid,)).fetchone()[0]


def _scene(url: str) -> list[psycopg.Connection]:
    """The sessions of the scene, left open (closing them ends it)."""
    sessions = [psycopg.connect(url, application_name=f"idle-{n}") for n in range(IDLE)]
    holder = psycopg.connect(url, application_name="holder")
    holder.execute("SELECT pg_advisory_xact_lock(0)")
    sessions.append(holder)
    for n in range(CHAIN):  # waiter n holds lock n + 1 and waits for lock n
        waiter = psycopg.connect(url, autocommit=True, application_name=f"waiter-{n}")
        statement = sql.SQL("SELECT pg_advisory_xact_lock({}), pg_advisory_xact_lock({})").format(sql.Literal(n + 1), sql.Literal(n))
        waiter.pgconn.send_query(statement.as_bytes(waiter))
        deadline = time.monotonic() + 30
        while not _waiting(url, waiter.info.backend_pid):
            if time.monotonic() > deadline:
                raise SystemExit(f"waiter {n} never waited")
            time.sleep(0.01)
        sessions.append(waiter)
    return sessions


def main(rounds: int) -> None:
    inv = str(Path(sys.executable).with_name("inv"))
    with schema_database() as url:
        env = {**os.environ, "CONNECTION_URL": url, "COLUMNS": "120"}
        scene = _scene(url)
        try:

            def run(*args: str):
                return lambda: time_command([inv, *args], cwd=ROOT, env=env)

            compare("db.sessions --tree vs db.sessions", run("db.sessions", "--tree"), run("db.sessions"), rounds, 1.2)
            compare("db.slow vs db.sessions", run("db.slow"), run("db.sessions"), rounds, 1.2)
        finally:
            for session in reversed(scene):
                session.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
