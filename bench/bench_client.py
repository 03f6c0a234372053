"""Benchmark the Postgres client against raw psycopg, side by side in one process.

    python bench/bench_client.py [--rounds 40] [--batch 50] [--synchronous-commit off]

Uses TEST_DATABASE_URL (a maintenance database URL) when set, else starts an embedded server
in a temporary folder. Each figure is the median over rounds; baseline and candidate batches
alternate within every round so drift (table growth, caches, the machine) hits both alike.

1. creations/s: create_activity() through the client (one statement, pooled) against raw
   psycopg on one connection doing the original two statements (insert, commit, select the
   object as JSON, commit).
2. overhead: the same one create statement, raw psycopg on one autocommit connection against
   the client's query_commit() and create_activity() (target: <= 10% slower), for the default
   pool (tests connections idle > 0.5 s), one that tests on every checkout, and one that never does.
3. home feed latency with 10,000 activities, the default page and the whole feed, against raw
   psycopg executing the same wrapped statement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from _database import start_server
from psycopg import sql

from cruddur.activities import HOME_FEED_LIMIT, TTLS, create_activity, home_activities
from cruddur.postgres import local_server, urls
from cruddur.postgres.client import ARRAY_JSON, OBJECT_JSON, Database

ROOT = Path(__file__).resolve().parent.parent
# The original insert (lib/db.py era), then object.sql by the returned uuid.
ORIGINAL_INSERT = """
INSERT INTO public.activities (user_uuid, message, expires_at)
VALUES ((SELECT uuid FROM public.users WHERE users.handle = %(handle)s LIMIT 1), %(message)s, %(expires_at)s)
RETURNING uuid
"""


def run_alternating(contenders: dict[str, Callable], rounds: int, batch: int) -> dict[str, list[float]]:
    """Seconds per operation of each contender, one figure per round; within a round the
    batches run back to back (order flipped every round) so drift hits all alike."""
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm up: connections made, statements prepared
        for _ in range(10):
            fn()
    for r in range(rounds):
        order = list(contenders.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            start = time.perf_counter()
            for _ in range(batch):
                fn()
            timings[name].append((time.perf_counter() - start) / batch)
    return timings


def report(title: str, timings: dict[str, list[float]], unit: str) -> None:
    """Median figure per contender, and the median of its per-round time ratios to the first."""
    print(f"\n{title}")
    baseline_name, baseline = next(iter(timings.items()))
    for name, per_op in timings.items():
        seconds = statistics.median(per_op)
        figure = f"{1 / seconds:8.0f} /s" if unit == "rate" else f"{seconds * 1000:8.3f} ms"
        ratio = statistics.median(t / b for t, b in zip(per_op, baseline))
        print(f"  {name:<46} {figure}   time ratio {ratio:5.3f}")
    print(f"  (ratio: median over rounds of time per op / {baseline_name!r} in the same round)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument(
        "--synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="off: commits do not wait for the WAL flush, so disk noise leaves the client's own cost",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = os.environ.get("TEST_DATABASE_URL") or start_server(Path(tmp) / "pgdata")
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET synchronous_commit = {}").format(sql.Identifier(name), sql.Literal(args.synchronous_commit))
            )
        url = urls.with_dbname(server, name)
        try:
            bench(url, args.rounds, args.batch)
        finally:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if not os.environ.get("TEST_DATABASE_URL"):
                local_server.stop(Path(tmp) / "pgdata")


def bench(url: str, rounds: int, batch: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute((ROOT / "sql" / "schema.sql").read_bytes())
        conn.execute((ROOT / "sql" / "seed.sql").read_bytes())
    with psycopg.connect(url) as conn:
        version = conn.info.server_version
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
    print(f"PostgreSQL {version}, psycopg {psycopg.__version__}, synchronous_commit={sync}, {rounds} rounds x {batch} operations, medians")

    ttl = TTLS["7-days"]
    params = {"handle": "andrewbrown", "message": "bench", "ttl_seconds": ttl.total_seconds()}
    raw_two = psycopg.connect(url)  # psycopg's default: a transaction per block, as lib/db.py used
    raw_one = psycopg.connect(url, autocommit=True)
    pools = {
        "default": Database(url, max_size=4).open(),  # checks connections idle > 0.5 s
        "check always": Database(url, max_size=4, check_after=0).open(),
        "check never": Database(url, max_size=4, check_after=None).open(),
    }
    checked = pools["default"]
    create_sql = checked.template("activities", "create")
    object_json = OBJECT_JSON.format(checked.template("activities", "object"))

    def original_two_statements():
        new_uuid = raw_two.execute(ORIGINAL_INSERT, {"handle": "andrewbrown", "message": "bench", "expires_at": None}).fetchone()[0]
        raw_two.commit()
        row = raw_two.execute(object_json, {"uuid": new_uuid}).fetchone()[0]
        raw_two.commit()
        return row

    def creator(pool):
        return lambda: create_activity(pool, "andrewbrown", "bench", "7-days")

    def committer(pool):
        return lambda: pool.query_commit(create_sql, params)

    def feeder(pool, limit):
        return lambda: home_activities(pool, limit)

    def raw_one_statement():
        return raw_one.execute(create_sql, params).fetchone()[0]

    try:
        results = run_alternating(
            {
                "raw psycopg, original 2 statements, 1 conn": original_two_statements,
                **{f"client create_activity ({label})": creator(pool) for label, pool in pools.items()},
            },
            rounds,
            batch,
        )
        report("1. activity creations per second", results, "rate")

        results = run_alternating(
            {
                "raw psycopg, 1 statement, 1 autocommit conn": raw_one_statement,
                **{f"client query_commit ({label})": committer(pool) for label, pool in pools.items()},
                **{f"client create_activity ({label})": creator(pool) for label, pool in pools.items()},
            },
            rounds,
            batch,
        )
        report("2. client overhead on the same one create statement (target: ratio <= 1.10)", results, "rate")

        with psycopg.connect(url) as conn:
            conn.execute("TRUNCATE activities")
            conn.execute(
                "INSERT INTO activities (user_uuid, message, created_at, expires_at) "
                "SELECT users.uuid, 'message ' || n, now() - n * interval '1 second', now() + interval '7 days' "
                "FROM users, generate_series(1, 5000) AS n"
            )
            conn.execute("ANALYZE activities")
            total = conn.execute("SELECT count(*) FROM activities").fetchone()[0]
        home_json = ARRAY_JSON.format(checked.template("activities", "home"))
        for limit, feed_batch in ((HOME_FEED_LIMIT, batch), (None, max(batch // 20, 5))):
            results = run_alternating(
                {
                    "raw psycopg, same statement, 1 conn": lambda limit=limit: raw_one.execute(home_json, {"limit": limit}).fetchone()[0],
                    **{f"client home_activities ({label})": feeder(pool, limit) for label, pool in pools.items()},
                },
                rounds,
                feed_batch,
            )
            shown = len(home_activities(checked, limit))
            report(f"3. home feed latency, {total} activities, {shown} returned (limit {limit})", results, "latency")
    finally:
        raw_two.close()
        raw_one.close()
        for pool in pools.values():
            pool.close()


if __name__ == "__main__":
    sys.exit(main())
