"""`inv db.migrate` and `inv db.migrations` against dbmate, on the same files and server.

- apply 200 pending small migrations: `inv db.migrate` vs `dbmate up` (each from an empty
  database, reset between runs and not timed);
- read the status of 1,000 applied migrations: `inv db.migrations` vs `dbmate status`.

The tasks read the project's sql/migrations/, so the benchmark writes its files there (versions
in the year 2999, after every real one) and removes them at the end: run it on its own, not while
the tests run. dbmate runs with --no-dump-schema (its schema dump would time pg_dump, not dbmate).
Run: python bench/bench_migrate.py [rounds]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg
from _database import start_server
from _timing import compare, time_command
from psycopg import sql

from cruddur.postgres import local_server, urls

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "sql" / "migrations"
PREFIX = "2999"


def write_migrations(count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = FOLDER / f"{PREFIX}{n:010d}_bench_{n}.sql"
        table = sql.Identifier(f"bench_{n}")
        up = sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, note text);").format(table).as_string(None)
        down = sql.SQL("DROP TABLE {};").format(table).as_string(None)
        path.write_text(f"-- migrate:up\n{up}\n\n-- migrate:down\n{down}\n")
        paths.append(path)
    return paths


def reset(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(urls.with_dbname(server, name)) as conn:
        conn.execute((ROOT / "sql" / "schema.sql").read_bytes())


def dbmate_url(server: str, name: str) -> str:
    params = urls.parse(server)
    return f"postgres://{params.get('user') or 'postgres'}@:{params.get('port') or 5432}/{name}?socket={params['host']}"


def main(rounds: int) -> None:
    dbmate = shutil.which("dbmate")
    if not dbmate:
        sys.exit("dbmate not found: pip install -r requirements-dev.txt")
    folder = Path(tempfile.mkdtemp(prefix="cruddur-bench-"))
    pgdata = folder / "pgdata"
    written: list[Path] = []
    try:
        server = start_server(pgdata)
        name = "bench_migrate"
        env = {k: v for k, v in os.environ.items() if k not in ("CONNECTION_URL", "PROD_CONNECTION_URL")}
        env.update(CONNECTION_URL=urls.with_dbname(server, name), DATABASE_URL=dbmate_url(server, name))
        inv = str(Path(sys.executable).with_name("inv"))
        dbmate_args = [dbmate, "--migrations-dir", str(FOLDER), "--no-dump-schema"]

        written = write_migrations(200)

        def fresh_then(argv):
            def run():
                reset(server, name)
                return time_command(argv, cwd=ROOT, env=env)

            return run

        compare(
            "inv db.migrate, 200 pending   vs dbmate up    ", fresh_then([inv, "db.migrate"]), fresh_then([*dbmate_args, "up"]), rounds, 1.0
        )

        for path in written:
            path.unlink()
        written = write_migrations(1000)
        reset(server, name)
        time_command([inv, "db.migrate"], cwd=ROOT, env=env)
        compare(
            "inv db.migrations, 1,000 files vs dbmate status",
            lambda: time_command([inv, "db.migrations"], cwd=ROOT, env=env),
            lambda: time_command([*dbmate_args, "status"], cwd=ROOT, env=env),
            rounds,
            1.0,
        )
        # The floor under any inv task: Python, invoke and the task modules starting up.
        compare(
            "inv --list (start-up alone)    vs dbmate status",
            lambda: time_command([inv, "--list"], cwd=ROOT, env=env),
            lambda: time_command([*dbmate_args, "status"], cwd=ROOT, env=env),
            rounds,
        )
    finally:
        for path in written:
            path.unlink(missing_ok=True)
        local_server.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
