"""cruddur.postgres.admin and cruddur.postgres.sessions against a real PostgreSQL."""

import re
import threading

import psycopg
import pytest
from psycopg import conninfo

from cruddur.errors import ConfigError, DatabaseError, SqlFileError
from cruddur.postgres import admin, urls
from cruddur.postgres.sessions import list_sessions
from tests.helpers import ROOT, add_user, closed_port_url, first_statement_line, login_role, table_count, wait_for, waiting_on_a_lock


def test_create_database_then_again_reports_existing(database_url):
    app_url = urls.with_dbname(database_url, urls.dbname(database_url) + "_app")
    assert admin.create_database(app_url) is True
    assert database_exists(app_url)
    assert admin.create_database(app_url) is False
    assert admin.drop_database(app_url) == 0


def test_drop_database_while_a_client_holds_it(database_url):
    holder = psycopg.connect(database_url)
    holder.execute("SELECT 1")
    assert admin.drop_database(database_url) == 1
    holder.close()
    assert not database_exists(database_url)
    assert admin.drop_database(database_url) is None


def test_rebuild_replaces_the_database_only_when_every_file_succeeds(schema_url, tmp_path):

    sql_dir = ROOT / "sql"
    add_user(schema_url, "keeper")
    bad_seed = tmp_path / "seed.sql"
    bad_seed.write_text("INSERT INTO users (handle) VALUES ('half');\n")
    with pytest.raises(SqlFileError, match="^seed.sql:1: 23502 null value in column"):
        admin.rebuild_database(schema_url, [(sql_dir / "schema.sql", "schema.sql"), (bad_seed, "seed.sql")])
    with pytest.raises(SqlFileError, match="^missing.sql: cannot read it"):
        admin.rebuild_database(schema_url, [(sql_dir / "schema.sql", "schema.sql"), (tmp_path / "none", "missing.sql")])
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT handle FROM users").fetchall() == [("keeper",)]
    scratch = urls.with_dbname(schema_url, urls.dbname(schema_url) + "__rebuild")
    assert not database_exists(scratch)

    assert admin.rebuild_database(schema_url, [(sql_dir / "schema.sql", "schema.sql"), (sql_dir / "seed.sql", "seed.sql")])
    assert table_count(schema_url, "users") == 2


def test_refuses_to_drop_the_maintenance_database(server_url):
    with pytest.raises(DatabaseError, match="maintenance database"):
        admin.drop_database(urls.with_dbname(server_url, "postgres"))


def test_sql_file_runs_atomically(schema_url, tmp_path):
    bad_seed = tmp_path / "seed.sql"
    bad_seed.write_text(
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('A', 'a', 'a@x', 'c1');\n"
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('B', 'a', 'b@x', 'c2');\n"
    )
    with pytest.raises(SqlFileError) as failure:
        admin.run_sql_file(schema_url, bad_seed, "sql/seed.sql")
    message = str(failure.value)
    assert message.startswith("sql/seed.sql:2: 23505 duplicate key value violates unique constraint")
    assert "Key (handle)=(a) already exists" in message
    assert "nothing of it was applied" in message
    assert table_count(schema_url, "users") == 0


def test_sql_syntax_error_names_line_and_column(database_url, tmp_path):
    script = tmp_path / "schema.sql"
    script.write_text("CREATE TABLE ok (id int);\n\n  CREAT TABLE broken (id int);\n")
    with pytest.raises(SqlFileError, match=r"^sql/schema.sql:3:3: 42601 syntax error at or near \"CREAT\""):
        admin.run_sql_file(database_url, script, "sql/schema.sql")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('ok')").fetchone() == (None,)


def test_missing_sql_file(database_url, tmp_path):
    with pytest.raises(SqlFileError, match="missing.sql: cannot read it: No such file or directory"):
        admin.run_sql_file(database_url, tmp_path / "missing.sql", "missing.sql")


def test_schema_and_seed_satisfy_each_other(database_url):

    sql_dir = ROOT / "sql"
    admin.run_sql_file(database_url, sql_dir / "schema.sql")
    admin.run_sql_file(database_url, sql_dir / "seed.sql")
    with psycopg.connect(database_url) as conn:
        handles = [h for (h,) in conn.execute("SELECT handle FROM users ORDER BY handle")]
        activity = conn.execute(
            "SELECT u.handle, a.message, a.expires_at - a.created_at FROM activities a JOIN users u ON u.uuid = a.user_uuid"
        ).fetchall()
    assert handles == ["andrewbrown", "bayko"]
    assert [(h, m, d.days) for h, m, d in activity] == [("andrewbrown", "This was imported as seed data!", 10)]


def test_server_down_is_one_line_without_password():
    with pytest.raises(DatabaseError) as failure:
        admin.connect(closed_port_url())
    message = str(failure.value)
    assert message.startswith("cannot connect to postgres@127.0.0.1:")
    assert "Connection refused" in message
    assert "\n" not in message and "s3cr3t-pw" not in message


def test_missing_database_suggests_create(database_url):
    missing = urls.with_dbname(database_url, "no_such_db")
    with pytest.raises(DatabaseError, match=r'database "no_such_db" does not exist; create it with: inv db.create'):
        admin.connect(missing)


def test_wrong_password(server_url):
    params = conninfo.conninfo_to_dict(server_url)
    if not params.get("password"):
        pytest.skip("this server trusts every password (the embedded one); CI's TCP server checks them")
    wrong = conninfo.make_conninfo(server_url, password="definitely-wrong")
    with pytest.raises(DatabaseError) as failure:
        admin.connect(wrong)
    assert "password authentication failed" in str(failure.value)
    assert "definitely-wrong" not in str(failure.value)


def test_malformed_url():
    with pytest.raises(ConfigError, match="malformed: the port is not a number"):
        admin.connect("postgresql://postgres:s3cr3t@localhost:abc/cruddur")


def database_exists(url):
    with psycopg.connect(urls.with_dbname(url, "postgres")) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (urls.dbname(url),)).fetchone() is not None


def test_terminate_other_sessions_spares_our_own(database_url):
    others = [psycopg.connect(database_url) for _ in range(2)]
    pids = sorted(conn.info.backend_pid for conn in others)
    assert admin.terminate_other_sessions(database_url) == [(pid, True) for pid in pids]
    with pytest.raises(psycopg.OperationalError):
        others[0].execute("SELECT 1")
    assert admin.terminate_other_sessions(database_url) == []


def test_sessions_show_other_clients_and_blockers(database_url, server_sessions_alone):
    import threading

    with psycopg.connect(database_url, application_name="flask-app") as app, psycopg.connect(database_url, autocommit=True) as blocked:
        app_pid, blocked_pid = app.info.backend_pid, blocked.info.backend_pid
        app.execute("CREATE TABLE t (id int)")
        app.commit()
        app.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # held until commit
        waiter = threading.Thread(target=_ignore, args=(blocked.execute, "SELECT * FROM t"))
        waiter.start()
        try:
            # This test's database only: on a shared server another test's session may be waiting too.
            ours = urls.dbname(database_url)
            rows = wait_for(
                lambda: [r for r in list_sessions(database_url) if r["blocked_by"] and r["db"] == ours], "a session blocked by another"
            )
            everyone = list_sessions(database_url)
        finally:
            app.rollback()
            waiter.join()
    assert [(r["pid"], r["blocked_by"]) for r in rows] == [(blocked_pid, [app_pid])]
    assert rows[0]["wait_event"].startswith("Lock:")
    assert rows[0]["query"] == "SELECT * FROM t"
    holder = next(r for r in everyone if r["pid"] == app_pid)
    assert (holder["app"], holder["state"]) == ("flask-app", "idle in transaction")
    assert [r["this_session"] for r in everyone].count(True) == 1


def _record(failures: list, fn, *args):
    try:
        fn(*args)
    except Exception as e:
        failures.append(e)


def _ignore(fn, *args):
    try:
        fn(*args)
    except psycopg.Error:
        pass


def test_sessions_work_for_a_non_superuser(database_url, server_url):
    with login_role(database_url, "app_") as as_role, psycopg.connect(database_url) as other:
        rows = list_sessions(as_role)
        superuser_row = next(r for r in rows if r["pid"] == other.info.backend_pid)
        assert (superuser_row["user"], superuser_row["query"]) == ("postgres", "<insufficient privilege>")
        assert any(r["this_session"] and r["user"] == conninfo.conninfo_to_dict(as_role)["user"] for r in rows)


def test_a_non_superuser_cannot_end_another_roles_session(database_url):
    with login_role(database_url, "app_") as as_role:
        with psycopg.connect(database_url) as superuser_session, psycopg.connect(as_role) as own_role_session:
            results = dict(admin.terminate_other_sessions(as_role))
            assert results == {superuser_session.info.backend_pid: False, own_role_session.info.backend_pid: True}
            superuser_session.execute("SELECT 1")  # still alive


def test_include_server_processes(database_url):
    assert {r["backend_type"] for r in list_sessions(database_url)} == {"client backend"}
    assert "checkpointer" in {r["backend_type"] for r in list_sessions(database_url, include_server_processes=True)}


def test_wait_until_ready(database_url):
    admin.wait_until_ready(database_url, timeout=5)  # returns: no DatabaseError
    unreachable = closed_port_url()
    with pytest.raises(DatabaseError) as failure:
        admin.wait_until_ready(unreachable, timeout=0.5, interval=0.1)
    # How long it took is the clock's business; that it waited out the whole timeout is not.
    waited = re.fullmatch(rf"gave up after (\d+\.\d)s: cannot connect to {re.escape(urls.describe(unreachable))}: .+", str(failure.value))
    assert waited and float(waited.group(1)) >= 0.5, str(failure.value)


def test_a_missing_database_counts_as_ready(database_url):
    admin.wait_until_ready(urls.with_dbname(database_url, "no_such_db"), timeout=5)  # returns: no DatabaseError


@pytest.mark.timeout(30)  # a hang guard: without lock_timeout the load would wait for the holder
def test_a_file_load_behind_a_lock_gives_up_and_names_the_holder(schema_url):
    add_user(schema_url, "kept")
    with psycopg.connect(schema_url, application_name="report-writer") as holder:
        holder.execute("SELECT count(*) FROM users")  # an open transaction holds a lock on users
        with pytest.raises(SqlFileError) as failure:
            admin.run_sql_file(schema_url, ROOT / "sql" / "schema.sql", "sql/schema.sql", lock_timeout=1)
        message = str(failure.value)
        assert message.startswith(
            f"sql/schema.sql:{first_statement_line(ROOT / 'sql' / 'schema.sql')}: waited 1s for a lock held by session {holder.info.backend_pid} ('report-writer', idle in transaction, for "
        )
        assert message.endswith("s); nothing of it was applied (end it with inv db.kill, or allow longer with --lock-timeout)")
        holder.rollback()
    assert table_count(schema_url, "users") == 1  # the schema was not replaced


def test_a_file_load_that_waits_less_than_its_timeout_goes_through(schema_url):
    add_user(schema_url, "replaced")
    with psycopg.connect(schema_url) as holder:
        holder.execute("SELECT count(*) FROM users")
        failures = []
        load = threading.Thread(
            target=lambda: _record(failures, admin.run_sql_file, schema_url, ROOT / "sql" / "schema.sql", "sql/schema.sql", 60)
        )
        load.start()
        wait_for(lambda: waiting_on_a_lock(schema_url), "the load waiting behind the holder's lock")
        holder.rollback()
        load.join(60)
    assert not load.is_alive() and failures == []
    assert table_count(schema_url, "users") == 0  # the schema was loaded anew


def test_sessions_and_kill_turn_a_refused_catalog_query_into_one_line(database_url):
    """A role the database does not let read pg_stat_activity (as a hardened server may) gets a
    DatabaseError line from db.sessions and db.kill, not a raw psycopg error."""
    with login_role(database_url, "probe_") as as_probe:
        with psycopg.connect(database_url, autocommit=True) as conn:
            # Object privileges are per database: only this test's throwaway database is affected.
            conn.execute("REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC")
        try:
            with pytest.raises(DatabaseError) as listing:
                list_sessions(as_probe)
            assert str(listing.value).startswith("cannot list the sessions: permission denied for view pg_stat_activity")
            with pytest.raises(DatabaseError) as killing:
                admin.terminate_other_sessions(as_probe)
            assert str(killing.value).startswith("cannot list the other sessions: permission denied")
        finally:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("GRANT SELECT ON pg_catalog.pg_stat_activity TO PUBLIC")


def holding_advisory_lock(url: str, key: str) -> psycopg.Connection:
    holder = psycopg.connect(url, autocommit=True, application_name="the holder")
    holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
    return holder


def test_an_advisory_lock_wait_past_a_second_names_who_holds_it_on_the_waits_logger(database_url, caplog):
    import logging
    import re

    from cruddur.postgres.connect import advisory_lock, connect

    caplog.set_level(logging.INFO, logger="cruddur.waits")
    with holding_advisory_lock(database_url, "a test's lock") as holder, connect(database_url, autocommit=True) as waiter:
        holder_pid = holder.info.backend_pid
        assert advisory_lock(waiter, "a test's lock", wait=1.5, what="the test to let go") is False

    (said,) = [record.getMessage() for record in caplog.records]
    assert re.fullmatch(
        rf"waiting up to 0\.5s more for the test to let go \(the lock is held by session {holder_pid} \('the holder', idle, for \d+\.\ds\)\)",
        said,
    ), said


def test_an_advisory_lock_taken_at_once_or_waited_for_under_a_second_says_nothing(database_url, caplog):
    import logging

    from cruddur.postgres.connect import advisory_lock, connect

    caplog.set_level(logging.INFO, logger="cruddur.waits")
    with connect(database_url, autocommit=True) as conn:
        assert advisory_lock(conn, "free", wait=30) is True
    with holding_advisory_lock(database_url, "held"), connect(database_url, autocommit=True) as waiter:
        assert advisory_lock(waiter, "held", wait=0.5) is False
    assert caplog.records == []
