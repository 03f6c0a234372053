"""cruddur.postgres.migrations against a real PostgreSQL: one behaviour per test, the database's
state checked afterwards. Each test writes its own migrations folder."""

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from cruddur.errors import FileLockTimeout, MigrationError, SqlFileError
from cruddur.postgres import migrations
from tests.helpers import examples, wait_for, waiting_on_a_lock


def write(folder, version, name, up, down="", up_options="", down_options=""):
    path = folder / f"{version}_{name}.sql"
    path.write_text(f"-- migrate:up {up_options}\n{up}\n\n-- migrate:down {down_options}\n{down}\n")
    return path


def write_table(folder, day: int, first: str = ""):
    """Migration 2026010<day>000000_t<day>: creates table t<day>, its down section drops it."""
    table = sql.Identifier(f"t{day}")
    up = sql.SQL("CREATE TABLE {} (a int);").format(table).as_string(None)
    down = sql.SQL("DROP TABLE {};").format(table).as_string(None)
    return write(folder, f"2026010{day}000000", f"t{day}", f"{first} {up}".strip(), down)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "migrations"
    path.mkdir()
    return path


def tables(url):
    with psycopg.connect(url) as conn:
        return {name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def applied_rows(url):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT version, checksum IS NOT NULL, applied_at IS NOT NULL, duration_ms >= 0 FROM schema_migrations ORDER BY version"
        ).fetchall()


def test_reading_the_status_never_creates_the_table(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (id int);", "DROP TABLE one;")
    rows = migrations.status(database_url, folder)
    assert [(r.version, r.name, r.state, r.applied_at) for r in rows] == [("20260101000000", "one", "pending", None)]
    assert tables(database_url) == set()


def test_migrate_applies_pending_in_version_order_each_with_its_row(database_url, folder):
    # Written out of order: the second depends on the first, so file-system order would fail.
    write(folder, "20260102000000", "two", "ALTER TABLE one ADD COLUMN b int;", "ALTER TABLE one DROP COLUMN b;")
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    (folder / "notes.txt").write_text("not a migration")
    seen = []
    done = migrations.migrate(database_url, folder, on_applied=seen.append)
    assert [step.version for step in done] == [step.version for step in seen] == ["20260101000000", "20260102000000"]
    assert applied_rows(database_url) == [("20260101000000", True, True, True), ("20260102000000", True, True, True)]
    assert {r.state for r in migrations.status(database_url, folder)} == {"applied"}


def test_a_rerun_applies_nothing(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    migrations.migrate(database_url, folder)
    assert migrations.migrate(database_url, folder) == []
    assert len(applied_rows(database_url)) == 1


def test_a_failing_second_statement_leaves_no_trace_of_its_migration_and_keeps_the_earlier(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    bad = write(folder, "20260102000000", "two", "CREATE TABLE two (a int);\nINSERT INTO missing VALUES (1);", "DROP TABLE two;")
    write(folder, "20260103000000", "three", "CREATE TABLE three (a int);", "DROP TABLE three;")
    with pytest.raises(SqlFileError) as failure:
        migrations.migrate(database_url, folder)
    assert str(failure.value) == (
        f'{bad}:3:13: 42P01 relation "missing" does not exist; nothing of it was applied; 20260101000000 of this run stays applied'
    )
    assert tables(database_url) == {"one", "schema_migrations"}
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "pending", "pending"]


def test_the_error_line_counts_from_the_top_of_the_file(database_url, folder):
    path = folder / "20260101000000_one.sql"
    path.write_text("-- a comment\n\n-- migrate:up\nSELECT 1;\nSELECT nonsense_column;\n-- migrate:down\n")
    with pytest.raises(
        SqlFileError,
        match=rf"^{path}:5:8: 42703 column \"nonsense_column\" does not exist; nothing of it was applied; nothing else was applied$",
    ):
        migrations.migrate(database_url, folder)


def test_a_pending_version_older_than_the_newest_applied_is_refused_unless_allowed(database_url, folder):
    write(folder, "20260102000000", "two", "CREATE TABLE two (a int);", "DROP TABLE two;")
    migrations.migrate(database_url, folder)
    late = write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    with pytest.raises(
        MigrationError, match=rf"^{late} is pending but older than the newest applied version 20260102000000 .*--allow-out-of-order$"
    ):
        migrations.migrate(database_url, folder)
    assert "one" not in tables(database_url)
    assert [s.version for s in migrations.migrate(database_url, folder, allow_out_of_order=True)] == ["20260101000000"]
    assert "one" in tables(database_url)


def test_a_changed_file_is_flagged_and_refused_when_asked(database_url, folder):
    path = write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    migrations.migrate(database_url, folder)
    path.write_text(path.read_text().replace("(a int)", "(a bigint)"))
    write(folder, "20260102000000", "two", "CREATE TABLE two (a int);", "DROP TABLE two;")
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied-but-file-changed", "pending"]
    with pytest.raises(MigrationError, match=rf"^{path} changed after it was applied; refusing"):
        migrations.migrate(database_url, folder, refuse_changed=True)
    assert "two" not in tables(database_url)


def test_an_applied_version_without_its_file_is_shown_missing(database_url, folder):
    path = write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    migrations.migrate(database_url, folder)
    path.unlink()
    assert [(r.version, r.state) for r in migrations.status(database_url, folder)] == [("20260101000000", "applied-but-file-missing")]


def test_migrate_to_stops_at_that_version(database_url, folder):
    for day in (1, 2, 3):
        write_table(folder, day)
    assert [s.version for s in migrations.migrate(database_url, folder, to="20260102000000")] == ["20260101000000", "20260102000000"]
    assert tables(database_url) == {"t1", "t2", "schema_migrations"}
    with pytest.raises(MigrationError, match="^--to 20990101000000: no migration file has that version$"):
        migrations.migrate(database_url, folder, to="20990101000000")


def test_rollback_of_two_steps_undoes_the_newest_first(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    write(folder, "20260102000000", "two", "ALTER TABLE one ADD COLUMN b int;", "ALTER TABLE one DROP COLUMN b;")
    write(folder, "20260103000000", "three", "ALTER TABLE one ADD COLUMN c int;", "ALTER TABLE one DROP COLUMN c;")
    migrations.migrate(database_url, folder)
    done = migrations.rollback(database_url, folder, steps=2)
    assert [step.version for step in done] == ["20260103000000", "20260102000000"]
    with psycopg.connect(database_url) as conn:
        assert [c.name for c in conn.execute("SELECT * FROM one").description] == ["a"]
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "pending", "pending"]


def test_rollback_to_a_version_keeps_that_version(database_url, folder):
    for day in (1, 2, 3):
        write_table(folder, day)
    migrations.migrate(database_url, folder)
    assert [s.version for s in migrations.rollback(database_url, folder, to="20260101000000")] == ["20260103000000", "20260102000000"]
    assert tables(database_url) == {"t1", "schema_migrations"}


def test_a_migration_with_an_empty_down_section_cannot_be_rolled_back_and_nothing_changes(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    irreversible = write(folder, "20260102000000", "two", "CREATE TABLE two (a int);", "-- no way back")
    migrations.migrate(database_url, folder)
    with pytest.raises(MigrationError, match=rf"^cannot roll back {irreversible}: its down section is empty; nothing was rolled back$"):
        migrations.rollback(database_url, folder, steps=2)
    assert tables(database_url) == {"one", "two", "schema_migrations"}
    assert len(applied_rows(database_url)) == 2


def test_create_index_concurrently_runs_with_transaction_false(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    write(
        folder,
        "20260102000000",
        "index_one",
        "CREATE INDEX CONCURRENTLY one_a_idx ON one (a);",
        "DROP INDEX CONCURRENTLY one_a_idx;",
        up_options="transaction:false",
        down_options="transaction:false",
    )
    migrations.migrate(database_url, folder)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'one_a_idx'::regclass").fetchone() == (True,)
    migrations.rollback(database_url, folder)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('one_a_idx')").fetchone() == (None,)


def test_a_lock_timeout_names_the_blocking_session_and_applies_nothing(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    migrations.migrate(database_url, folder)
    path = write(folder, "20260102000000", "two", "ALTER TABLE one ADD COLUMN b int;", "ALTER TABLE one DROP COLUMN b;")
    with psycopg.connect(database_url, application_name="long report") as holder:
        holder.execute("SELECT * FROM one")  # an open transaction holding a share lock on one
        pid = holder.info.backend_pid
        with pytest.raises(SqlFileError) as failure:
            migrations.migrate(database_url, folder, lock_timeout=1)
    message = str(failure.value)
    assert message.startswith(
        f"{path}:2: 55P03 canceling statement due to lock timeout; the lock was held by session {pid} ('long report', idle in transaction, for "
    )
    assert message.endswith("; nothing of it was applied; nothing else was applied")
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "pending"]


def test_two_runs_at_once_apply_each_migration_once(database_url, folder):
    for day in (1, 2, 3):
        write_table(folder, day, first="SELECT pg_sleep(0.2);")
    with ThreadPoolExecutor(2) as pool:  # an exception in either run fails the test here
        results = list(pool.map(lambda _: migrations.migrate(database_url, folder), range(2)))
    assert sorted(len(done) for done in results) == [0, 3]
    assert len(applied_rows(database_url)) == 3


def test_a_table_dbmate_created_gains_the_extra_columns(database_url, folder):
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE public.schema_migrations (version varchar(128) PRIMARY KEY)")
        conn.execute("INSERT INTO public.schema_migrations (version) VALUES ('20260101000000')")
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    write(folder, "20260102000000", "two", "CREATE TABLE two (a int);", "DROP TABLE two;")
    assert [s.version for s in migrations.migrate(database_url, folder)] == ["20260102000000"]
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "applied"]
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO public.schema_migrations (version) VALUES ('20260103000000')")  # dbmate's own insert


@pytest.mark.parametrize(
    "text, message",
    [
        ("CREATE TABLE x (a int);\n-- migrate:up\n", ":1: SQL before '-- migrate:up'"),
        ("-- migrate:down\nDROP TABLE x;\n-- migrate:up\n", ": no '-- migrate:up' section first"),
        ("-- migrate:up\n-- migrate:up\n", ":2: a second '-- migrate:up' section"),
        ("-- migrate:up transaction:maybe\n", ":1: unknown option 'transaction:maybe'"),
    ],
)
def test_malformed_files_are_refused_with_their_line(database_url, folder, text, message):
    path = folder / "20260101000000_bad.sql"
    path.write_text(text)
    with pytest.raises(MigrationError, match="^" + str(path) + message):
        migrations.migrate(database_url, folder)
    assert tables(database_url) == set()


def test_new_migration_writes_both_sections(folder):
    path = migrations.new_migration(folder, "add_bio_to_users", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert path == folder / "20260102030405_add_bio_to_users.sql"
    parsed = migrations.load(folder)[0]
    assert (parsed.version, parsed.name, parsed.up.transaction, parsed.down.empty) == ("20260102030405", "add_bio_to_users", True, True)
    with pytest.raises(MigrationError, match="already has version 20260102030405"):
        migrations.new_migration(folder, "again", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=40))
def test_new_migration_accepts_only_names_that_make_a_clean_file(tmp_path, name):
    folder = tmp_path / "any"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    try:
        path = migrations.new_migration(folder, name, datetime(2026, 1, 1, tzinfo=UTC))
    except MigrationError as e:
        assert "\n" not in str(e)
        assert list(folder.iterdir()) == []
        return
    assert path.parent == folder
    assert [(m.version, m.name) for m in migrations.load(folder)] == [("20260101000000", name)]
    assert name.replace("_", "").isalnum() and name.isascii() and name == name.lower()


def test_ctrl_c_during_a_migration_leaves_it_pending_and_the_earlier_applied(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    write(folder, "20260102000000", "two", "CREATE TABLE two (a int);\nSELECT pg_sleep(30);", "DROP TABLE two;")
    script = (
        "import sys; from pathlib import Path; from cruddur.postgres import migrations\n"
        "migrations.migrate(sys.argv[1], Path(sys.argv[2]), on_applied=lambda step: print(step.version, flush=True))\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script, database_url, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert run.stdout.readline().strip() == "20260101000000"
    # Autocommit: a transaction reads pg_stat_activity once and would never see the second start.
    with psycopg.connect(database_url, autocommit=True) as conn:  # wait until the second one is running
        while not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid() AND datname = current_database()"
        ).fetchone():
            assert run.poll() is None, run.stderr.read()
            time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=20)
    assert "KeyboardInterrupt" in err
    assert tables(database_url) == {"one", "schema_migrations"}
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "pending"]


def test_a_file_edited_after_the_plan_was_confirmed_is_refused_and_nothing_is_applied(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    confirmed = migrations.plan(migrations.load(folder), {})
    write(folder, "20260101000000", "one", "DROP TABLE IF EXISTS users; CREATE TABLE one (a int);", "DROP TABLE one;")

    with pytest.raises(
        MigrationError,
        match=r"20260101000000_one\.sql changed since you confirmed: you confirmed to apply 20260101000000, now it would be 20260101000000; nothing was done",
    ):
        migrations.migrate(database_url, folder, confirmed=confirmed)

    assert tables(database_url) == set()
    assert migrations.migrate(database_url, folder, confirmed=migrations.plan(migrations.load(folder), {}))


# -- files run as written: statement by statement, as psql and dbmate run them ---------------------


def test_a_last_statement_without_a_semicolon_and_a_comment_after_it_runs(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);\nCREATE TABLE two (a int) -- no semicolon\n-- the end", "")
    assert [s.version for s in migrations.migrate(database_url, folder)] == ["20260101000000"]
    assert tables(database_url) == {"one", "two", "schema_migrations"}


def test_two_create_index_concurrently_in_one_transaction_false_section(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int, b int);", "DROP TABLE one;")
    write(
        folder,
        "20260102000000",
        "indexes",
        "CREATE INDEX CONCURRENTLY one_a ON one (a);\nCREATE INDEX CONCURRENTLY one_b ON one (b)",
        "DROP INDEX CONCURRENTLY one_a;\nDROP INDEX CONCURRENTLY one_b;",
        up_options="transaction:false",
        down_options="transaction:false",
    )
    migrations.migrate(database_url, folder)
    with psycopg.connect(database_url) as conn:
        valid = conn.execute("SELECT indexrelid::regclass::text, indisvalid FROM pg_index WHERE indrelid = 'one'::regclass ORDER BY 1")
        assert valid.fetchall() == [("one_a", True), ("one_b", True)]
        assert conn.execute("SELECT count(*) FROM cruddur_migration_runs").fetchone() == (0,)
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "applied"]
    migrations.rollback(database_url, folder)
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "pending"]


def test_an_error_without_a_position_names_its_statements_line(database_url, folder):
    path = write(folder, "20260101000000", "one", "CREATE TABLE one (a int NOT NULL);\n\nINSERT INTO one\n  VALUES (NULL);", "")
    with pytest.raises(SqlFileError) as failure:
        migrations.migrate(database_url, folder)
    assert str(failure.value).startswith(f'{path}:4: 23502 null value in column "a" of relation "one" violates not-null constraint')
    assert tables(database_url) == {"schema_migrations"}


def test_a_position_maps_to_the_files_line_and_column_for_a_statement_mid_line(database_url, folder):
    path = write(folder, "20260101000000", "one", "SELECT 1;   SELECT nonsense_column;", "")
    with pytest.raises(SqlFileError, match=rf"^{path}:2:20: 42703 column \"nonsense_column\" does not exist; nothing of it was applied"):
        migrations.migrate(database_url, folder)


def test_an_unterminated_comment_is_one_line_naming_its_line_and_nothing_runs(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    path = write(folder, "20260102000000", "two", "CREATE TABLE two (a int);\n/* never closed\nCREATE TABLE three (a int);", "")
    with pytest.raises(SqlFileError) as failure:
        migrations.migrate(database_url, folder)
    assert str(failure.value) == f"{path}:3: a /* comment starts here and never ends; nothing of it was run"
    assert tables(database_url) == set()  # checked before anything ran


@pytest.mark.parametrize(
    "data, message",
    [
        (b"-- migrate:up\nCREATE TABLE one (a int);\x00CREATE TABLE two (a int);\n", ":2: holds a NUL byte"),
        (b"-- migrate:up\nCREATE TABLE caf\xe9 (a int);\n", ":2: not UTF-8 text"),
    ],
)
def test_a_nul_byte_or_text_that_is_not_utf8_is_one_line_naming_the_file(database_url, folder, data, message):
    path = folder / "20260101000000_one.sql"
    path.write_bytes(data)
    with pytest.raises(MigrationError) as failure:
        migrations.migrate(database_url, folder)
    assert str(failure.value).startswith(f"{path}{message}")
    assert "\n" not in str(failure.value)
    assert tables(database_url) == set()


def test_a_bom_is_skipped(database_url, folder):
    (folder / "20260101000000_one.sql").write_bytes(b"\xef\xbb\xbf-- migrate:up\nCREATE TABLE one (a int);\n-- migrate:down\n")
    assert [s.version for s in migrations.migrate(database_url, folder)] == ["20260101000000"]


def test_an_up_section_without_a_statement_is_refused_and_nothing_is_recorded(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    empty = migrations.new_migration(folder, "not_written_yet", datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(MigrationError) as failure:
        migrations.migrate(database_url, folder)
    assert str(failure.value) == f"{empty}: its up section holds no statement (write the change below '-- migrate:up'); nothing was applied"
    assert tables(database_url) == set()
    assert [r.state for r in migrations.status(database_url, folder)] == ["pending", "pending"]


# -- transaction:false under interrupts and company ------------------------------------------------


def cic_migrations(folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);\nINSERT INTO one SELECT generate_series(1, 1000);", "DROP TABLE one;")
    return write(
        folder,
        "20260102000000",
        "index_one",
        "-- built without blocking writes\nCREATE INDEX CONCURRENTLY one_a ON one (a);",
        "DROP INDEX CONCURRENTLY one_a;",
        up_options="transaction:false",
        down_options="transaction:false",
    )


def test_a_concurrent_index_that_fails_part_way_shows_interrupted_naming_the_invalid_index(database_url, folder):
    path = cic_migrations(folder)
    migrations.migrate(database_url, folder, to="20260101000000")
    with psycopg.connect(database_url) as writer:
        writer.execute("INSERT INTO one VALUES (0)")  # an open writer: the build waits for it, and times out
        with pytest.raises(SqlFileError) as failure:
            migrations.migrate(database_url, folder, lock_timeout=0.5)
    assert str(failure.value).startswith(f"{path}:3: 55P03 canceling statement due to lock timeout")
    assert "stopped part way: inv db.migrations shows what it left and how to finish or undo it" in str(failure.value)
    rows = migrations.status(database_url, folder)
    assert [(r.state, r.direction, r.invalid_indexes) for r in rows] == [("applied", "", []), ("interrupted", "up", ["one_a"])]
    assert rows[1].detail == "up section stopped in statement 1 of 1 (line 3)"
    # Until it is settled, every run refuses, naming it.
    with pytest.raises(MigrationError, match=rf"^{path} was interrupted \(up section stopped in statement 1 of 1 \(line 3\), outside"):
        migrations.migrate(database_url, folder)
    # Undo what it left, forget it: the next run builds the index.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP INDEX CONCURRENTLY one_a")
    migrations.forget(database_url, folder, "20260102000000")
    assert [s.version for s in migrations.migrate(database_url, folder)] == ["20260102000000"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'one_a'::regclass").fetchone() == (True,)


def test_a_failing_first_statement_outside_a_transaction_that_left_nothing_stays_pending(database_url, folder):
    path = write(folder, "20260101000000", "one", "CREATE INDEX CONCURRENTLY x ON missing (a);", "", up_options="transaction:false")
    with pytest.raises(SqlFileError) as failure:
        migrations.migrate(database_url, folder)
    assert str(failure.value) == f'{path}:2: 42P01 relation "missing" does not exist; nothing of it was applied; nothing else was applied'
    assert [r.state for r in migrations.status(database_url, folder)] == ["pending"]


def test_ctrl_c_during_a_concurrent_index_build_shows_interrupted(database_url, folder):
    cic_migrations(folder)
    migrations.migrate(database_url, folder, to="20260101000000")
    script = "import sys; from pathlib import Path; from cruddur.postgres import migrations\nmigrations.migrate(sys.argv[1], Path(sys.argv[2]), lock_timeout=60)\n"
    with psycopg.connect(database_url) as writer:
        writer.execute("INSERT INTO one VALUES (0)")  # keeps the build waiting until the interrupt
        run = subprocess.Popen([sys.executable, "-c", script, database_url, str(folder)], stderr=subprocess.PIPE, text=True)
        wait_for(lambda: waiting_on_a_lock(database_url, "CREATE INDEX CONCURRENTLY"), "the index build waiting for the writer")
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=30)
    rows = migrations.status(database_url, folder)
    assert [(r.state, r.invalid_indexes) for r in rows] == [("applied", []), ("interrupted", ["one_a"])]


def test_ten_runs_at_once_with_a_concurrent_index_pending_all_succeed(database_url, folder):
    cic_migrations(folder)
    script = (
        "import sys; from pathlib import Path; from cruddur.postgres import migrations\n"
        "print(len(migrations.migrate(sys.argv[1], Path(sys.argv[2]))))\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(10)
    ]
    outcomes = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    # A run that waits for another says nothing: the library prints nothing (the tasks show its waits).
    assert [(code, err) for code, _, err in outcomes] == [(0, "")] * 10
    assert sorted(int(out) for _, out, _ in outcomes) == [0] * 9 + [2]
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "applied"]


# -- retries after a lock timeout --------------------------------------------------------------------


def test_a_lock_timeout_is_retried_naming_the_blocker_and_succeeds_once_it_is_gone(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    migrations.migrate(database_url, folder)
    write(folder, "20260102000000", "two", "ALTER TABLE one ADD COLUMN b int;", "ALTER TABLE one DROP COLUMN b;")
    retries = []
    with psycopg.connect(database_url, application_name="long report") as holder:
        holder.execute("SELECT * FROM one")

        def on_retry(retry):
            retries.append(retry)
            holder.rollback()  # the report ends while the run pauses

        done = migrations.migrate(database_url, folder, lock_timeout=0.3, retries=3, on_retry=on_retry)
        pid = holder.info.backend_pid
    assert [s.version for s in done] == ["20260102000000"]
    assert [(r.version, r.attempt, r.attempts, [b.pid for b in r.blockers]) for r in retries] == [("20260102000000", 2, 4, [pid])]


def test_a_lock_timeout_that_outlasts_the_retries_is_a_typed_error(database_url, folder):
    write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    migrations.migrate(database_url, folder)
    write(folder, "20260102000000", "two", "ALTER TABLE one ADD COLUMN b int;", "ALTER TABLE one DROP COLUMN b;")
    retries = []
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT * FROM one")
        with pytest.raises(FileLockTimeout) as failure:
            migrations.migrate(database_url, folder, lock_timeout=0.2, retries=1, on_retry=retries.append)
    assert str(failure.value).endswith("; nothing of it was applied; nothing else was applied (gave up after 2 tries)")
    assert len(retries) == 1
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "pending"]


# -- ways out: accept, forget, baseline --------------------------------------------------------------


def test_accept_records_an_edited_file_and_forget_makes_it_pending(database_url, folder):
    path = write(folder, "20260101000000", "one", "CREATE TABLE one (a int);", "DROP TABLE one;")
    migrations.migrate(database_url, folder)
    path.write_text(path.read_text().replace("(a int)", "(a int, b int)"))
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied-but-file-changed"]
    assert (
        migrations.accept(database_url, folder, "20260101000000")
        == f"recorded {path} as applied (its edited text is now the one on record)"
    )
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied"]
    assert migrations.forget(database_url, folder, "20260101000000").startswith("forgot 20260101000000: it is pending now")
    assert [r.state for r in migrations.status(database_url, folder)] == ["pending"]
    with pytest.raises(MigrationError, match="^--forget 20260101000000: that version is not recorded on this database; nothing to forget$"):
        migrations.forget(database_url, folder, "20260101000000")
    with pytest.raises(MigrationError, match="^--accept 20990101000000: no migration file has that version"):
        migrations.accept(database_url, folder, "20990101000000")


def test_baseline_records_without_running_and_refuses_behind_a_later_version(database_url, folder):
    for day in (1, 2, 3):
        write_table(folder, day)
    recorded = migrations.baseline(database_url, folder, "20260102000000")
    assert [m.version for m in recorded] == ["20260101000000", "20260102000000"]
    assert tables(database_url) == {"schema_migrations"}  # nothing ran
    assert [r.state for r in migrations.status(database_url, folder)] == ["applied", "applied", "pending"]
    migrations.migrate(database_url, folder)
    assert "t3" in tables(database_url)
    with pytest.raises(MigrationError, match="^--baseline 20260102000000: 20260103000000, a later version, is already recorded; nothing"):
        migrations.baseline(database_url, folder, "20260102000000")
    with pytest.raises(MigrationError, match="^--baseline 20990101000000: no migration file has that version$"):
        migrations.baseline(database_url, folder, "20990101000000")


def test_a_name_too_long_for_a_file_name_is_one_line(folder):
    with pytest.raises(MigrationError, match=f"^migration name of 300 characters: at most {migrations.MAX_NAME} fit in a file name"):
        migrations.new_migration(folder, "a" * 300)
    longest = migrations.new_migration(folder, "a" * migrations.MAX_NAME)
    assert len(longest.name.encode()) == 255
