"""What a new user meets in the first hour with the db tasks: each message says what is true and
ends with the command that moves them on, for the database in use (--prod included)."""

from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

import tasks
from cruddur.postgres import dump as dumps
from cruddur.postgres import urls
from cruddur.postgres.admin import swap_names
from tasks._cli import for_target
from tests.helpers import assert_one_line_error, closed_port_url


def test_p_is_prod_in_every_task_that_has_it_and_nothing_else_anywhere():
    for name in tasks.ns.task_names:
        task = tasks.ns[name]
        short = {flag: argument.name for argument in task.get_arguments() for flag in argument.names if len(flag) == 1}
        takes_prod = any(argument.name == "prod" for argument in task.get_arguments())
        assert short.get("p") == ("prod" if takes_prod else None), name


def test_restore_with_p_acts_on_production_not_on_the_local_database(run_task, base_env, database_url, tmp_path):
    dump = tmp_path / "any.dump"
    dumps.dump(database_url, dump)
    result = run_task("db.restore", str(dump), "-p", env={"PROD_CONNECTION_URL": database_url})
    line = assert_one_line_error(result, prefix="refused: ")
    assert f"on prod database {urls.describe(database_url)} needs confirmation" in line
    assert not Path(base_env["CRUDDUR_PGDATA"]).exists()  # the embedded server was never started
    # The path may also be given by name.
    by_name = run_task("db.restore", "--file", str(tmp_path / "none.dump"), env={"CONNECTION_URL": database_url})
    assert_one_line_error(by_name, "none.dump: no such file")


@pytest.mark.parametrize(
    "make, what",
    [(lambda tmp: tmp, "a folder"), (lambda tmp: Path("/dev/null"), "not a regular file (a device or a pipe)")],
    ids=["folder", "device"],
)
def test_restore_of_a_folder_or_a_device_says_what_it_is(run_task, schema_url, tmp_path, make, what):
    path = make(tmp_path)
    line = assert_one_line_error(run_task("db.restore", str(path), env={"CONNECTION_URL": schema_url}))
    assert line == f"error: {path}: {what}; give a dump file that inv db.dump wrote, e.g. backups/<db>-<UTC time>.dump"


def test_a_missing_database_on_prod_is_created_with_prod_commands(run_task, database_url):
    missing = urls.with_dbname(database_url, "no_such_db")
    line = assert_one_line_error(run_task("db.sessions", "--prod", env={"PROD_CONNECTION_URL": missing}))
    assert line.endswith('database "no_such_db" does not exist; create it with: inv db.create --prod, or inv db.setup --prod')


# Text around the commands: anything without an "i" (so it holds no command of its own).
AROUND = st.text(st.characters(blacklist_characters="i", blacklist_categories=("Cs",)), max_size=20)


@given(st.sampled_from(["db.create", "db.setup", "db.schema-load", "db.kill", "db.migrate"]), AROUND, AROUND)
def test_every_db_command_an_error_suggests_gets_prod_once(command, before, after):
    message = f"{before}: run inv {command}, or inv {command} --prod; then inv db.status; {after}"
    assert (
        for_target(message, prod=True) == f"{before}: run inv {command} --prod, or inv {command} --prod; then inv db.status --prod; {after}"
    )
    assert for_target(message, prod=False) == message


@pytest.fixture
def set_aside(server_url, database_url):
    """The app database as an interrupted swap leaves it: renamed to <name>__old."""
    name = urls.dbname(database_url)
    aside = swap_names(name)[1]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(aside)))
    yield database_url, aside
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(aside)))


def test_a_database_set_aside_by_an_interrupted_swap_is_never_advised_to_be_created_again(run_task, set_aside):
    url, aside = set_aside
    env = {"PROD_CONNECTION_URL": url}
    status = run_task("db.status", "--prod", env=env)
    assert status.returncode == 0, status.stderr
    assert (
        f"app database  {urls.dbname(url)}: missing: an interrupted db.setup or db.restore set it aside as {aside!r};"
        " a write task on --prod finishes the swap once you confirm: inv db.migrate --prod\n"
    ) in status.stdout
    assert "create it" not in status.stdout
    sessions = run_task("db.sessions", "--prod", env=env)
    assert sessions.returncode == 1
    assert sessions.stderr.splitlines()[-1].endswith(
        f"an interrupted db.setup or db.restore set it aside as {aside!r}; a write task finishes the swap: inv db.migrate --prod"
    )
    assert "create it" not in sessions.stderr


def test_status_names_a_scratch_database_an_interrupted_setup_left(run_task, server_url, database_url):
    scratch = swap_names(urls.dbname(database_url))[0]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        status = run_task("db.status", env={"CONNECTION_URL": database_url})
        assert (
            f"app database  {urls.dbname(database_url)}: exists; {scratch!r} left over from an interrupted db.setup or db.restore;"
            " the next db task finishes the swap: inv db.migrations\n"
        ) in status.stdout
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(scratch)))


def test_an_empty_prod_connection_url_says_it_is_empty_and_how_to_set_it(run_task):
    line = assert_one_line_error(run_task("db.sessions", "--prod", env={"PROD_CONNECTION_URL": " "}))
    assert line == (
        "error: PROD_CONNECTION_URL is set but empty (did the command that set it fail?):"
        ' export PROD_CONNECTION_URL="$(inv rds.url --show-password)"'
    )


def test_lambda_invoke_on_a_missing_database_names_it_and_hides_the_password(run_task, database_url):
    missing = urls.with_dbname(database_url, "no_such_db")
    secret = closed_port_url("hidden-pw")  # a URL with a password, for the other case
    for url in (missing, secret):
        line = assert_one_line_error(run_task("lambda.invoke", env={"CONNECTION_URL": url}))
        assert f"cannot connect to {urls.describe(url)}: " in line
        assert "hidden-pw" not in line
    assert line.endswith("Is the server running on that host and accepting TCP/IP connections?")


def test_dump_creates_the_missing_folders_of_its_output_as_the_readme_says(run_task, schema_url, tmp_path):
    path = tmp_path / "new" / "deeper" / "x.dump"
    result = run_task("db.dump", "--output", str(path), env={"CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"dumped dev database {urls.describe(schema_url)} to {path} (")
    assert path.stat().st_size > 0
