"""The migration plan and the drift check: how long they take, and whether the held-out corpus
is judged right.

- the hazard corpus (bench/hazard_corpus.py): unsafe migrations flagged, safe ones not;
- the plan for 20 pending migrations on a database with 100,000 activities (target: 3 s);
- what the plan and the drift check add to db.migrate --prod: the 20 migrations applied with
  and without them (each from the same starting database);
- the drift check on the seeded schema (target: 3 s).
Run: python bench/bench_migration_plan.py [rounds]   (TEST_DATABASE_URL: on that server instead)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from _database import ROOT, schema_database
from hazard_corpus import CASES, SAFE, UNSAFE, migration_text
from psycopg import sql

from cruddur.postgres import drift, migration_plan, migrations

SCHEMA = (ROOT / "sql" / "schema.sql", "sql/schema.sql")


def seed(url: str, activities: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((ROOT / "sql" / "seed.sql").read_bytes())
        conn.execute(
            "INSERT INTO activities (user_uuid, message) SELECT (SELECT uuid FROM users LIMIT 1), 'message ' || n"
            " FROM generate_series(1, %s) n",
            (activities,),
        )
        conn.execute("ANALYZE")


def write_twenty(folder: Path) -> None:
    for n in range(20):
        column = sql.Identifier(f"extra_{n}")
        up = sql.SQL("ALTER TABLE public.activities ADD COLUMN {} text;").format(column).as_string(None)
        (folder / f"2099010100{n:04d}_extra_{n}.sql").write_text(migration_text(up, True))


def seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def corpus() -> None:
    with schema_database() as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for number, (name, up, transaction, _) in enumerate(CASES):
            (folder / f"20990101{number:06d}_{name}.sql").write_text(migration_text(up, transaction))
        plans = migration_plan.plan(url, migrations.plan(*migrations.inspect(url, folder)))
        found = {p.name: {h.rule for s in p.statements for h in s.hazards} for p in plans}
        right_unsafe = sum(found[name] == rules for name, _, _, rules in UNSAFE)
        wrong_safe = sum(bool(found[name]) for name, *_ in SAFE)
        print(
            f"hazard corpus: {right_unsafe}/{len(UNSAFE)} unsafe migrations flagged with their rule; {wrong_safe}/{len(SAFE)} safe ones flagged"
        )


def main(rounds: int) -> None:
    corpus()
    with schema_database() as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed(url, 100_000)
        write_twenty(folder)
        pending = migrations.plan(*migrations.inspect(url, folder))
        plan_times = [seconds(lambda: migration_plan.plan(url, pending)) for _ in range(rounds)]
        drift_times = [seconds(lambda: drift.check(url, SCHEMA, ROOT / "sql" / "migrations")) for _ in range(rounds)]
        print(
            f"plan of 20 pending migrations, 100,000 activities: median {statistics.median(plan_times):.2f} s over {rounds} (target <= 3 s)"
        )
        print(f"drift check on the seeded schema: median {statistics.median(drift_times):.2f} s over {rounds} (target <= 3 s)")

        def undo():
            with psycopg.connect(url, autocommit=True) as conn:
                for n in range(20):
                    conn.execute(sql.SQL("ALTER TABLE activities DROP COLUMN IF EXISTS {}").format(sql.Identifier(f"extra_{n}")))
                conn.execute("DROP TABLE IF EXISTS schema_migrations")

        def plan_and_drift():
            # As db.migrate --prod does it: the drift check beside the plan.
            with ThreadPoolExecutor(max_workers=1) as pool:
                drifting = pool.submit(drift.check, url, SCHEMA, ROOT / "sql" / "migrations")
                migration_plan.plan(url, pending)
                drifting.result()

        both = [seconds(plan_and_drift) for _ in range(rounds)]
        applied = []
        for _ in range(rounds):
            undo()
            applied.append(seconds(lambda: migrations.migrate(url, folder)))
        base, extra = statistics.median(applied), statistics.median(both)
        print(f"db.migrate --prod's apply step for the 20: median {base:.2f} s; the plan and drift side by side add {extra:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
