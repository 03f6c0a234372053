"""The kill matrix for migrations: `migrate` and `rollback` interrupted (SIGINT, SIGKILL) at random
points, then the database checked against what the migrations' record says.

The migrations: a table with rows, a column added and filled, two CREATE INDEX CONCURRENTLY in a
transaction:false section (down: two DROP INDEX CONCURRENTLY), another table. After each kill:
- every `applied` migration's objects are there (and its indexes valid), every `pending` one's
  are not, the applied ones come before the pending ones; only the transaction:false one may be
  `interrupted`, and then every INVALID index is named;
- the way out that db.migrations prints (undo what it left, --forget) followed by a full run
  reaches the end state (all applied after migrate, none after rollback) with the rows kept.
Each kill falls at a random moment after the run printed its first line (Python is up), within
the time an uninterrupted run takes from there; it "landed" when the run had not ended by then.
Run: python bench/kill_matrix_migrate.py [landed kills per task and signal, default 20] [cells,
e.g. migrate:SIGKILL,rollback:SIGINT; default all four]
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _database import start_server
from psycopg import sql

from cruddur.postgres import local_server, migrations, urls

ROWS = 20000
BIG = sql.SQL(
    "-- migrate:up\nCREATE TABLE big (a int, b text);\n"
    "INSERT INTO big SELECT n, md5(n::text) FROM generate_series(1, {rows}) AS n;\n"
    "-- migrate:down\nDROP TABLE big;\n"
).format(rows=sql.Literal(ROWS))
FILES = {
    "20260101000000_big.sql": BIG.as_string(None),
    "20260102000000_add_c.sql": (
        "-- migrate:up\nALTER TABLE big ADD COLUMN c int;\nUPDATE big SET c = a;\n-- migrate:down\nALTER TABLE big DROP COLUMN c;\n"
    ),
    "20260103000000_indexes.sql": (
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY big_a ON big (a);\nCREATE INDEX CONCURRENTLY big_c ON big (c);\n"
        "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY big_c;\nDROP INDEX CONCURRENTLY big_a;\n"
    ),
    "20260104000000_other.sql": "-- migrate:up\nCREATE TABLE other (x int);\n-- migrate:down\nDROP TABLE other;\n",
}
VERSIONS = sorted(name.split("_")[0] for name in FILES)
RUNNER = (
    "import sys; from pathlib import Path; from cruddur.postgres import migrations\n"
    "print('started', flush=True)\n"
    "if sys.argv[3] == 'migrate':\n"
    "    migrations.migrate(sys.argv[1], Path(sys.argv[2]))\n"
    "else:\n"
    "    migrations.rollback(sys.argv[1], Path(sys.argv[2]), steps=4)\n"
    "print('ended', flush=True)\n"
)


def facts(conn: psycopg.Connection) -> dict[str, bool]:
    """For each version: are all of its objects there (indexes valid)? None: some but not all."""
    one = conn.execute("SELECT to_regclass('big') IS NOT NULL").fetchone()[0]
    rows = conn.execute("SELECT count(*) FROM big").fetchone()[0] if one else 0
    two = one and conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'big'::regclass AND attname = 'c'").fetchone()[0] == 1
    indexes = dict(
        conn.execute("SELECT indexrelid::regclass::text, indisvalid FROM pg_index WHERE indexrelid::regclass::text IN ('big_a', 'big_c')")
    )
    three = [indexes.get("big_a"), indexes.get("big_c")]
    four = conn.execute("SELECT to_regclass('other') IS NOT NULL").fetchone()[0]
    return {
        VERSIONS[0]: one and rows == ROWS,
        VERSIONS[1]: bool(two),
        VERSIONS[2]: True if three == [True, True] else (False if three == [None, None] else None),
        VERSIONS[3]: four,
    }


def consistent(url: str, folder: Path) -> str | None:
    """None when the record and the database agree; else what disagrees."""
    rows = migrations.status(url, folder)
    states = {row.version: row for row in rows}
    with psycopg.connect(url, autocommit=True) as conn:
        found = facts(conn)
        invalid = migrations.invalid_indexes(conn)
    order = [states[v].state for v in VERSIONS]
    settled = [s for s in order if s != "interrupted"]
    if settled != sorted(settled, key=lambda s: s != "applied"):
        return f"applied after pending: {order}"
    for version in VERSIONS:
        row = states[version]
        if row.state == "applied" and found[version] is not True:
            return f"{version} applied but its objects are {found[version]}"
        if row.state == "pending" and found[version] is not False:
            return f"{version} pending but its objects are {found[version]}"
        if row.state == "interrupted":
            if version != VERSIONS[2]:
                return f"{version} interrupted, but it runs in a transaction"
            if sorted(row.invalid_indexes) != sorted(invalid):
                return f"{version} interrupted naming {row.invalid_indexes}, INVALID indexes are {invalid}"
        if row.state not in ("applied", "pending", "interrupted"):
            return f"{version} is {row.state}"
    return None


def settle(url: str, folder: Path) -> None:
    """The way out db.migrations prints for an interrupted run: undo what it left, forget it."""
    for row in migrations.status(url, folder):
        if row.state == "interrupted":
            with psycopg.connect(url, autocommit=True) as conn:
                if row.direction == "up":
                    for index in ("big_a", "big_c"):
                        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(index)))
                else:
                    for index in ("big_c", "big_a"):
                        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(index)))
            migrations.forget(url, folder, row.version)


def wait_for_sessions_to_end(server: str, name: str, bound: float = 60) -> None:
    """A killed client's server session lives on until it notices; wait for it (bounded)."""
    deadline = time.monotonic() + bound
    with psycopg.connect(server, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise SystemExit(f"sessions on {name} did not end within {bound:g}s")
            time.sleep(0.05)


def run(url: str, folder: Path, task: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, url, str(folder), task], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def main(per_cell: int, cells: set[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cruddur-kill-"))
    pgdata = tmp / "pgdata"
    folder = tmp / "migrations"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    try:
        server = start_server(pgdata)
        template = "kill_template"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
        migrations.migrate(urls.with_dbname(server, template), folder)
        # How long an uninterrupted run takes, start-up included: the kills fall inside it.
        durations = {}
        for task in ("migrate", "rollback"):
            name = f"kill_timing_{task}"
            url = _fresh(server, name, template if task == "rollback" else None)
            process = run(url, folder, task)
            process.stdout.readline()  # "started"
            started = time.monotonic()
            process.communicate(timeout=300)
            durations[task] = time.monotonic() - started
            _drop(server, name)
        print(f"uninterrupted: migrate {durations['migrate']:.2f}s, rollback {durations['rollback']:.2f}s (after start-up)")
        for task in ("migrate", "rollback"):
            for sig in (signal.SIGINT, signal.SIGKILL):
                if cells and f"{task}:{sig.name}" not in cells:
                    continue
                landed = trials = bad = 0
                problems = []
                while landed < per_cell:
                    trials += 1
                    name = f"kill_{task}_{trials}"
                    url = _fresh(server, name, template if task == "rollback" else None)
                    process = run(url, folder, task)
                    first = process.stdout.readline()  # waits for Python to be up
                    time.sleep(random.uniform(0, durations[task]))
                    alive = process.poll() is None
                    process.send_signal(sig)
                    out, _ = process.communicate(timeout=300)
                    if alive and first.strip() == "started" and "ended" not in out:
                        landed += 1
                        wait_for_sessions_to_end(server, name)
                        problem = consistent(url, folder)
                        if problem is None:
                            settle(url, folder)
                            if task == "migrate":
                                migrations.migrate(url, folder)
                            else:
                                migrations.rollback(url, folder, steps=4)
                            expected = task == "migrate"
                            with psycopg.connect(url) as conn:
                                end = facts(conn)
                            states = {r.state for r in migrations.status(url, folder)}
                            if set(end.values()) != {expected} or states != {"applied" if expected else "pending"}:
                                problem = f"after the way out: {end}, {states}"
                        if problem:
                            bad += 1
                            problems.append(problem)
                    _drop(server, name)
                print(f"{task:8} {sig.name:7}: {landed} landed mid-run of {trials} tries; inconsistent or lost: {bad}")
                for problem in problems[:5]:
                    print(f"    {problem}")
    finally:
        local_server.stop(pgdata)
        shutil.rmtree(tmp, ignore_errors=True)


def _fresh(server: str, name: str, template: str | None) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urls.with_dbname(server, name)


def _drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, set(sys.argv[2].split(",")) if len(sys.argv) > 2 else set())
