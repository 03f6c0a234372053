"""No message, log line or repr ever shows a password, whatever it holds and wherever the URL
carries it; and a URL libpq accepts keeps working after the tool rewrites it.

Each password is drawn around two marker words: a test fails if either marker (a piece of the
password) or the whole password shows up anywhere a user could read it."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cruddur.errors import ConfigError, CruddurError
from cruddur.lambda_build import local as lambda_local
from cruddur.postgres import connect, urls
from cruddur.postgres.client import Database
from tests.helpers import assert_one_line_error, examples, free_port
from tests.lambda_support import sample_event

MARKERS = ("Kq7Zx", "Wv3Jm")

# All printable ASCII (what a password manager produces) and some non-ASCII.
characters = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("éßØ€日本🔑")
passwords = st.builds(
    lambda a, b, c: f"{a}{MARKERS[0]}{b}{MARKERS[1]}{c}",
    st.text(characters, max_size=6),
    st.text(characters, max_size=6),
    st.text(characters, max_size=6),
)
placements = st.sampled_from(["userinfo", "query"])
spellings = st.sampled_from(["raw", "percent-encoded"])

# Passwords the adversarial run found leaking or crashing.
KNOWN_BAD = ["Hx7[leak-Kq7Zx]Wv3Jm", "a#bKq7Zx?cWv3Jm", 'q"%zzKq7ZxWv3Jm', "%ffKq7ZxWv3Jm", "a/bKq7Zx@Wv3Jm", 'Kq7Zx" Wv3Jm"', "!!Kq7Zx!!"]


def url_with(password: str, placement: str, spelling: str, where: str = "127.0.0.1:5432", user: str = "postgres", query: str = "") -> str:
    written = quote(password, safe="") if spelling == "percent-encoded" else password
    if placement == "userinfo":
        return f"postgresql://{user}:{written}@{where}/cruddur" + (f"?{query}" if query else "")
    return f"postgresql://{user}@{where}/cruddur?" + "&".join(filter(None, [query, f"password={written}"]))


def assert_hidden(text: str, password: str) -> None:
    for secret in (*MARKERS, password, quote(password, safe="")):
        assert secret not in text, f"{secret!r} shown in {text!r}"


def all_examples(test):
    test = example("Hx7[leak-Kq7Zx]Wv3Jm", "userinfo", "raw")(test)
    for password in KNOWN_BAD:
        test = example(password, "userinfo", "raw")(test)
        test = example(password, "query", "raw")(test)
    return given(passwords, placements, spellings)(test)


@all_examples
@settings(max_examples=examples(300), deadline=None)
def test_parse_mask_describe_and_repr_never_show_the_password(password, placement, spelling):
    url = url_with(password, placement, spelling)
    assert_hidden(urls.mask(url), password)
    try:
        params = urls.parse(url, "CONNECTION_URL")
    except ConfigError as e:
        message = str(e)
        assert message.startswith("CONNECTION_URL is malformed: ") and "\n" not in message
        assert_hidden(message, password)
        assert urls.mask(url) == "****"
        return
    assert_hidden(urls.describe(url), password)
    assert_hidden(repr(Database(url)), password)
    # Whatever libpq read as the password is the password: no piece of it went elsewhere.
    assert all(MARKERS[0] not in value for key, value in params.items() if key != "password")


@all_examples
@settings(max_examples=examples(200), deadline=None)
def test_a_connection_failure_never_shows_the_password(password, placement, spelling):
    url = url_with(password, placement, spelling, where=f"127.0.0.1:{free_port()}")
    with pytest.raises(CruddurError) as failure:
        connect.connect(url, timeout=2)
    assert "\n" not in str(failure.value)
    assert_hidden(str(failure.value), password)


@pytest.fixture
def role_url(server_url):
    """(make_url(password, placement, spelling), set_password): a login role of its own on the
    test server, reached the way server_url reaches it (socket or TCP)."""
    name = f"secrets_probe_{uuid.uuid4().hex[:8]}"
    params = psycopg.conninfo.conninfo_to_dict(server_url)
    host = params.get("host") or "localhost"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(name)))

    def set_password(password: str) -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(psycopg.sql.Identifier(name), password))

    def make(password: str, placement: str, spelling: str) -> str:
        if host.startswith("/"):
            return url_with(password, placement, spelling, where="", user=name, query=f"host={host}&port={params.get('port') or 5432}")
        return url_with(password, placement, spelling, where=f"{host}:{params.get('port') or 5432}", user=name)

    yield make, set_password
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(name)))


@given(passwords, placements, spellings)
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_rewritten_url_still_connects_where_libpq_accepts_the_original(role_url, password, placement, spelling):
    make, set_password = role_url
    url = make(password, placement, spelling)
    try:
        read = urls.parse(url)
    except ConfigError:
        return  # refused up front, in one line (the test above)
    set_password(read["password"])
    moved = urls.with_dbname(url, "postgres")
    assert urls.parse(moved) == {**read, "dbname": "postgres"}
    with psycopg.connect(url.replace("/cruddur", "/postgres", 1)) as conn:  # the original works ...
        assert conn.execute("SELECT current_user").fetchone()[0] == read["user"]
    with connect.connect(moved) as conn:  # ... and so does the rewrite
        assert conn.execute("SELECT current_database(), current_user").fetchone() == ("postgres", read["user"])


def test_a_raw_hash_or_question_mark_in_the_password_survives_a_change_of_database(role_url):
    make, set_password = role_url
    set_password("a#b?c")
    url = make("a#b?c", "userinfo", "raw")
    with connect.connect(urls.with_dbname(url, "postgres")) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "postgres"


@all_examples
@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_lambda_handlers_error_and_log_never_show_the_password(tmp_path, password, placement, spelling):
    url = url_with(password, placement, spelling, where=f"127.0.0.1:{free_port()}")
    handler = lambda_local.load_handler()
    lines = []
    handler.log.addHandler(_Collect(lines))
    try:
        with pytest.raises(Exception) as failure:
            handler.handle(sample_event(), url)
    finally:
        handler.close_connection()
    assert_hidden(str(failure.value), password)
    for line in lines:
        assert_hidden(line, password)


class _Collect(__import__("logging").Handler):
    def __init__(self, lines):
        super().__init__()
        self.lines = lines

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("password", KNOWN_BAD)
@pytest.mark.parametrize("task, variable", [(["db.create"], "CONNECTION_URL"), (["db.sessions", "--prod"], "PROD_CONNECTION_URL")])
def test_db_tasks_never_print_the_password(request, password, task, variable):
    # The first password through `inv` itself: the process boundary (stderr, exit code) is what a
    # CI log keeps. The others in-process, which answers alike (tests/test_in_process_runs.py).
    run = request.getfixturevalue("inv" if password == KNOWN_BAD[0] else "run_task")
    url = url_with(password, "userinfo", "raw", where=f"127.0.0.1:{free_port()}")
    result = run(*task, env={variable: url})
    line = assert_one_line_error(result)
    assert_hidden(result.stdout + line, password)
