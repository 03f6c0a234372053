"""The app's login roles on a real PostgreSQL: each privilege tried as that role.

The roles log in over TCP with their generated passwords (the embedded server's 127.0.0.1 side
checks them; an external TEST_DATABASE_URL server is reached as its URL says). Roles are
server-wide, so each test names its own pair, except the one task test."""

from __future__ import annotations

import copy
import stat
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, errors, sql

from cruddur.errors import DatabaseError
from cruddur.postgres import local_server, roles, urls
from tests.helpers import ROOT, add_user, over_tcp
from tests.lambda_support import sample_event, users


@pytest.fixture
def names(server_url):
    """A pair of role names of this test's own, dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    pair = roles.Names(signup=f"signup_{suffix}", app=f"app_{suffix}")
    yield pair
    _drop_roles(server_url, pair)


def _drop_roles(server_url: str, pair) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in pair:
            if conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                databases = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()]
                for database in databases:
                    url = conninfo.make_conninfo(server_url, dbname=database)
                    try:
                        with psycopg.connect(url, autocommit=True) as there:
                            there.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                    except psycopg.OperationalError:
                        pass  # a test's database dropped meanwhile
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def as_role(url: str, role: str, password_dir) -> str:
    """The URL of the same database for `role` with its kept password, over TCP."""
    return over_tcp(url, user=role, password=roles.password_path(password_dir, role).read_text().strip())


def test_a_fresh_server_gets_both_roles_with_passwords_kept_owner_only(schema_url, names, tmp_path):
    folder = tmp_path / "secrets"

    outcome = roles.apply(schema_url, folder, names)

    assert [(role.name, role.created, role.iam) for role in outcome.roles] == [(names.signup, True, False), (names.app, True, False)]
    assert outcome.users_table
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in names:
        path = roles.password_path(folder, name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with psycopg.connect(as_role(schema_url, name, folder)) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == name
    with psycopg.connect(schema_url) as conn:
        attributes = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
            (list(names),),
        ).fetchall()
    assert attributes == sorted((name, True, False, False, False) for name in names)


def test_a_wrong_password_is_refused_over_tcp(schema_url, names, tmp_path):
    roles.apply(schema_url, tmp_path, names)
    url = as_role(schema_url, names.app, tmp_path)

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(conninfo.make_conninfo(url, password="not-the-password"), connect_timeout=5)


def test_running_it_again_keeps_the_passwords_and_changes_nothing(schema_url, names, tmp_path):
    roles.apply(schema_url, tmp_path, names)
    kept = {name: roles.password_path(tmp_path, name).read_text() for name in names}
    with psycopg.connect(schema_url) as conn:
        before = {name: roles.privileges(conn, name) for name in names}

    again = roles.apply(schema_url, tmp_path, names)

    assert [(role.created, role.changes) for role in again.roles] == [(False, ()), (False, ())]
    assert {name: roles.password_path(tmp_path, name).read_text() for name in names} == kept
    with psycopg.connect(schema_url) as conn:
        assert {name: roles.privileges(conn, name) for name in names} == before
    with psycopg.connect(as_role(schema_url, names.signup, tmp_path)):
        pass


def test_signup_role_runs_the_handlers_insert_and_claim(post_confirmation, schema_url, names, tmp_path):
    roles.apply(schema_url, tmp_path, names)
    add_user(schema_url, "seeded")
    url = as_role(schema_url, names.signup, tmp_path)
    new, claim = sample_event(), sample_event(preferred_username="seeded")

    post_confirmation.handle(new, url)
    post_confirmation.handle(claim, url)
    post_confirmation.handle(copy.deepcopy(new), url)  # a retried event: already-present

    saved = {row[2]: row[3] for row in users(schema_url)}
    assert saved == {
        new["request"]["userAttributes"]["preferred_username"]: new["request"]["userAttributes"]["sub"],
        "seeded": claim["request"]["userAttributes"]["sub"],
    }


def test_app_role_reads_and_writes_rows_of_every_app_table(schema_url, names, tmp_path):
    add_user(schema_url, "writer")
    roles.apply(schema_url, tmp_path, names)

    with psycopg.connect(as_role(schema_url, names.app, tmp_path)) as conn:
        (user,) = conn.execute("SELECT uuid FROM public.users WHERE handle = 'writer'").fetchone()
        conn.execute("INSERT INTO public.activities (user_uuid, message) VALUES (%s, 'hello')", (user,))
        conn.execute("UPDATE public.activities SET likes_count = likes_count + 1")
        conn.execute("UPDATE public.users SET display_name = 'Renamed'")
        conn.execute("DELETE FROM public.activities")
        assert conn.execute("SELECT count(*) FROM public.users").fetchone()[0] == 1


REFUSED = {
    "signup": [
        "DELETE FROM public.users",
        "UPDATE public.users SET created_at = now()",
        "SELECT * FROM public.activities",
        "INSERT INTO public.activities (user_uuid, message) SELECT uuid, 'x' FROM public.users",
        "TRUNCATE public.users",
        "CREATE TABLE public.mine (id int)",
        "DROP TABLE public.users",
        "ALTER TABLE public.users ADD COLUMN x int",
        "SELECT * FROM public.schema_migrations",
        "CREATE ROLE intruder",
        "CREATE DATABASE intruder",
    ],
    "app": [
        "CREATE TABLE public.mine (id int)",
        "DROP TABLE public.activities",
        "ALTER TABLE public.users ADD COLUMN x int",
        "TRUNCATE public.activities",
        "CREATE INDEX mine ON public.users (email)",
        "INSERT INTO public.schema_migrations VALUES ('1')",
        "DELETE FROM public.schema_migrations",
        "CREATE ROLE intruder",
        "CREATE DATABASE intruder",
    ],
}


@pytest.mark.parametrize("which", REFUSED)
def test_each_role_is_refused_everything_else(schema_url, names, tmp_path, which):
    with psycopg.connect(schema_url) as conn:
        conn.execute("CREATE TABLE public.schema_migrations (version text PRIMARY KEY)")
    add_user(schema_url, "someone")
    roles.apply(schema_url, tmp_path, names)

    allowed = []
    with psycopg.connect(as_role(schema_url, getattr(names, which), tmp_path), autocommit=True) as conn:
        for statement in REFUSED[which]:
            try:
                conn.execute(statement)
                allowed.append(statement)
            except errors.InsufficientPrivilege:
                pass
    assert allowed == []


def test_a_table_a_later_migration_creates_is_granted_to_the_app(schema_url, names, tmp_path):
    roles.apply(schema_url, tmp_path, names)
    with psycopg.connect(schema_url) as conn:  # as the owner, as db.migrate runs
        conn.execute("CREATE TABLE public.likes (id bigserial PRIMARY KEY, note text)")

    with psycopg.connect(as_role(schema_url, names.app, tmp_path)) as conn:
        conn.execute("INSERT INTO public.likes (note) VALUES ('new table')")
        assert conn.execute("SELECT count(*) FROM public.likes").fetchone()[0] == 1
    with psycopg.connect(as_role(schema_url, names.signup, tmp_path)) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM public.likes")


def test_a_recreated_users_table_gets_the_signup_grants_again(post_confirmation, schema_url, names, tmp_path):
    roles.apply(schema_url, tmp_path, names)
    with psycopg.connect(schema_url) as conn:  # schema.sql drops and recreates the tables
        conn.execute((ROOT / "sql" / "schema.sql").read_bytes())
        assert roles.regrant(conn, names)

    post_confirmation.handle(sample_event(), as_role(schema_url, names.signup, tmp_path))
    assert len(users(schema_url)) == 1


def test_regrant_does_nothing_where_the_roles_do_not_exist(schema_url):
    missing = roles.Names(signup=f"none_{uuid.uuid4().hex[:8]}", app=f"none_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(schema_url) as conn:
        assert roles.regrant(conn, missing) is False


def test_a_role_made_too_powerful_is_brought_back(schema_url, names, tmp_path):
    roles.apply(schema_url, tmp_path, names)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEDB CREATEROLE").format(sql.Identifier(names.app)))
        conn.execute(sql.SQL("CREATE TABLE public.owned_by_app (id int)"))
        conn.execute(sql.SQL("ALTER TABLE public.owned_by_app OWNER TO {}").format(sql.Identifier(names.app)))

    again = roles.apply(schema_url, tmp_path, names)

    app = again.roles[1]
    assert app.changes[:2] == ("NOCREATEROLE", "NOCREATEDB")
    assert "1 object(s) it owned handed to" in app.changes[2]
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (names.app,)).fetchone()[0] == 0


def test_an_empty_database_gets_the_roles_and_says_users_is_missing(database_url, names, tmp_path):
    outcome = roles.apply(database_url, tmp_path, names)

    assert outcome.users_table is False
    with psycopg.connect(as_role(database_url, names.app, tmp_path)):
        pass


def test_where_rds_iam_exists_the_roles_get_it_and_no_password(schema_url, names, tmp_path, server_url):
    with psycopg.connect(server_url, autocommit=True) as conn:
        if conn.execute("SELECT FROM pg_roles WHERE rolname = 'rds_iam'").fetchone():
            pytest.skip("the server already has rds_iam")
    roles.apply(schema_url, tmp_path, names)  # with a password, before the server became "RDS"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE rds_iam NOLOGIN")
    try:
        outcome = roles.apply(schema_url, None, names)
        with psycopg.connect(schema_url) as conn:
            members = conn.execute(
                "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member WHERE a.roleid = 'rds_iam'::regrole ORDER BY 1"
            ).fetchall()
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute("DROP ROLE rds_iam")

    assert [(role.iam, role.password_file) for role in outcome.roles] == [(True, None), (True, None)]
    assert members == sorted((name,) for name in names)
    # The old password no longer works: an IAM role has none.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(as_role(schema_url, names.app, tmp_path), connect_timeout=5)


def test_without_iam_or_a_password_folder_nothing_changes(schema_url, names):
    with pytest.raises(DatabaseError, match="has no role rds_iam"):
        roles.apply(schema_url, None, names)
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (list(names),)).fetchone()[0] == 0


def test_db_roles_task_sets_up_both_roles_and_a_rebuild_keeps_them_working(run_task, initialised_base_env):
    """The one test on the default names (roles are server-wide; this is its own server)."""
    assert run_task("db.setup").returncode == 0

    result = run_task("db.roles")

    assert result.returncode == 0, result.stderr
    pgdata = Path(initialised_base_env["CRUDDUR_PGDATA"])
    for name in (roles.SIGNUP, roles.APP):
        path = roles.password_path(pgdata, name)
        assert path.read_text().strip() not in result.stdout + result.stderr
        assert f"{name}: created, password in {path} (yours only)" in result.stdout
    assert "cruddur_signup may: users: SELECT, INSERT (display_name, handle, email, cognito_user_id)" in result.stdout
    assert f'export CONNECTION_URL="postgresql://cruddur_app:$(cat {roles.password_path(pgdata, roles.APP)})@127.0.0.1:' in result.stdout
    again = run_task("db.roles")
    assert again.returncode == 0
    assert "cruddur_app: checked," in again.stdout

    assert run_task("db.setup").returncode == 0  # a new database, built aside and swapped in

    url = urls.with_dbname(local_server.running_url(pgdata), "cruddur")
    with psycopg.connect(as_role(url, roles.SIGNUP, pgdata)) as conn:
        assert conn.execute("SELECT count(*) > 0 FROM public.users").fetchone()[0]
    with psycopg.connect(as_role(url, roles.APP, pgdata)) as conn:
        conn.execute("DELETE FROM public.activities")
