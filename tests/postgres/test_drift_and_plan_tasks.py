"""db.drift and the plan in db.migrate, as a user runs them: exit codes, what is printed, and the
database afterwards. Tests that need migration files of their own run `inv` in a folder of their
own holding the project's tasks and sql/ (the tasks read sql/migrations/ where they run)."""

import json
import shutil
import subprocess

import psycopg
import pytest

from cruddur.postgres import drift, local_server, urls
from tests.helpers import INV, ROOT, assert_one_line_error, free_port, temporary_pgdata


def applied_versions(url):
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None:
            return []
        return [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


@pytest.fixture
def project(tmp_path, base_env):
    """A project folder whose sql/migrations/ a test may add to; run(*args) runs `inv` there."""
    copy = tmp_path / "project"
    for part in ("tasks", "sql"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))

    def run(*args, env=None):
        return subprocess.run(
            [str(INV), *args],
            cwd=copy,
            env={**base_env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    run.migrations = copy / "sql" / "migrations"
    return run


def add_migration(project, version, name, up):
    (project.migrations / f"{version}_{name}.sql").write_text(f"-- migrate:up\n{up}\n-- migrate:down\n")


def test_drift_is_none_on_a_migrated_database_and_names_each_change_made_by_hand(run_task, schema_url):
    dev = {"CONNECTION_URL": schema_url}
    assert run_task("db.migrate", env=dev).returncode == 0
    clean = run_task("db.drift", env=dev)
    assert (clean.returncode, clean.stdout.splitlines()[0]) == (
        0,
        f"drift: none ({urls.dbname(schema_url)} matches sql/schema.sql plus its applied migrations)",
    )
    with psycopg.connect(schema_url) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")
        conn.execute("DROP INDEX activities_user_uuid_idx")
        conn.execute("ALTER TABLE activities ALTER COLUMN message DROP NOT NULL")
    found = run_task("db.drift", env=dev)
    assert found.returncode == 1
    assert found.stdout.splitlines()[1:] == [
        "  column public.activities.message: differs: the target has 'text', the migrations build 'text not null'",
        "  column public.users.nickname: only on the target (text)",
        "  index public.activities_user_uuid_idx: missing on the target (the migrations build it)",
    ]
    as_json = json.loads(run_task("db.drift", "--json", env=dev).stdout)
    assert [(d["kind"], d["name"]) for d in as_json["differences"]] == [
        ("column", "public.activities.message"),
        ("column", "public.users.nickname"),
        ("index", "public.activities_user_uuid_idx"),
    ]


def test_drift_counts_only_the_applied_migrations(run_task, schema_url):
    # Nothing applied yet: the reference is schema.sql alone, which the database matches.
    result = run_task("db.drift", env={"CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_leaves_out_the_record_a_transaction_false_run_leaves_behind(project, schema_url):
    """A transaction:false migration applied, then rolled back: the runner's cruddur_migration_runs
    stays on the database, and is no difference from the files."""
    (project.migrations / "20991231000000_index_messages.sql").write_text(
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY activities_message_idx ON activities (message);\n"
        "-- migrate:down\nDROP INDEX activities_message_idx;\n"
    )
    dev = {"CONNECTION_URL": schema_url}
    assert project("db.migrate", env=dev).returncode == 0
    assert project("db.rollback", env=dev).returncode == 0
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT to_regclass('public.cruddur_migration_runs')").fetchone()[0] is not None
    result = project("db.drift", env=dev)
    assert (result.returncode, result.stdout.splitlines()[0]) == (
        0,
        f"drift: none ({urls.dbname(schema_url)} matches sql/schema.sql plus its applied migrations)",
    ), result.stdout + result.stderr


def test_the_same_schema_reads_the_same_on_the_embedded_server_and_the_test_server(schema_url):
    """No false drift between versions: production runs 14-17, the embedded server is 18."""
    with temporary_pgdata() as pgdata:
        server = local_server.start(pgdata, free_port())
        other = urls.with_dbname(server, "cruddur_other")
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE DATABASE cruddur_other")
        with psycopg.connect(other) as conn:
            conn.execute((ROOT / "sql" / "schema.sql").read_bytes())
        assert drift.compare(drift.describe(schema_url), drift.describe(other)) == []


def test_dry_run_json_gives_each_statements_locks_rewrites_sizes_and_hazards(run_task, schema_url):
    result = run_task("db.migrate", "--dry-run", "--json", env={"CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    (migration,) = plan["migrations"]
    (statement,) = migration["statements"]
    assert (migration["version"], statement["line"]) == ("20261126050000", 3)
    assert statement["locks"] == [{"relation": "public.users", "mode": "AccessExclusiveLock"}]
    assert (statement["rewrites"], statement["hazards"]) == ([], [])
    assert [set(size) for size in statement["sizes"]] == [{"relation", "rows", "bytes"}]
    assert applied_versions(schema_url) == []
    assert_one_line_error(run_task("db.migrate", "--json", env={"CONNECTION_URL": schema_url}), "--json goes with --dry-run")
    baseline = run_task("db.migrate", "--dry-run", "--json", "--baseline", "20261126050000", env={"CONNECTION_URL": schema_url})
    assert_one_line_error(baseline, "--json goes with --dry-run, without --baseline")
    assert applied_versions(schema_url) == []


def test_prod_refuses_an_unacknowledged_hazard_after_showing_the_plan_and_applies_nothing(project, schema_url):
    add_migration(project, "20991231000000", "index_messages", "CREATE INDEX activities_message_idx ON activities (message);")
    prod = {"PROD_CONNECTION_URL": schema_url}
    result = project("db.migrate", "--prod", "--yes", env=prod)
    line = assert_one_line_error(result, "refused: 1 hazard(s) on production: index-without-concurrently", prefix="error: ")
    assert line.endswith("nothing was applied")
    assert "      HAZARD index-without-concurrently: builds the index while holding ShareLock on public.activities" in result.stdout
    assert "drift: none" in result.stdout
    assert "backup" not in result.stdout
    assert applied_versions(schema_url) == []


def test_prod_applies_a_hazard_the_file_acknowledges(project, schema_url):
    add_migration(
        project,
        "20991231000000",
        "index_messages",
        "-- cruddur:allow index-without-concurrently activities is tiny\nCREATE INDEX activities_message_idx ON activities (message);",
    )
    result = project("db.migrate", "--prod", "--yes", "--no-backup", env={"PROD_CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    assert "      allowed index-without-concurrently (activities is tiny): builds the index" in result.stdout
    assert applied_versions(schema_url)[-1] == "20991231000000"


def test_a_local_run_prints_the_hazard_and_applies(project, schema_url):
    add_migration(project, "20991231000000", "bigger", "ALTER TABLE activities ALTER COLUMN likes_count TYPE bigint;")
    result = project("db.migrate", env={"CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    assert "      HAZARD type-change-rewrite in sql/migrations/20991231000000_bigger.sql:2: the type change rewrites" in result.stdout
    assert applied_versions(schema_url)[-1] == "20991231000000"


def test_the_prod_dry_run_shows_the_drift_and_what_prod_would_refuse(project, schema_url):
    add_migration(project, "20991231000000", "check_likes", "ALTER TABLE activities ADD CONSTRAINT likes CHECK (likes_count >= 0);")
    with psycopg.connect(schema_url) as conn:
        conn.execute("CREATE INDEX by_hand ON users (email)")
    result = project("db.migrate", "--prod", "--dry-run", env={"PROD_CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"drift: 1 difference(s) between {urls.dbname(schema_url)} and sql/schema.sql plus its applied migrations:" in lines
    assert "  index public.by_hand: only on the target (CREATE INDEX by_hand ON public.users USING btree (email))" in lines
    assert lines[-1] == "dry run: nothing changed"
    assert lines[-2].startswith("db.migrate --prod would refuse: 1 hazard(s) on production: check-without-not-valid (sql/migrations/")
    assert applied_versions(schema_url) == []
