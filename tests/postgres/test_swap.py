"""The swap that db.setup and db.restore end with: a kill at any step of it, then any db task,
leaves the old database or the new one, whole; nothing named __rebuild or __old stays behind.
Recovery acts on what the swap recorded: when the copies do not fit together it keeps them all."""

import contextlib
import subprocess

import psycopg
import pytest
from psycopg import sql

from cruddur.errors import DatabaseError, SwapError
from cruddur.postgres import admin, urls
from cruddur.timeouts import SWAP_LOCK_WAIT
from tests.helpers import INV, ROOT, add_user, assert_one_line_error, silent_or_waited


def databases_like(url):
    name = urls.dbname(url)
    with psycopg.connect(urls.with_dbname(url, "postgres")) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (name[:50] + "%",)).fetchall()
    return [row[0] for row in rows]


def handles(url):
    with psycopg.connect(url) as conn:
        return sorted(handle for (handle,) in conn.execute("SELECT handle FROM users"))


def bio_column(url):
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'bio'").fetchone()
            is not None
        )


@pytest.fixture
def old_database(schema_url):
    """The app database before the swap: the schema and one user the seed does not have."""
    add_user(schema_url, "keeper")
    return schema_url


# (step the process is killed after, what the next db task must leave)
STEPS = [("built", "old"), ("aside", "new"), ("in", "new")]


@pytest.mark.parametrize("step, expected", STEPS)
def test_a_setup_killed_at_each_step_of_the_swap_leaves_a_whole_database(inv, run_task, old_database, step, expected):
    env = {"CONNECTION_URL": old_database}
    killed = inv("db.setup", env={**env, "CRUDDUR_TEST_KILL_AT_SWAP_STEP": step})
    assert killed.returncode == -9, killed.stderr
    after = run_task("db.sessions", "--json", env=env)
    assert after.returncode == 0, after.stderr
    if expected == "old":
        assert handles(old_database) == ["keeper"]
    else:
        assert handles(old_database) == ["andrewbrown", "bayko"]
        assert bio_column(old_database)
    assert databases_like(old_database) == [urls.dbname(old_database)]


@pytest.mark.parametrize("step, expected", STEPS)
def test_a_restore_killed_at_each_step_of_the_swap_leaves_a_whole_database(inv, run_task, old_database, tmp_path, step, expected):
    env = {"CONNECTION_URL": old_database}
    backup = tmp_path / "before.dump"
    assert run_task("db.dump", "--output", str(backup), env=env).returncode == 0
    add_user(old_database, "later")
    killed = inv("db.restore", str(backup), env={**env, "CRUDDUR_TEST_KILL_AT_SWAP_STEP": step})
    assert killed.returncode == -9, killed.stderr
    assert run_task("db.migrations", env=env).returncode == 0
    assert handles(old_database) == (["keeper", "later"] if expected == "old" else ["keeper"])
    assert databases_like(old_database) == [urls.dbname(old_database)]


def test_the_next_setup_also_recovers_a_half_done_swap(inv, run_task, old_database):
    env = {"CONNECTION_URL": old_database}
    assert inv("db.setup", env={**env, "CRUDDUR_TEST_KILL_AT_SWAP_STEP": "aside"}).returncode == -9
    again = run_task("db.setup", env=env)
    assert again.returncode == 0, again.stderr
    assert handles(old_database) == ["andrewbrown", "bayko"]
    assert databases_like(old_database) == [urls.dbname(old_database)]


def test_two_setups_at_once_both_succeed(old_database, base_env):
    env = {**base_env, "CONNECTION_URL": old_database}
    runs = [
        subprocess.Popen(
            [str(INV), "db.setup"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    what = f"another task that replaces, creates or drops '{urls.dbname(old_database)}' to end"
    assert silent_or_waited([stderr for _, stderr in outcomes], SWAP_LOCK_WAIT, what), outcomes
    assert handles(old_database) == ["andrewbrown", "bayko"]
    assert databases_like(old_database) == [urls.dbname(old_database)]


def test_a_failed_build_leaves_the_old_database_and_no_scratch(old_database):
    def build(scratch_url):
        with psycopg.connect(scratch_url) as conn:
            conn.execute("CREATE TABLE half (a int)")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        admin.replace_database(old_database, build)
    assert handles(old_database) == ["keeper"]
    assert databases_like(old_database) == [urls.dbname(old_database)]


def test_recovery_leaves_a_running_rebuild_alone(old_database):
    name = urls.dbname(old_database)
    scratch, aside = admin.swap_names(name)
    maintenance = urls.with_dbname(old_database, "postgres")
    with psycopg.connect(maintenance, autocommit=True) as rebuild:
        rebuild.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"cruddur rebuild {name}",))
        rebuild.execute(f'CREATE DATABASE "{scratch}"')
        assert admin.recover_swap(old_database) is None
        assert databases_like(old_database) == [name, scratch]
    assert admin.recover_swap(old_database) == f"dropped the leftover {scratch!r}"
    assert databases_like(old_database) == [name]
    assert handles(old_database) == ["keeper"]


def test_recovery_puts_the_old_database_back_when_no_new_one_was_built(old_database):
    name = urls.dbname(old_database)
    _, aside = admin.swap_names(name)
    with psycopg.connect(urls.with_dbname(old_database, "postgres"), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" RENAME TO "{aside}"')
    assert admin.recover_swap(old_database) == f"undid an interrupted swap: {name!r} is the old database again"
    assert handles(old_database) == ["keeper"]


def test_a_failed_build_says_the_database_was_left_as_it_was(old_database):
    def build(scratch_url):
        raise DatabaseError("the build failed")

    with pytest.raises(DatabaseError) as failure:
        admin.replace_database(old_database, build)
    assert str(failure.value) == f"the build failed; {urls.dbname(old_database)!r} was left as it was"
    assert handles(old_database) == ["keeper"]
    assert databases_like(old_database) == [urls.dbname(old_database)]


def test_a_swap_stopped_after_the_old_database_was_set_aside_says_so_and_the_next_task_finishes_it(old_database):
    name = urls.dbname(old_database)
    scratch, aside = admin.swap_names(name)
    with held_half_done_swap(old_database) as (holder, failure):
        message = str(failure)
        assert message.startswith(f"cannot rename database {scratch!r} to {name!r}: other sessions keep connecting to it; ")
        assert message.endswith(
            f"{name!r} is missing for now (the old database is {aside!r}, the new one {scratch!r}): the next db task finishes the swap (on --prod, a write task once you confirm)"
        )
        assert "left as it was" not in message
        assert databases_like(old_database) == sorted([scratch, aside])
    assert (
        admin.recover_swap(old_database)
        == f"finished an interrupted swap: the rebuilt database is now {name!r}; dropped the leftover {aside!r}"
    )
    assert handles(old_database) == ["new"]


def test_on_prod_read_only_tasks_leave_a_half_done_swap_alone_and_a_confirmed_write_finishes_it(inv, run_task, old_database):
    prod = {"PROD_CONNECTION_URL": old_database}
    name = urls.dbname(old_database)
    scratch, aside = admin.swap_names(name)
    killed = inv("db.setup", "--prod", "--yes", "--no-backup", env={**prod, "CRUDDUR_TEST_KILL_AT_SWAP_STEP": "aside"})
    assert killed.returncode == -9, killed.stderr
    half_done = sorted([scratch, aside])
    assert databases_like(old_database) == half_done
    notice = (
        f"{name}: an interrupted db.setup or db.restore left a swap half done; it is left alone here."
        " A write task on --prod (inv db.migrate --prod, say) finishes it after you confirm"
    )
    for task in (["db.sessions", "--json"], ["db.migrations"], ["db.connect", "-c", "SELECT 1"]):
        run = inv if task[0] == "db.connect" else run_task  # psql, a child of its own, writes to the process's stdout
        result = run(*task, "--prod", env=prod)
        assert result.stderr.splitlines()[0] == notice, result.stderr
        assert databases_like(old_database) == half_done
    refused = inv("db.migrate", "--prod", env=prod)  # no terminal: a real process's stdin
    assert refused.returncode == 1 and "refused: finish the interrupted swap of database" in refused.stderr, refused.stderr
    assert databases_like(old_database) == half_done
    finished = run_task("db.migrate", "--prod", "--yes", "--no-backup", env=prod)
    assert finished.returncode == 0, finished.stderr
    assert f"{name}: finished an interrupted swap: the rebuilt database is now {name!r}" in finished.stderr
    assert finished.stdout.splitlines()[-1] == f"nothing to do: prod database {urls.describe(old_database)} is up to date"
    assert databases_like(old_database) == [name]
    assert handles(old_database) == ["andrewbrown", "bayko"]


@contextlib.contextmanager
def held_half_done_swap(old_database):
    """A swap stopped after the old database was set aside: a client (someone staying connected)
    holds the complete rebuild (one user, 'new'), so it cannot be renamed in. Yields that client
    and the rebuild's error; the client leaves when the block ends."""
    holders = []

    def build(scratch_url):
        holder = psycopg.connect(scratch_url, autocommit=True)
        holder.execute("CREATE TABLE users (handle text)")
        holder.execute("INSERT INTO users VALUES ('new')")
        holders.append(holder)

    try:
        with pytest.raises(DatabaseError) as failure:
            admin.replace_database(old_database, build)
        yield holders[0], failure.value
    finally:
        for holder in holders:
            holder.close()


def test_a_recovery_that_fails_stops_the_task_in_one_line_and_db_create_takes_no_name(run_task, old_database):
    name = urls.dbname(old_database)
    scratch, aside = admin.swap_names(name)
    env = {"CONNECTION_URL": old_database}
    with held_half_done_swap(old_database):
        for task in (["db.create"], ["db.sessions", "--json"], ["db.seed"]):
            result = run_task(*task, env=env)
            assert_one_line_error(result, f"cannot rename database {scratch!r} to {name!r}: other sessions keep connecting to it")
            assert databases_like(old_database) == sorted([scratch, aside])
    created = run_task("db.create", env=env)
    assert created.returncode == 0, created.stderr
    assert f"{name}: finished an interrupted swap: the rebuilt database is now {name!r}" in created.stderr
    assert created.stdout.endswith("already exists; left as it is\n")
    assert handles(old_database) == ["new"]
    assert databases_like(old_database) == [name]


def test_an_app_database_made_after_the_swap_was_cut_short_keeps_every_copy_until_db_drop_settles_it(run_task, old_database):
    """The reported path: swap cut short with the rebuild held, an empty app database made by
    hand (as db.create once did), then any db task: nothing is dropped, the error says which
    database holds what, and the command it names puts the rebuild in place."""
    name = urls.dbname(old_database)
    scratch, aside = admin.swap_names(name)
    env = {"CONNECTION_URL": old_database}
    with held_half_done_swap(old_database):
        with psycopg.connect(urls.with_dbname(old_database, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    for task in (["db.sessions", "--json"], ["db.create"], ["db.setup"], ["db.migrate"]):
        result = run_task(*task, env=env)
        line = assert_one_line_error(result, "left copies that do not fit together, so none was dropped")
        assert f"{name!r} (" in line and "not the copy the swap would put in" in line
        assert f"{scratch!r} (" in line and "the complete rebuild" in line
        assert f"{aside!r} (" in line and "the database as it was before the rebuild" in line
        assert line.endswith(
            f"To keep {scratch!r} as {name!r}: inv db.drop (with --prod on production), which drops {name!r} only and puts {scratch!r} in its place"
        )
        assert databases_like(old_database) == sorted([name, scratch, aside])
        assert handles(urls.with_dbname(old_database, aside)) == ["keeper"]
        assert handles(urls.with_dbname(old_database, scratch)) == ["new"]
    settled = run_task("db.drop", env=env)
    assert settled.returncode == 0, settled.stderr
    assert f"{name}: finished an interrupted swap: the rebuilt database is now {name!r}; dropped the leftover {aside!r}" in settled.stderr
    assert handles(old_database) == ["new"]
    assert databases_like(old_database) == [name]


def test_an_app_database_that_is_not_the_rebuild_keeps_the_set_aside_copy(old_database):
    name = urls.dbname(old_database)
    _, aside = admin.swap_names(name)
    with psycopg.connect(urls.with_dbname(old_database, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(aside)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with pytest.raises(SwapError) as found:
        admin.recover_swap(old_database)
    assert f"To keep {aside!r} as {name!r}: inv db.drop" in str(found.value)
    assert databases_like(old_database) == sorted([name, aside])
    assert handles(urls.with_dbname(old_database, aside)) == ["keeper"]
    admin.drop_database(old_database)
    assert handles(old_database) == ["keeper"]
    assert databases_like(old_database) == [name]
