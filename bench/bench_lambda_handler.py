"""Post-confirmation handler: warm invocation latency against the original pattern (a new
connection, the insert and a close on every call). Cold starts: bench_lambda_cold_start.py.

    python bench/bench_lambda_handler.py [--calls 300]

Uses TEST_DATABASE_URL when set (a server URL: a throwaway database is made on it), else
starts an embedded PostgreSQL in a temporary folder. Prints figures and ratios, no verdicts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid

import psycopg
from _database import schema_database

from cruddur.lambda_build import local as lambda_local

INSERT = """
    INSERT INTO public.users (display_name, email, handle, cognito_user_id)
    VALUES (%(name)s, %(email)s, %(preferred_username)s, %(sub)s)
    ON CONFLICT (cognito_user_id) DO NOTHING
"""


def event() -> dict:
    sub = str(uuid.uuid4())
    sample = json.loads(lambda_local.DEFAULT_EVENT.read_text())
    sample["request"]["userAttributes"].update(sub=sub, preferred_username=f"u_{sub[:13]}")
    return sample


def original_pattern(event: dict, url: str) -> dict:
    """What the function did before: connect, insert, commit, close, on every invocation."""
    user = event["request"]["userAttributes"]
    conn = psycopg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(INSERT, user)
        conn.commit()
    finally:
        conn.close()
    return event


def timed_calls(call, url: str, calls: int) -> list[float]:
    timings = []
    for _ in range(calls):
        e = event()
        started = time.perf_counter()
        call(e, url)
        timings.append(time.perf_counter() - started)
    return timings


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def describe(name: str, timings: list[float]) -> float:
    median = statistics.median(timings)
    p95 = statistics.quantiles(timings, n=20)[-1]
    print(f"  {name:<34} median {ms(median)}   p95 {ms(p95)}   mean {ms(statistics.fmean(timings))}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="warm invocations per pattern")
    args = parser.parse_args()

    with schema_database() as url:
        print(f"Python {sys.version.split()[0]}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__})")

        handler = lambda_local.load_handler()
        handler.handle(event(), url)  # warm: the execution environment already has its connection
        for _ in range(20):  # warm both paths' caches and the server alike
            original_pattern(event(), url)
            handler.handle(event(), url)
        # Interleave rounds so that drift (autovacuum, cache) hits both patterns alike.
        new, old = [], []
        rounds = 10
        for _ in range(rounds):
            new += timed_calls(handler.handle, url, args.calls // rounds)
            old += timed_calls(original_pattern, url, args.calls // rounds)
        handler.close_connection()

        print(f"\nwarm invocation, {len(new)} calls each (insert of a new user)")
        old_median = describe("original: connect+insert+close", old)
        new_median = describe("handler: reused connection", new)
        print(f"  ratio handler/original (median)    {new_median / old_median:.3f}x")
        print(f"  ratio handler/original (mean)      {statistics.fmean(new) / statistics.fmean(old):.3f}x")


if __name__ == "__main__":
    main()
