"""Every task that writes to --prod asks for the database name or --yes: with no terminal and no
--yes it refuses in one line and leaves the production database exactly as it was."""

import psycopg
import pytest
from psycopg import sql

from cruddur.postgres import urls
from tests.helpers import assert_one_line_error

# Every production write of the db collection, refused by the table test below.
DB_WRITES = [
    ["db.create"],
    ["db.drop"],
    ["db.setup"],
    ["db.schema-load"],
    ["db.seed"],
    ["db.kill"],
    ["db.create-activity", "--handle", "andrewbrown", "--message", "on prod"],
    ["db.migrate"],
    ["db.rollback"],
    ["db.restore", "backups/cruddur-any.dump"],
]
# Production writes with refusal tests of their own next to their other tests (they need Cognito
# or Lambda stand-ins; db.slow writes only when it creates pg_stat_statements or resets it).
OTHER_WRITES = ["cognito.sync", "lambda.invoke", "db.slow"]
WRITES = [args[0] for args in DB_WRITES] + OTHER_WRITES
# Tasks that take --prod and change nothing there (db.connect's psql does only what it is told).
READS = [
    "db.up",
    "db.down",
    "db.status",
    "db.connect",
    "db.sessions",
    "db.wait",
    "db.activities",
    "db.migrations",
    "db.dump",
]
# These print their plan before they ask, as the confirmation is about that plan.
PLAN_FIRST = {"db.migrate": "will apply 1 migration(s) to prod database", "db.rollback": "will roll back 1 migration(s) on prod database"}


def snapshot(url: str) -> dict:
    """What a write could change: the tables' columns, every table's rows, the database itself."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ).fetchall()
        rows = {
            table: conn.execute(sql.SQL("SELECT * FROM public.{} ORDER BY 1").format(sql.Identifier(table))).fetchall()
            for table in ("users", "activities")
        }
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
    return {"columns": columns, "rows": rows, "database": oid}


@pytest.mark.parametrize("task", DB_WRITES, ids=lambda args: args[0])
def test_a_prod_write_without_a_terminal_or_yes_changes_nothing(inv, seeded_url, task):
    if task[0] == "db.rollback":  # something to roll back
        migrated = inv("db.migrate", env={"CONNECTION_URL": seeded_url})
        assert migrated.returncode == 0, migrated.stderr
    before = snapshot(seeded_url)
    with psycopg.connect(seeded_url) as other_client:  # db.kill would end it
        result = inv(*task, "--prod", env={"PROD_CONNECTION_URL": seeded_url})
        other_client.execute("SELECT 1")
    line = assert_one_line_error(result, prefix="refused: ")
    assert f"database {urls.dbname(seeded_url)!r} on prod database {urls.describe(seeded_url)} needs confirmation" in line
    assert line.endswith("run it on a terminal or pass --yes")
    if task[0] in PLAN_FIRST:
        assert result.stdout.startswith(PLAN_FIRST[task[0]])
    else:
        assert result.stdout == ""  # db.setup included: nothing but the refusal
    assert snapshot(seeded_url) == before


def test_every_task_that_takes_prod_is_listed_as_a_write_or_a_read():
    """A new task with --prod must join WRITES (and be refused without a terminal) or READS."""
    import inspect

    from tasks import ns

    def with_prod(collection, prefix=""):
        found = {prefix + name for name, task in collection.tasks.items() if "prod" in inspect.signature(task.body).parameters}
        for name, sub in collection.collections.items():
            found |= with_prod(sub, f"{prefix}{name}.")
        return found

    assert not set(WRITES) & set(READS)
    assert with_prod(ns) == set(WRITES) | set(READS)
