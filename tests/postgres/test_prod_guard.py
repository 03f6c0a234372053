"""Every task that writes to --prod follows one protocol: it shows its plan and asks for the database
name or --yes (with no terminal and no --yes it refuses in one line and leaves the production
database exactly as it was); where it can lose data it first writes a backup that restores what
it replaced."""

import stat
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cruddur.postgres import admin, dump, urls
from tests.aws.test_cognito import add_cognito_user
from tests.helpers import ROOT, Terminal, add_user, assert_one_line_error

# Every production write, as (arguments, whether it can lose data and so backs up first).
# DUMP stands for a dump of another database, for db.restore.
WRITE_TABLE = [
    (["db.create"], False),
    (["db.drop"], True),
    (["db.setup"], True),
    (["db.schema-load"], True),
    (["db.seed"], True),
    (["db.kill"], False),
    (["db.create-activity", "--handle", "andrewbrown", "--message", "on prod"], False),
    (["db.migrate"], True),
    (["db.rollback"], True),
    (["db.restore", "DUMP"], True),
    (["db.connect", "--write", "--command", "DELETE FROM activities"], True),
    (["cognito.sync"], True),
]
# Production writes with refusal tests of their own next to their other tests (they need Lambda
# stand-ins; db.slow writes only when it creates pg_stat_statements or resets it; db.roles makes
# server-wide roles, which tests running side by side must not share).
WRITES = [args[0] for args, _ in WRITE_TABLE] + ["lambda.invoke", "db.slow", "db.roles"]
# Tasks that take --prod and change nothing there (db.connect without --write runs read-only).
READS = [
    "db.up",
    "db.down",
    "db.status",
    "db.sessions",
    "db.wait",
    "db.activities",
    "db.migrations",
    "db.dump",
    "db.drift",  # builds its reference in a scratch database beside the target, never in it
]


def snapshot(url: str) -> dict:
    """What a write could change: the tables' columns and every table's rows."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ).fetchall()
        tables = [name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        rows = {
            table: conn.execute(sql.SQL("SELECT * FROM public.{} ORDER BY 1").format(sql.Identifier(table))).fetchall() for table in tables
        }
    return {"columns": columns, "rows": rows}


@pytest.fixture
def prepared(request, seeded_url, run_task, tmp_path):
    """The environment and arguments of a table row, with what it needs in place."""

    def prepare(args):
        env = {"PROD_CONNECTION_URL": seeded_url}
        if args[0] == "db.rollback":  # something to roll back
            migrated = run_task("db.migrate", env={"CONNECTION_URL": seeded_url})
            assert migrated.returncode == 0, migrated.stderr
        if args[0] == "db.seed":  # rows the seed does not hold, in tables it loads into
            with psycopg.connect(seeded_url) as conn:
                conn.execute("DELETE FROM activities")
                conn.execute("DELETE FROM users")
            add_user(seeded_url, "keeper")
        if args[0] == "cognito.sync":  # a pool user whose handle holds a placeholder id
            idp, pool_id, pool_env = request.getfixturevalue("pool")
            add_cognito_user(idp, pool_id, "andrew", "andrewbrown")
            env.update(pool_env)
        if "DUMP" in args:  # a dump of another database: the schema and no rows
            other_url = urls.with_dbname(seeded_url, urls.dbname(seeded_url) + "_other")
            other = tmp_path / "other.dump"
            admin.create_database(other_url)
            try:
                admin.run_sql_file(other_url, ROOT / "sql" / "schema.sql")
                dump.dump(other_url, other)
            finally:
                admin.drop_database(other_url)
            args = [str(other) if arg == "DUMP" else arg for arg in args]
        return env, args

    return prepare


@pytest.mark.parametrize("task, backs_up", WRITE_TABLE, ids=lambda value: value[0] if isinstance(value, list) else "")
def test_a_prod_write_without_a_terminal_or_yes_shows_its_plan_and_changes_nothing(run_task, seeded_url, prepared, task, backs_up):
    env, args = prepared(task)
    before = snapshot(seeded_url)
    with psycopg.connect(seeded_url) as other_client:  # db.kill would end it
        result = run_task(*args, "--prod", env=env)
        other_client.execute("SELECT 1")
    line = assert_one_line_error(result, prefix="refused: ")
    assert f"database {urls.dbname(seeded_url)!r} on prod database {urls.describe(seeded_url)} needs confirmation" in line
    assert line.endswith("run it on a terminal or pass --yes")
    assert "prod database" in result.stdout  # the plan, naming the target, came before the question
    assert "backup" not in result.stdout and "Type" not in result.stdout
    assert snapshot(seeded_url) == before
    assert not backups_of(seeded_url)


@pytest.mark.parametrize("task, backs_up", WRITE_TABLE, ids=lambda value: value[0] if isinstance(value, list) else "")
def test_a_prod_write_with_yes_names_a_backup_that_restores_what_it_replaced(run_task, server_url, seeded_url, prepared, task, backs_up):
    env, args = prepared(task)
    before = snapshot(seeded_url)
    result = run_task(*args, "--prod", "--yes", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    written = [line for line in result.stdout.splitlines() if line.startswith("  backup written: ")]
    if not backs_up:
        assert not written and not backups_of(seeded_url)
        return
    assert len(written) == 1, result.stdout
    backup = Path(written[0].removeprefix("  backup written: ").split(" (", 1)[0])
    try:
        assert backup.parent == ROOT / "backups" and stat.S_IMODE(backup.stat().st_mode) == 0o600
        assert written[0].endswith(f"; undo with: inv db.restore {backup} --prod")
        restored = urls.with_dbname(server_url, f"restored_{urls.dbname(seeded_url)}")
        dump.restore(restored, backup)
        try:
            assert snapshot(restored) == before
        finally:
            admin.drop_database(restored)
    finally:
        backup.unlink(missing_ok=True)
    assert result.stdout.splitlines()[-1] != written[0]  # it went on to act and verify


def backups_of(url: str) -> list[Path]:
    return sorted((ROOT / "backups").glob(urls.dbname(url) + "-*.dump"))


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


def test_db_connect_prod_runs_a_command_read_only_without_write(inv, seeded_url):
    before = snapshot(seeded_url)
    result = inv("db.connect", "--prod", "--command", "DELETE FROM activities", env={"PROD_CONNECTION_URL": seeded_url})
    assert result.returncode != 0
    assert "cannot execute DELETE in a read-only transaction" in result.stderr
    assert snapshot(seeded_url) == before
    read = inv("db.connect", "--prod", "--command", "SELECT count(*) AS n FROM users", env={"PROD_CONNECTION_URL": seeded_url})
    assert read.returncode == 0, read.stderr
    assert " 2\n" in read.stdout


def test_interactive_psql_on_prod_says_production_in_its_prompt(base_env, seeded_url):
    terminal = Terminal(["db.connect", "--prod"], {**base_env, "PROD_CONNECTION_URL": seeded_url})
    terminal.read_until("PRODUCTION")
    terminal.read_until(f" {urls.dbname(seeded_url)}=#")  # after the colour's reset
    terminal.type("\\q\n")
    code, _, _ = terminal.finish()
    assert code == 0
