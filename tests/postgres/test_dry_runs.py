"""`inv --dry TASK` (Invoke's core flag) makes every write task print its plan and change nothing,
on the local database and on --prod (where it neither asks nor backs up); so does a task's own
--dry-run."""

import psycopg
import pytest

from cruddur.postgres import urls
from tests.helpers import ROOT
from tests.postgres.test_blocking import Holder, Waiter, is_alive, is_waiting
from tests.postgres.test_prod_guard import WRITE_TABLE, backups_of, snapshot

MIGRATIONS = ROOT / "sql" / "migrations"
FIRST_MIGRATION = sorted(MIGRATIONS.glob("*.sql"))[0].name.split("_")[0]
# Write tasks that take no --prod, with what they would write.
LOCAL_ONLY = [["db.new-migration", "add_nothing"], ["db.dump"]]
# The other ways a task writes: a chosen session (PID: a root blocker the test holds open), the
# server's statistics and roles, the migrations' record.
OTHER_WRITES = [
    ["db.kill", "--root"],
    ["db.kill", "--pid", "PID"],
    ["db.slow", "--reset"],
    ["db.roles"],
    ["db.migrate", "--baseline", FIRST_MIGRATION],
    ["db.migrations", "--accept", FIRST_MIGRATION],
    ["db.migrations", "--forget", FIRST_MIGRATION],
]


def state(url: str) -> dict:
    """The snapshot of the tables, plus the database's identity (a rebuild makes a new one) and the
    files a task could write."""
    with psycopg.connect(url) as conn:
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
        roles = conn.execute("SELECT array_agg(rolname ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'cruddur%'").fetchone()[0]
        statistics = None
        if conn.execute("SELECT to_regclass('pg_stat_statements_info')").fetchone()[0]:
            statistics = conn.execute("SELECT stats_reset::text FROM pg_stat_statements_info").fetchone()[0]
    return {
        **snapshot(url),
        "oid": oid,
        "roles": roles,
        "statistics reset": statistics,
        "migration files": sorted(MIGRATIONS.iterdir()),
        "backups": backups_of(url),
    }


@pytest.fixture
def prepare(request, seeded_url, run_task, server_sessions_alone):
    def prepare(args, variable):
        env = {variable: seeded_url}
        if args[0] == "db.slow":  # the extension in place: db.slow --reset then resets its statistics
            with psycopg.connect(seeded_url) as conn:
                if "pg_stat_statements" not in conn.execute("SHOW shared_preload_libraries").fetchone()[0]:
                    pytest.skip("this server does not load pg_stat_statements")
            assert run_task("db.slow", env={"CONNECTION_URL": seeded_url}).returncode == 0
        if args[0] == "db.rollback" or "--forget" in args:  # something to roll back
            assert run_task("db.migrate", env={"CONNECTION_URL": seeded_url}).returncode == 0
        if args[0] == "cognito.sync":
            from tests.aws.test_cognito import add_cognito_user

            idp, pool_id, pool_env = request.getfixturevalue("pool")
            add_cognito_user(idp, pool_id, "andrew", "andrewbrown")
            env.update(pool_env)
        if "DUMP" in args:  # any dump: a dry restore never reads past its plan
            path = request.getfixturevalue("tmp_path") / "any.dump"
            assert run_task("db.dump", "--output", str(path), env={"CONNECTION_URL": seeded_url}).returncode == 0
            args = [str(path) if arg == "DUMP" else arg for arg in args]
        return env, args

    return prepare


WRITES = [args for args, _ in WRITE_TABLE] + OTHER_WRITES
CASES = [(args, "local") for args in WRITES] + [(args, "prod") for args in WRITES] + [(args, "local") for args in LOCAL_ONLY]


@pytest.mark.parametrize("task, where", CASES, ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_dry_prints_the_plan_and_changes_nothing(run_task, seeded_url, prepare, task, where):
    env, args = prepare(task, "PROD_CONNECTION_URL" if where == "prod" else "CONNECTION_URL")
    before = state(seeded_url)
    # Other clients, which db.kill and db.drop would end: a root blocker and the session it blocks.
    holder = Holder(seeded_url, "dry-run-root", exclusive=[1])
    waiter = Waiter(seeded_url, "dry-run-waiter", [1])
    args = [str(holder.pid) if arg == "PID" else arg for arg in args]
    try:
        result = run_task("--dry", *args, *(["--prod"] if where == "prod" else []), env=env)
        assert is_alive(seeded_url, holder.pid) and is_waiting(seeded_url, waiter.pid)
    finally:
        holder.conn.close()
        waiter.finish()
        waiter.conn.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("dry run: nothing changed"), result.stdout
    assert "Type" not in result.stderr and "backing up" not in result.stdout
    if task[0] not in ("db.new-migration", "cognito.sync"):
        assert urls.describe(seeded_url) in result.stdout  # the plan names its target
    assert state(seeded_url) == before


@pytest.mark.parametrize("task", [["db.migrate"], ["db.rollback"], ["db.kill"], ["db.kill", "--root"]], ids=" ".join)
def test_a_tasks_own_dry_run_flag_is_inv_dry(run_task, seeded_url, prepare, task):
    env, args = prepare(task, "CONNECTION_URL")
    before = state(seeded_url)
    holder = Holder(seeded_url, "dry-run-root", exclusive=[1])
    waiter = Waiter(seeded_url, "dry-run-waiter", [1])
    try:
        own = run_task(*args, "--dry-run", env=env)
        core = run_task("--dry", *args, env=env)
        assert is_alive(seeded_url, holder.pid) and is_waiting(seeded_url, waiter.pid)
    finally:
        holder.conn.close()
        waiter.finish()
        waiter.conn.close()
    # The same plan (times shown in it move on between the two runs).
    assert (own.returncode, own.stdout.splitlines()[0], len(own.stdout.splitlines())) == (
        core.returncode,
        core.stdout.splitlines()[0],
        len(core.stdout.splitlines()),
    )
    assert own.stdout.rstrip().endswith("dry run: nothing changed"), own.stdout
    assert state(seeded_url) == before


@pytest.mark.parametrize(
    "task", [["db.kill", "--root"], ["db.migrate"], ["db.rollback"], ["db.migrate", "--baseline", FIRST_MIGRATION]], ids=" ".join
)
def test_a_dry_run_that_finds_nothing_to_do_ends_the_same_way(run_task, schema_url, task):
    """With nothing to change, a dry run still ends with its closing line (a script reads the last one)."""
    env = {"CONNECTION_URL": schema_url}
    if task != ["db.rollback"]:  # rollback: nothing applied yet; the others: everything applied already
        assert run_task("db.migrate", env=env).returncode == 0
    result = run_task("--dry", *task, env=env)
    assert result.returncode == 0, result.stderr
    *said, last = result.stdout.splitlines()
    assert "nothing to do" in said[-1] and last == "dry run: nothing changed"
