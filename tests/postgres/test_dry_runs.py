"""`inv --dry TASK` (Invoke's core flag) makes every write task print its plan and change nothing,
on the local database and on --prod (where it neither asks nor backs up)."""

import psycopg
import pytest

from cruddur.postgres import urls
from tests.helpers import ROOT
from tests.postgres.test_prod_guard import WRITE_TABLE, backups_of, snapshot

MIGRATIONS = ROOT / "sql" / "migrations"
# Write tasks that take no --prod, with what they would write.
LOCAL_ONLY = [["db.new-migration", "add_nothing"], ["db.dump"]]


def state(url: str) -> dict:
    """The snapshot of the tables, plus the database's identity (a rebuild makes a new one) and the
    files a task could write."""
    with psycopg.connect(url) as conn:
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    return {**snapshot(url), "oid": oid, "migration files": sorted(MIGRATIONS.iterdir()), "backups": backups_of(url)}


@pytest.fixture
def prepare(request, seeded_url, run_task):
    def prepare(args, variable):
        env = {variable: seeded_url}
        if args[0] == "db.rollback":  # something to roll back
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


CASES = (
    [(args, "local") for args, _ in WRITE_TABLE] + [(args, "prod") for args, _ in WRITE_TABLE] + [(args, "local") for args in LOCAL_ONLY]
)


@pytest.mark.parametrize("task, where", CASES, ids=lambda value: value[0] if isinstance(value, list) else value)
def test_dry_prints_the_plan_and_changes_nothing(run_task, seeded_url, prepare, task, where):
    env, args = prepare(task, "PROD_CONNECTION_URL" if where == "prod" else "CONNECTION_URL")
    before = state(seeded_url)
    with psycopg.connect(seeded_url) as other_client:  # db.kill and db.drop would end it
        result = run_task("--dry", *args, *(["--prod"] if where == "prod" else []), env=env)
        other_client.execute("SELECT 1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("dry run: nothing changed"), result.stdout
    assert "Type" not in result.stderr and "backing up" not in result.stdout
    if task[0] not in ("db.new-migration", "cognito.sync"):
        assert urls.describe(seeded_url) in result.stdout  # the plan names its target
    assert state(seeded_url) == before
