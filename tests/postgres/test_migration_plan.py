"""The migration plan (locks, rewrites, sizes, hazards) traced on a scratch copy of the target's
schema, against a real PostgreSQL (the embedded one, or TEST_DATABASE_URL's)."""

import psycopg
import pytest

from bench.hazard_corpus import CASES, SAFE, UNSAFE, migration_text
from cruddur.errors import MigrationError, SqlFileError
from cruddur.postgres import drift, migration_plan, migrations, urls


def write(folder, version, name, text):
    (folder / f"{version}_{name}.sql").write_text(text)


def pending(url, folder):
    return migrations.plan(*migrations.inspect(url, folder))


def scratch_databases(url):
    """The scratch databases of this test's own database (other tests plan beside it)."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (urls.dbname(url) + "__plan_",)).fetchall()


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "migrations"
    path.mkdir()
    return path


@pytest.fixture
def rows_url(schema_url):
    """The schema with 300 users and 900 activities, analyzed (the sizes come from the catalog)."""
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (display_name, handle, email, cognito_user_id)"
            " SELECT 'u' || n, 'h' || n, n || '@example.com', 'c' || n FROM generate_series(1, 300) n"
        )
        conn.execute("INSERT INTO activities (user_uuid, message) SELECT uuid, 'hello' FROM users, generate_series(1, 3) ")
        conn.execute("ANALYZE")
    return schema_url


def test_the_held_out_corpus_flags_every_unsafe_migration_and_no_safe_one(schema_url, folder):
    for number, (name, up, transaction, _) in enumerate(CASES):
        write(folder, f"2026010{1 + number // 100}{number % 100:02d}0000", name, migration_text(up, transaction))
    plans = migration_plan.plan(schema_url, pending(schema_url, folder))
    found = {plan.name: {hazard.rule for statement in plan.statements for hazard in statement.hazards} for plan in plans}
    assert {name: found[name] for name, *_ in UNSAFE} == {name: rules for name, _, _, rules in UNSAFE}
    assert {name: found[name] for name, *_ in SAFE} == {name: set() for name, *_ in SAFE}


def test_a_statement_shows_its_line_locks_rewrite_and_the_targets_table_size(rows_url, folder):
    write(
        folder,
        "20260101000000",
        "bigger_counts",
        "-- migrate:up\n-- a comment line\nALTER TABLE users ADD COLUMN bio text;\n\nALTER TABLE activities\n  ALTER COLUMN likes_count TYPE bigint;\n-- migrate:down\n",
    )
    before = drift.describe(rows_url)
    (plan,) = migration_plan.plan(rows_url, pending(rows_url, folder))
    first, second = plan.statements
    assert (first.line, first.locks, first.rewrites, first.hazards) == (
        3,
        [migration_plan.Lock("public.users", "AccessExclusiveLock")],
        [],
        [],
    )
    assert [(size.relation, size.rows) for size in first.sizes] == [("public.users", 300)]
    assert first.sizes[0].bytes > 8192
    assert second.line == 5
    assert migration_plan.Lock("public.activities", "AccessExclusiveLock") in second.locks
    assert second.rewrites == ["public.activities"]
    assert [(size.relation, size.rows) for size in second.sizes] == [("public.activities", 900)]
    assert [(h.rule, h.relation, h.allowed) for h in second.hazards] == [("type-change-rewrite", "public.activities", None)]
    assert plan.refused == second.hazards
    # The target was only read, and the scratch copy is gone.
    assert drift.describe(rows_url) == before
    assert scratch_databases(rows_url) == []


def test_a_concurrent_index_is_traced_without_concurrently_and_shown_with_the_lock_it_takes(schema_url, folder):
    write(folder, "20260101000000", "index", migration_text("CREATE INDEX CONCURRENTLY a_msg ON activities (message);", False))
    (plan,) = migration_plan.plan(schema_url, pending(schema_url, folder))
    (statement,) = plan.statements
    assert statement.locks == [migration_plan.Lock("public.activities", "ShareUpdateExclusiveLock")]
    assert statement.hazards == [] and statement.traced == "without CONCURRENTLY, in a transaction of its own"


def test_an_allow_line_acknowledges_its_rule_only_with_a_reason(schema_url, folder):
    up = (
        "-- cruddur:allow index-without-concurrently the table has 12 rows\n"
        "-- cruddur:allow check-without-not-valid\n"
        "CREATE INDEX a_msg ON activities (message);\n"
        "ALTER TABLE activities ADD CONSTRAINT c CHECK (likes_count >= 0);"
    )
    write(folder, "20260101000000", "index", migration_text(up, True))
    (plan,) = migration_plan.plan(schema_url, pending(schema_url, folder))
    assert [(h.rule, h.allowed) for s in plan.statements for h in s.hazards] == [
        ("index-without-concurrently", "the table has 12 rows"),
        ("check-without-not-valid", None),
    ]
    assert [h.rule for h in plan.refused] == ["check-without-not-valid"]


def test_a_statement_that_fails_on_the_copy_is_one_line_with_its_place_and_nothing_changes(schema_url, folder):
    write(folder, "20260101000000", "typo", "-- migrate:up\nALTER TABLE users ADD COLUMN a int;\nALTER TABLE nowhere ADD COLUMN b int;\n")
    before = drift.describe(schema_url)
    with pytest.raises(MigrationError) as failure:
        migration_plan.plan(schema_url, pending(schema_url, folder))
    message = str(failure.value)
    assert message.startswith(f"{folder}/20260101000000_typo.sql:3:")
    assert 'relation "nowhere" does not exist' in message and message.endswith("nothing was applied")
    assert "\n" not in message
    assert drift.describe(schema_url) == before
    assert scratch_databases(schema_url) == []


def test_later_migrations_build_on_earlier_ones_and_a_new_table_is_never_a_hazard(schema_url, folder):
    write(folder, "20260101000000", "follows", migration_text("CREATE TABLE follows (a uuid, b int);", True))
    write(folder, "20260102000000", "index", migration_text("CREATE INDEX ON follows (a);\nALTER TABLE follows ALTER b TYPE text;", True))
    plans = migration_plan.plan(schema_url, pending(schema_url, folder))
    assert [p.version for p in plans] == ["20260101000000", "20260102000000"]
    assert [s.hazards for p in plans for s in p.statements] == [[], [], []]


def test_the_plan_traces_the_statements_the_runner_runs_and_fails_in_the_runners_words(schema_url, folder):
    # Two statements on one line, the last one without `;` and a comment after it: split as psql
    # splits. The second fails at a position the server gives (line 2, past the first statement).
    up = "ALTER TABLE users ADD COLUMN a int; ALTER TABLE users ADD COLUMN b int\n-- done\n"
    write(folder, "20260101000000", "pair", migration_text(up, True))
    (migration,) = pending(schema_url, folder)
    (plan,) = migration_plan.plan(schema_url, [migration])
    assert [(s.line, s.sql) for s in plan.statements] == [(s.line, s.text) for s in migration.up.statements]
    assert len(plan.statements) == 2

    write(
        folder,
        "20260101000000",
        "pair",
        migration_text("ALTER TABLE users ADD COLUMN a int; ALTER TABLE users ADD COLUMN b nosuchtype", True),
    )
    with pytest.raises(MigrationError) as planned:
        migration_plan.plan(schema_url, pending(schema_url, folder))
    with pytest.raises(SqlFileError) as ran:
        migrations.migrate(schema_url, folder)
    # The same file, line and column (the statement's own column on its line), code and message.
    where_and_what = str(ran.value).split("; nothing of it was applied")[0]
    assert where_and_what.startswith(f"{folder}/20260101000000_pair.sql:2:")
    assert str(planned.value).startswith(where_and_what + " (on a copy of the target's schema")


def test_a_concurrent_index_in_a_transactional_section_fails_on_the_copy_as_in_the_runner(schema_url, folder):
    write(folder, "20260101000000", "index", migration_text("CREATE INDEX CONCURRENTLY a_msg ON activities (message);", True))
    with pytest.raises(MigrationError) as failure:
        migration_plan.plan(schema_url, pending(schema_url, folder))
    message = str(failure.value)
    assert message.startswith(f"{folder}/20260101000000_index.sql:2: 25001 CREATE INDEX CONCURRENTLY cannot run inside a transaction block")
    assert scratch_databases(schema_url) == []


def test_a_concurrent_statement_failing_on_the_copy_names_the_files_column(schema_url, folder):
    # CONCURRENTLY is blanked, not cut: the server's position still falls on the file's text.
    write(folder, "20260101000000", "index", migration_text("CREATE INDEX CONCURRENTLY a_msg ON activities (nowhere);", False))
    with pytest.raises(MigrationError) as planned:
        migration_plan.plan(schema_url, pending(schema_url, folder))
    with pytest.raises(SqlFileError) as ran:
        migrations.migrate(schema_url, folder)
    assert str(ran.value).startswith(str(planned.value).split(" (on a copy")[0])
