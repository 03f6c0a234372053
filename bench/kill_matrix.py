"""The kill matrix: SIGINT or SIGKILL at a random moment of `inv db.setup` and `inv db.restore`, then
the next db task, then a look at what is left. Each run must leave the app database whole, holding
either what it held before (old) or what the task was making (new): never missing (lost), never
anything else, and no `__rebuild`/`__old` copy behind (inconsistent).

Only a local embedded server on a free port is used (TEST_DATABASE_URL is ignored): the runs kill
processes and rename databases.
Run: python bench/kill_matrix.py [landed runs per task and signal, default 40] [seed] [cells]
(cells: which to run, e.g. db.restore:SIGKILL,db.setup:SIGINT; default all four)
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
from _database import start_server
from psycopg import sql

from cruddur.postgres import admin, local_server, urls

ROOT = Path(__file__).resolve().parent.parent
INV = str(Path(sys.executable).with_name("inv"))
SIGNALS = {"SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
ATTEMPTS_PER_LANDED = 4  # give up on a cell after this many tries per landed run


def fingerprint(url: str) -> tuple | None:
    """What a database holds, in short (None when it does not exist): its tables, its applied
    migrations, the users' handles and the number of activities."""
    try:
        conn = psycopg.connect(url, connect_timeout=5)
    except psycopg.OperationalError:
        return None
    with conn:
        tables = tuple(name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"))
        if not {"users", "activities", "schema_migrations"} <= set(tables):
            return (tables,)
        versions = tuple(v for (v,) in conn.execute("SELECT version FROM public.schema_migrations ORDER BY 1"))
        handles = tuple(h for (h,) in conn.execute("SELECT handle FROM public.users ORDER BY 1"))
        activities = conn.execute("SELECT count(*) FROM public.activities").fetchone()[0]
    return tables, versions, handles, activities


def leftovers(url: str) -> list[str]:
    with psycopg.connect(urls.with_dbname(url, "postgres")) as conn:
        return [
            name
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(admin.swap_names(urls.dbname(url))),)
            )
        ]


def add_user(url: str, handle: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO public.users (display_name, handle, email, cognito_user_id) VALUES (%s, %s, %s, %s)",
            (handle, handle, f"{handle}@example.com", f"MOCK-{handle}"),
        )


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([INV, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def typical_seconds(args: list[str], env: dict[str, str]) -> float:
    """How long the task takes when left alone (the median of three runs)."""
    took = []
    for _ in range(3):
        started = time.monotonic()
        done = run(args, env)
        assert done.returncode == 0, done.stderr
        took.append(time.monotonic() - started)
    return sorted(took)[1]


def trial(args: list[str], env: dict[str, str], url: str, new: tuple, number: int, signum: int, window: float) -> str | None:
    """One run killed after a random delay: its outcome (old, new, lost, inconsistent), or None when
    the task had finished before the signal (it did not land)."""
    marker = f"before_{number}"
    add_user(url, marker)  # the old content differs from the new one by this user
    old = fingerprint(url)
    process = subprocess.Popen([INV, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(random.uniform(0, window))
    landed = process.poll() is None
    if landed:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    landed = landed and process.returncode != 0
    # The next db task finishes or undoes what the interrupted one left.
    after = run(["db.migrations"], env)
    found = fingerprint(url)
    left = leftovers(url)
    if found is None:
        outcome = "lost"
    elif after.returncode != 0 or left:
        outcome = "inconsistent"
        print(f"    inconsistent: next task exit {after.returncode} {after.stderr.strip()[:300]!r}; left {left}", flush=True)
    elif found == old:
        outcome = "old"
    elif found == new:
        outcome = "new"
    else:
        outcome = "inconsistent"
        print(f"    inconsistent contents: {found}", flush=True)
    if not landed and outcome in ("old", "new"):
        return None
    if found is not None and outcome == "old":
        with psycopg.connect(url) as conn:  # the marker goes, so the next run starts from `new`'s rows
            conn.execute("DELETE FROM public.users WHERE handle = %s", (marker,))
    elif found is None or outcome == "inconsistent":
        # Start the next run from a whole database again (the finding is already counted).
        for name in [urls.dbname(url), *admin.swap_names(urls.dbname(url))]:
            with psycopg.connect(urls.with_dbname(url, "postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        assert run(["db.setup"], env).returncode == 0
    return outcome


def main(landed_per_cell: int, seed: int, cells: set[str] | None = None) -> int:
    random.seed(seed)
    folder = Path(tempfile.mkdtemp(prefix="kill-matrix-"))
    pgdata = folder / "pgdata"
    try:
        server = start_server(pgdata)
        url = urls.with_dbname(server, "cruddur")
        env = {k: v for k, v in os.environ.items() if k not in ("CONNECTION_URL", "PROD_CONNECTION_URL")}
        env.update(CONNECTION_URL=url, CRUDDUR_PGDATA=str(folder / "unused"))
        assert run(["db.setup"], env).returncode == 0
        set_up = fingerprint(url)
        dump_path = folder / "restore-me.dump"
        add_user(url, "from_the_dump")
        assert run(["db.dump", "--output", str(dump_path)], env).returncode == 0
        dumped = fingerprint(url)
        assert run(["db.setup"], env).returncode == 0
        tasks = {"db.setup": (["db.setup"], set_up), "db.restore": (["db.restore", str(dump_path)], dumped)}
        print(f"kill matrix on {urls.describe(url)} (embedded), seed {seed}, {landed_per_cell} landed runs per cell")
        totals = Counter()
        failures = 0
        for task, (args, new) in tasks.items():
            window = typical_seconds(args, env) * 1.1
            for name, signum in SIGNALS.items():
                if cells and f"{task}:{name}" not in cells:
                    continue
                counts = Counter()
                attempts = 0
                while sum(counts.values()) < landed_per_cell and attempts < landed_per_cell * ATTEMPTS_PER_LANDED:
                    attempts += 1
                    outcome = trial(args, env, url, new, attempts, signum, window)
                    if outcome:
                        counts[outcome] += 1
                landed = sum(counts.values())
                totals.update(counts)
                failures += counts["lost"] + counts["inconsistent"]
                print(
                    f"{task:<11} {name:<8} landed {landed:>3} of {attempts:>3} (window {window:.2f}s):"
                    f" old {counts['old']:>3}, new {counts['new']:>3}, lost {counts['lost']}, inconsistent {counts['inconsistent']}",
                    flush=True,
                )
        print(f"total: {sum(totals.values())} landed; lost {totals['lost']}, inconsistent {totals['inconsistent']}")
        return 1 if failures else 0
    finally:
        local_server.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    landed_per_cell = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    sys.exit(main(landed_per_cell, seed, set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None))
