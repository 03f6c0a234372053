"""The bootcamp's own schema.sql and seed.sql load as they are: their first line creates the
uuid-ossp extension and their tables default to uuid_generate_v4(). The embedded server loads
the library's SQL-only uuid-ossp; a server of TEST_DATABASE_URL may have contrib's, or none."""

import uuid
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cruddur.postgres import local_server, urls
from tests.helpers import examples

FILES = Path(__file__).resolve().parent / "bootcamp"
STAND_IN = "SQL-only stand-in"


def uuid_ossp(url: str) -> str | None:
    """The comment of the uuid-ossp this server offers (the stand-in says so), None without one."""
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT comment FROM pg_available_extensions WHERE name = 'uuid-ossp'").fetchone()
    return found[0] if found else None


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_the_week_4_files_load_unchanged_on_the_embedded_default(run_task, initialised_base_env):
    assert run_task("db.create").returncode == 0
    schema = run_task("db.schema-load", "--file", str(FILES / "week-4" / "schema.sql"))
    assert schema.returncode == 0, schema.stderr
    assert schema.stdout.startswith(f"loaded {FILES / 'week-4' / 'schema.sql'} into local database ")
    seed = run_task("db.seed", "--file", str(FILES / "week-4" / "seed.sql"))
    assert seed.returncode == 0, seed.stderr
    url = urls.with_dbname(local_server.running_url(Path(initialised_base_env["CRUDDUR_PGDATA"])), "cruddur")
    users = rows(url, "SELECT handle, uuid FROM users ORDER BY handle")
    assert [handle for handle, _ in users] == ["andrewbrown", "bayko"]
    # The defaults drew random (version 4, RFC 4122 variant) uuids.
    assert all(value.version == 4 and value.variant == uuid.RFC_4122 for _, value in users)
    assert rows(url, "SELECT count(*) FROM activities JOIN users ON users.uuid = activities.user_uuid") == [(1,)]
    assert STAND_IN in uuid_ossp(url)


def test_the_final_weeks_files_load_with_their_schema_information(run_task, database_url):
    dev = {"CONNECTION_URL": database_url}
    available = uuid_ossp(database_url)
    schema = run_task("db.schema-load", "--file", str(FILES / "final" / "schema.sql"), env=dev)
    if available is None:  # a server without contrib's uuid-ossp (TEST_DATABASE_URL): one line, nothing loaded
        assert schema.returncode == 1
        assert 'extension "uuid-ossp" is not available' in schema.stderr
        assert rows(database_url, "SELECT to_regclass('public.users')") == [(None,)]
        return
    assert schema.returncode == 0, schema.stderr
    seed = run_task("db.seed", "--file", str(FILES / "final" / "seed.sql"), env=dev)
    assert seed.returncode == 0, seed.stderr
    assert rows(database_url, "SELECT id, last_successful_run FROM schema_information") == [(1, "0")]
    assert rows(database_url, "SELECT count(*) FROM users") == [(3,)]
    assert rows(database_url, "SELECT count(*) FROM activities JOIN users ON users.uuid = activities.user_uuid") == [(2,)]


@pytest.fixture
def with_uuid_ossp(database_url):
    """A database with uuid-ossp created (skipped on a server that has none)."""
    if uuid_ossp(database_url) is None:
        pytest.skip("this server has no uuid-ossp")
    with psycopg.connect(database_url) as conn:
        conn.execute('CREATE EXTENSION "uuid-ossp"')
    return database_url


def test_the_nil_uuid_and_the_namespaces_are_rfc_4122s(with_uuid_ossp):
    assert rows(with_uuid_ossp, "SELECT uuid_nil(), uuid_ns_dns(), uuid_ns_url(), uuid_ns_oid(), uuid_ns_x500()") == [
        (uuid.UUID(int=0), uuid.NAMESPACE_DNS, uuid.NAMESPACE_URL, uuid.NAMESPACE_OID, uuid.NAMESPACE_X500)
    ]


def test_version_4_uuids_are_random_and_distinct(with_uuid_ossp):
    drawn = [value for (value,) in rows(with_uuid_ossp, "SELECT uuid_generate_v4() FROM generate_series(1, 1000)")]
    assert len(set(drawn)) == 1000
    assert {(value.version, value.variant) for value in drawn} == {(4, uuid.RFC_4122)}


# Any name PostgreSQL text can hold: no NUL, no lone surrogate.
NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
NAMESPACES = st.sampled_from([uuid.NAMESPACE_DNS, uuid.NAMESPACE_URL, uuid.NAMESPACE_OID, uuid.NAMESPACE_X500]) | st.uuids()


@pytest.fixture
def uuid_ossp_session(with_uuid_ossp):
    with psycopg.connect(with_uuid_ossp, autocommit=True) as conn:
        yield conn


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(namespace=NAMESPACES, name=NAMES)
def test_version_3_is_rfc_4122s_md5_uuid(uuid_ossp_session, namespace, name):
    made = uuid_ossp_session.execute("SELECT uuid_generate_v3(%s, %s)", (namespace, name)).fetchone()[0]
    assert made == uuid.uuid3(namespace, name)


@pytest.mark.parametrize(
    "function, query",
    [
        ("uuid_generate_v1", "SELECT uuid_generate_v1()"),
        ("uuid_generate_v1mc", "SELECT uuid_generate_v1mc()"),
        ("uuid_generate_v5", "SELECT uuid_generate_v5(uuid_ns_dns(), 'example.com')"),
    ],
)
def test_the_versions_the_stand_in_lacks_raise_a_clear_error(with_uuid_ossp, function, query):
    if STAND_IN not in uuid_ossp(with_uuid_ossp):
        pytest.skip("contrib's own uuid-ossp has every version")
    with psycopg.connect(with_uuid_ossp) as conn, pytest.raises(psycopg.errors.FeatureNotSupported) as raised:
        conn.execute(query)
    assert str(raised.value).startswith(f"{function}() is not available in this server's uuid-ossp (a SQL-only stand-in")
    assert raised.value.diag.message_hint.startswith("Use uuid_generate_v")
