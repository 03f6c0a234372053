"""The post-confirmation handler against a real PostgreSQL."""

from __future__ import annotations

import copy
import functools
import json
import logging

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cruddur.errors import LIBPQ_QUOTED_WORDS, hide_quoted
from cruddur.lambda_build import local as lambda_local
from tests.helpers import ROOT, examples, free_port
from tests.lambda_support import sample_event, users

LOGGER = "cruddur_post_confirmation"


def test_confirm_sign_up_inserts_the_user_and_returns_the_event_unchanged(post_confirmation, schema_url):
    event = sample_event(name="Londo Mollari", email="londo@example.com")
    before = copy.deepcopy(event)

    returned = post_confirmation.handle(event, schema_url)

    assert returned == before
    user = event["request"]["userAttributes"]
    assert users(schema_url) == [("Londo Mollari", "londo@example.com", user["preferred_username"], user["sub"])]


def test_lambda_handler_reads_connection_url_from_its_environment(post_confirmation, schema_url, monkeypatch):
    monkeypatch.setenv("CONNECTION_URL", schema_url)
    event = sample_event()

    assert post_confirmation.lambda_handler(event, None) is event
    assert len(users(schema_url)) == 1


def test_lambda_handler_without_connection_url_says_so(post_confirmation, monkeypatch):
    monkeypatch.delenv("CONNECTION_URL", raising=False)

    with pytest.raises(RuntimeError, match="CONNECTION_URL is not set"):
        post_confirmation.lambda_handler(sample_event(), None)


def test_a_repeated_event_leaves_one_row(post_confirmation, schema_url, caplog):
    event = sample_event()
    caplog.set_level(logging.INFO, logger=LOGGER)

    for _ in range(3):  # Cognito retries a slow or failed trigger
        post_confirmation.handle(copy.deepcopy(event), schema_url)

    assert len(users(schema_url)) == 1
    outcomes = [record.getMessage().rsplit("outcome=", 1)[1] for record in caplog.records]
    assert outcomes == ["inserted", "already-present", "already-present"]


def test_forgot_password_inserts_nothing_and_needs_no_database(post_confirmation, schema_url):
    event = sample_event("confirm_forgot_password.json")
    before = copy.deepcopy(event)

    assert post_confirmation.handle(event, schema_url) == before
    assert users(schema_url) == []
    # It does not even connect: a password reset must not fail because the database is away.
    assert post_confirmation.handle(event, f"postgresql://nobody@127.0.0.1:{free_port()}/cruddur") == before


@pytest.mark.parametrize(
    "attributes",
    [
        {"name": "Robert'); DROP TABLE users;--", "preferred_username": "o'brien"},
        {"name": 'Zoë "the" Quote\\', "email": "x'); DELETE FROM users; --@example.com"},
        {"name": "%(sub)s %s {} $1", "preferred_username": "handle%s"},
    ],
)
def test_quotes_and_sql_looking_text_are_stored_verbatim(post_confirmation, schema_url, attributes):
    event = sample_event(**attributes)

    post_confirmation.handle(event, schema_url)

    user = event["request"]["userAttributes"]
    assert users(schema_url) == [(user["name"], user["email"], user["preferred_username"], user["sub"])]


@pytest.mark.parametrize("attribute", ["name", "email", "preferred_username", "sub"])
def test_a_missing_attribute_is_a_clear_error_not_a_null_insert(post_confirmation, schema_url, attribute):
    event = sample_event()
    del event["request"]["userAttributes"][attribute]

    with pytest.raises(KeyError) as raised:
        post_confirmation.handle(event, schema_url)

    assert isinstance(raised.value, post_confirmation.MissingAttribute)
    assert str(raised.value) == f"request.userAttributes.{attribute} is missing or empty"
    assert users(schema_url) == []


def test_an_empty_attribute_is_missing_too(post_confirmation, schema_url):
    with pytest.raises(post_confirmation.MissingAttribute, match="email"):
        post_confirmation.handle(sample_event(email="  "), schema_url)
    assert users(schema_url) == []


@pytest.mark.timeout(30)  # a hang guard; the handler's time budget is measured in bench/
def test_an_unreachable_database_raises_a_retryable_error(post_confirmation):
    with pytest.raises(post_confirmation.UserNotSaved) as raised:
        post_confirmation.handle(sample_event(), f"postgresql://postgres@127.0.0.1:{free_port()}/cruddur")

    assert "OperationalError: connection failed" in str(raised.value)
    # libpq's own text may quote a malformed URL's password: it is not chained for a traceback to show.
    # No chained botocore traceback under it in the function's log.
    assert raised.value.__cause__ is None and (raised.value.__context__ is None or raised.value.__suppress_context__)


@pytest.mark.timeout(30)  # a hang guard: without connect_timeout the OS would wait minutes
def test_a_server_that_never_answers_is_given_up_on_by_connect_timeout(post_confirmation, silent_port):
    with pytest.raises(post_confirmation.UserNotSaved) as raised:
        post_confirmation.handle(sample_event(), f"postgresql://postgres@127.0.0.1:{silent_port}/cruddur")

    assert "timeout expired" in str(raised.value)  # libpq's connect_timeout gave up, nothing else


def test_a_handle_held_by_another_real_user_is_handle_taken_without_personal_data(post_confirmation, schema_url, caplog):
    post_confirmation.handle(sample_event(preferred_username="taken"), schema_url)
    before = users(schema_url)
    clash = sample_event(preferred_username="taken", name="Vir Cotto", email="vir@example.com")
    caplog.set_level(logging.INFO, logger=LOGGER)
    caplog.clear()

    with pytest.raises(post_confirmation.UserNotSaved) as raised:
        post_confirmation.handle(clash, schema_url)

    assert isinstance(raised.value, post_confirmation.HandleTaken)
    assert users(schema_url) == before
    (line,) = [record.getMessage() for record in caplog.records]
    sub = clash["request"]["userAttributes"]["sub"]
    assert line == f"post-confirmation trigger=PostConfirmation_ConfirmSignUp sub={sub} outcome=handle-taken"
    assert str(raised.value) == f"user {sub} not saved: another user already has the handle"
    for personal in ("taken", "Vir Cotto", "vir@example.com"):
        assert personal not in str(raised.value)


def seed_placeholder(url: str, handle: str, cognito_user_id: str = "MOCK-seeded") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO public.users (display_name, handle, email, cognito_user_id) VALUES (%s, %s, %s, %s)",
            ("Seeded Name", handle, "seed@example.com", cognito_user_id),
        )


def test_a_sign_up_claims_the_seeded_row_of_its_handle(post_confirmation, schema_url, caplog):
    seed_placeholder(schema_url, "andrewbrown")
    with psycopg.connect(schema_url) as conn:
        (row_uuid,) = conn.execute("SELECT uuid FROM public.users WHERE handle = 'andrewbrown'").fetchone()
    event = sample_event(preferred_username="andrewbrown", name="Andrew Brown", email="andrew@exampro.co")
    caplog.set_level(logging.INFO, logger=LOGGER)

    post_confirmation.handle(event, schema_url)

    sub = event["request"]["userAttributes"]["sub"]
    assert users(schema_url) == [("Andrew Brown", "andrew@exampro.co", "andrewbrown", sub)]
    with psycopg.connect(schema_url) as conn:  # the same row: its activities stay the user's
        assert conn.execute("SELECT uuid FROM public.users WHERE cognito_user_id = %s", (sub,)).fetchone() == (row_uuid,)
    assert [record.getMessage().rsplit("outcome=", 1)[1] for record in caplog.records] == ["claimed"]


def test_a_retried_claim_is_already_present_and_changes_nothing(post_confirmation, schema_url, caplog):
    seed_placeholder(schema_url, "bayko")
    event = sample_event(preferred_username="bayko")
    post_confirmation.handle(copy.deepcopy(event), schema_url)
    after_claim = users(schema_url)
    caplog.set_level(logging.INFO, logger=LOGGER)
    caplog.clear()

    for _ in range(2):
        post_confirmation.handle(copy.deepcopy(event), schema_url)

    assert users(schema_url) == after_claim
    assert [record.getMessage().rsplit("outcome=", 1)[1] for record in caplog.records] == ["already-present"] * 2


@pytest.mark.parametrize("cognito_user_id", ["mock-lowercase", "XMOCK-1", "0f5d9c1e-3b7a-4c2e-9a61-5e8b7d4c2a99"])
def test_only_ids_starting_with_mock_are_placeholders(post_confirmation, schema_url, cognito_user_id):
    seed_placeholder(schema_url, "zack", cognito_user_id)

    with pytest.raises(post_confirmation.HandleTaken):
        post_confirmation.handle(sample_event(preferred_username="zack"), schema_url)

    assert [row[3] for row in users(schema_url)] == [cognito_user_id]


def test_the_seed_the_handler_and_cognito_sync_share_the_placeholder_rule(post_confirmation, schema_url):
    from cruddur.aws import cognito

    with psycopg.connect(schema_url) as conn:
        conn.execute((ROOT / "sql" / "seed.sql").read_bytes())
    seeded = users(schema_url)

    assert post_confirmation.PLACEHOLDER_PREFIX == cognito.PLACEHOLDER_PREFIX
    assert seeded and all(cognito.is_placeholder(row[3]) for row in seeded)
    for _, _, handle, _ in seeded:  # every seeded user can be claimed by its real sign-up
        post_confirmation.handle(sample_event(preferred_username=handle), schema_url)
    assert not any(cognito.is_placeholder(row[3]) for row in users(schema_url))


def _hold_users_lock(url: str) -> psycopg.Connection:
    """A session that holds users the way a running migration does (ACCESS EXCLUSIVE, open transaction)."""
    holder = psycopg.connect(url)
    holder.execute("LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE")
    return holder


@pytest.mark.timeout(30)  # a hang guard: without lock_timeout the handler would wait for the holder
@pytest.mark.parametrize("warm", [False, True], ids=["cold start", "warm connection"])
def test_a_locked_users_table_fails_fast_once_without_a_retry(post_confirmation, schema_url, caplog, warm):
    if warm:
        post_confirmation.handle(sample_event(), schema_url)
        first_pid = _backend_pid(schema_url)
    caplog.set_level(logging.INFO, logger=LOGGER)
    caplog.clear()
    holder = _hold_users_lock(schema_url)
    try:
        with pytest.raises(post_confirmation.UserNotSaved) as raised:
            post_confirmation.handle(sample_event(), schema_url)
    finally:
        holder.close()

    # lock_timeout fired, once: one failed attempt, on the same connection when warm.
    assert "LockNotAvailable (SQLSTATE 55P03)" in str(raised.value)
    assert [record.getMessage().split("outcome=")[1].split()[0] for record in caplog.records] == ["failed"]
    if warm:
        assert _backend_pid(schema_url) == first_pid  # the same connection: no reconnect
    assert len(users(schema_url)) == (1 if warm else 0)


@pytest.mark.timeout(30)
def test_a_slow_statement_is_cut_by_statement_timeout_without_a_retry(post_confirmation, schema_url):
    post_confirmation.handle(sample_event(), schema_url)
    first_pid = _backend_pid(schema_url)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_sleep(10); RETURN NEW; END $$;"
            "CREATE TRIGGER slow BEFORE INSERT ON public.users FOR EACH ROW EXECUTE FUNCTION slow()"
        )

    with pytest.raises(post_confirmation.UserNotSaved) as raised:
        post_confirmation.handle(sample_event(), schema_url)

    # statement_timeout cut it (without it the insert would succeed after 10 s), with no retry.
    assert "QueryCanceled (SQLSTATE 57014)" in str(raised.value)
    assert _backend_pid(schema_url) == first_pid
    assert len(users(schema_url)) == 1


def test_the_log_line_names_trigger_and_sub_only(post_confirmation, schema_url, caplog):
    event = sample_event(name="Lennier", email="lennier@example.com")
    caplog.set_level(logging.INFO, logger=LOGGER)

    post_confirmation.handle(event, schema_url)

    user = event["request"]["userAttributes"]
    assert [record.getMessage() for record in caplog.records] == [
        f"post-confirmation trigger=PostConfirmation_ConfirmSignUp sub={user['sub']} outcome=inserted"
    ]


def _backend_pid(url: str) -> int:
    with psycopg.connect(url) as conn:
        (pid,) = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
            ("cruddur-post-confirmation",),
        ).fetchone()
    return pid


def test_warm_invocations_reuse_one_connection(post_confirmation, schema_url):
    post_confirmation.handle(sample_event(), schema_url)
    first = _backend_pid(schema_url)
    post_confirmation.handle(sample_event(), schema_url)

    assert _backend_pid(schema_url) == first
    assert len(users(schema_url)) == 2


def test_a_dropped_connection_is_re_established(post_confirmation, schema_url):
    post_confirmation.handle(sample_event(), schema_url)
    dropped = _backend_pid(schema_url)
    with psycopg.connect(schema_url) as admin:
        (terminated,) = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
            ("cruddur-post-confirmation",),
        ).fetchone()
    assert terminated

    post_confirmation.handle(sample_event(), schema_url)

    assert len(users(schema_url)) == 2
    assert _backend_pid(schema_url) != dropped


@pytest.mark.parametrize("name", sorted(p.name for p in lambda_local.EVENTS_DIR.glob("*.json")))
def test_sample_events_have_cognitos_documented_shape(name):
    event = json.loads((lambda_local.EVENTS_DIR / name).read_text())

    assert set(event) == {
        "version",
        "region",
        "userPoolId",
        "userName",
        "callerContext",
        "triggerSource",
        "request",
        "response",
    }
    assert set(event["callerContext"]) == {"awsSdkVersion", "clientId"}
    assert event["triggerSource"] == "PostConfirmation_" + (
        "ConfirmSignUp" if name.startswith("confirm_sign_up") else "ConfirmForgotPassword"
    )
    assert event["userName"] == event["request"]["userAttributes"]["sub"]
    assert {"sub", "email", "name", "preferred_username"} <= set(event["request"]["userAttributes"])
    assert event["response"] == {}


@pytest.mark.parametrize(
    "break_event",
    [
        lambda event: event.update(request=None),
        lambda event: event.pop("request"),
        lambda event: event["request"].update(userAttributes=None),
        lambda event: event["request"].update(userAttributes=["sub"]),
    ],
    ids=["null request", "no request", "null userAttributes", "userAttributes a list"],
)
def test_an_event_without_user_attributes_is_the_missing_attribute_error(post_confirmation, schema_url, break_event):
    event = sample_event()
    break_event(event)

    with pytest.raises(post_confirmation.MissingAttribute) as raised:
        post_confirmation.handle(event, schema_url)

    assert str(raised.value) == "request.userAttributes is missing or not an object"
    assert users(schema_url) == []


def test_a_forgot_password_event_without_request_is_skipped(post_confirmation, schema_url):
    event = sample_event("confirm_forgot_password.json")
    event["request"] = None

    assert post_confirmation.handle(event, schema_url) is event


@pytest.mark.parametrize(
    "password, fragment",
    [("sec%zzret", "zzret"), ("p@ss-hidden", "ss-hidden")],
    ids=["bad percent-encoding", "unescaped @"],
)
def test_a_malformed_url_keeps_its_password_out_of_the_log_and_the_error(post_confirmation, caplog, password, fragment):
    import traceback

    url = f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/cruddur"
    caplog.set_level(logging.INFO, logger=LOGGER)

    with pytest.raises(post_confirmation.UserNotSaved) as raised:
        post_confirmation.handle(sample_event(), url)

    (line,) = [record.getMessage() for record in caplog.records]
    assert "outcome=failed" in line
    shown = "".join(traceback.format_exception(raised.value))  # what a runtime printing the whole chain shows
    for text in (line, str(raised.value), shown):
        assert fragment not in text


def test_a_percent_code_that_is_not_utf8_is_a_retryable_error_and_one_log_line(post_confirmation, caplog):
    import traceback

    caplog.set_level(logging.INFO, logger=LOGGER)
    url = f"postgresql://postgres:hidden%80@127.0.0.1:{free_port()}/cruddur"

    with pytest.raises(post_confirmation.UserNotSaved, match="percent code that is not UTF-8") as raised:
        post_confirmation.handle(sample_event(), url)

    (line,) = [record.getMessage() for record in caplog.records]
    assert line.endswith("outcome=failed error=ProgrammingError: CONNECTION_URL holds a percent code that is not UTF-8")
    shown = "".join(traceback.format_exception(raised.value))  # what a runtime printing the whole chain shows
    assert "UnicodeDecodeError" not in shown and "hidden" not in shown


# Texts made of libpq's own quoted words (which hide_quoted keeps), quotes, and anything else:
# random characters alone would almost never spell out one of those words.
HIDE_QUOTED_TEXTS = st.lists(
    st.sampled_from(LIBPQ_QUOTED_WORDS)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
    | st.from_regex(r"""[a-z "'=@:/%()\[\]]{0,20}""", fullmatch=True),
    max_size=6,
).map("".join)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HIDE_QUOTED_TEXTS)
@example('missing "=" after "secret" in connection info string')
def test_the_handlers_copy_of_hide_quoted_behaves_as_the_librarys(post_confirmation, text):
    assert post_confirmation.hide_quoted(text) == hide_quoted(text)


def test_the_hide_quoted_texts_hold_libpqs_own_words():
    """The comparison above is only worth something if its texts can hold the words kept."""
    from hypothesis import find

    for words in LIBPQ_QUOTED_WORDS:
        # find() fails the test when no text of the strategy holds the words.
        find(HIDE_QUOTED_TEXTS, lambda text, words=words: words in text and "'" in text)


# Issue 9: no password in the handler's log line, error or traceback, for any password in any
# place of the URL. libpq and psycopg quote the part of a URL they choke on, which may be it.
PASSWORDS = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.sampled_from("éßø中€ "), min_size=6, max_size=24)


def _url_with(password: str, place: str, port: int) -> str:
    from urllib.parse import quote

    encoded = quote(password, safe="")
    return {
        "user-info raw": f"postgresql://postgres:{password}@127.0.0.1:{port}/cruddur",
        "user-info encoded": f"postgresql://postgres:{encoded}@127.0.0.1:{port}/cruddur",
        "query raw": f"postgresql://postgres@127.0.0.1:{port}/cruddur?password={password}",
        "query encoded": f"postgresql://postgres@127.0.0.1:{port}/cruddur?password={encoded}",
    }[place]


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=PASSWORDS, place=st.sampled_from(["user-info raw", "user-info encoded", "query raw", "query encoded"]))
@example(password="000%80", place="user-info raw")  # not UTF-8 once decoded: psycopg's UnicodeDecodeError
@example(password="000%80", place="query raw")
def test_no_password_reaches_the_log_or_the_error(post_confirmation, caplog, password, place):
    import re
    import traceback

    caplog.set_level(logging.INFO, logger=LOGGER)
    caplog.clear()
    with pytest.raises(post_confirmation.UserNotSaved) as raised:
        post_confirmation.handle(sample_event(), _url_with(password, place, free_port()))

    shown = "\n".join([*(r.getMessage() for r in caplog.records), str(raised.value), *traceback.format_exception(raised.value)])
    # Neither it nor any stretch of it: the leaks found quoted the piece between two punctuation
    # marks. (Words the messages hold whatever the password, such as "Connection", prove nothing.)
    for piece in [password, *re.split(r"[\W_]+", password)]:
        if len(piece) >= 5 and piece.lower() not in _fixed_words():
            assert piece not in shown, piece


@functools.cache
def _fixed_words() -> str:
    """What the handler's failures say with harmless passwords, in every place a password goes."""
    import traceback

    handler = lambda_local.load_handler()
    texts = []
    for password in ("x", "x%zz", "x@y", "x/y:z", 'x"y', "x'y"):
        for place in ("user-info raw", "user-info encoded", "query raw", "query encoded"):
            try:
                handler.handle(sample_event(), _url_with(password, place, free_port()))
            except handler.UserNotSaved as e:
                texts += [str(e), *traceback.format_exception(e)]
    return "\n".join(texts).lower()


ZIP_CHILD = """
import json, logging, sys
import cruddur_post_confirmation as handler
logging.basicConfig(level=logging.INFO, format="%(message)s")  # as Lambda's runtime logs
outcomes = []
for event in json.loads(sys.stdin.read()):
    try:
        handler.lambda_handler(event, None)
        outcomes.append("saved")
    except handler.UserNotSaved as e:
        outcomes.append(type(e).__name__)
print(json.dumps(outcomes))
"""


def test_the_handler_from_the_extracted_zip_claims_and_refuses_taken_handles(lambda_zip, schema_url, tmp_path):
    import subprocess
    import sys
    import zipfile

    with zipfile.ZipFile(lambda_zip.path) as archive:
        archive.extractall(tmp_path / "task")
    (tmp_path / "task" / "run_events.py").write_text(ZIP_CHILD)
    seed_placeholder(schema_url, "andrewbrown")
    claim = sample_event(preferred_username="andrewbrown")
    taken = sample_event(preferred_username="andrewbrown")  # another sub, the same handle
    events = [claim, claim, taken]

    child = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-B", str(tmp_path / "task" / "run_events.py")],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        env={"CONNECTION_URL": schema_url},
        timeout=60,
    )

    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == ["saved", "saved", "HandleTaken"]
    sub = claim["request"]["userAttributes"]["sub"]
    assert [row[2:] for row in users(schema_url)] == [("andrewbrown", sub)]
    assert "outcome=claimed" in child.stderr and "outcome=already-present" in child.stderr
    assert "outcome=handle-taken" in child.stderr


# -- IAM database authentication (what lambda.deploy sets up) ---------------------------------


@pytest.fixture
def iam_environment(monkeypatch):
    """The function's environment as lambda.deploy leaves it, pointed at a local port; AWS
    credentials as Lambda gives them (signing needs no network)."""
    monkeypatch.delenv("CONNECTION_URL", raising=False)
    variables = {
        "DB_AUTH": "iam",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "5432",
        "DB_NAME": "cruddur",
        "DB_USER": "cruddur_signup",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


def test_iam_mode_signs_a_token_for_the_signup_user_on_that_host(post_confirmation, iam_environment):
    import os
    from urllib.parse import parse_qs, urlsplit

    token = post_confirmation.iam_auth(os.environ).token()

    parts = urlsplit(f"https://{token}")
    query = parse_qs(parts.query)
    assert (parts.hostname, parts.port) == ("127.0.0.1", 5432)
    assert query["Action"] == ["connect"] and query["DBUser"] == ["cruddur_signup"]
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Credential"][0].split("/")[2:4] == ["us-east-1", "rds-db"]


def test_the_token_is_the_one_boto3s_generate_db_auth_token_signs(post_confirmation, iam_environment):
    """The handler signs with botocore alone (no RDS client in its cold start): the same token,
    signature included, as boto3's own call for the same second."""

    import boto3

    rds = boto3.client("rds", region_name="us-east-1")
    for _ in range(5):  # two signatures straddle a second's change now and then
        ours = post_confirmation.IamAuth("127.0.0.1", 5432, "cruddur", "cruddur_signup", "us-east-1").token()
        boto3s = rds.generate_db_auth_token(DBHostname="127.0.0.1", Port=5432, DBUsername="cruddur_signup", Region="us-east-1")
        if ours.split("X-Amz-Date=")[1][:16] == boto3s.split("X-Amz-Date=")[1][:16]:
            break
    assert ours == boto3s and "X-Amz-Security-Token=testing" in ours


def test_a_token_is_reused_while_fresh_then_signed_again(post_confirmation, iam_environment):
    import os

    auth = post_confirmation.iam_auth(os.environ)
    first = auth.token(now=1000.0)

    assert auth.token(now=1000.0 + post_confirmation.TOKEN_REUSE_SECONDS - 1) == first
    assert auth.signed_at == 1000.0
    auth.token(now=1000.0 + post_confirmation.TOKEN_REUSE_SECONDS)
    assert auth.signed_at == 1000.0 + post_confirmation.TOKEN_REUSE_SECONDS
    # Kept across invocations, with its token, while the settings stay the same.
    assert post_confirmation.iam_auth(os.environ) is auth


def test_iam_mode_requires_tls_and_fails_as_a_retryable_error_without_it(post_confirmation, iam_environment, server_url, monkeypatch):
    """The test server speaks no TLS: a connection that would send the token in clear is refused
    by the client itself."""
    from psycopg import conninfo

    port = conninfo.conninfo_to_dict(server_url).get("port") or "5432"
    monkeypatch.setenv("DB_PORT", port)

    with pytest.raises(post_confirmation.UserNotSaved, match="SSL"):
        post_confirmation.lambda_handler(sample_event(), None)


@pytest.mark.parametrize("missing", ["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "AWS_REGION"])
def test_iam_mode_without_a_setting_names_it(post_confirmation, iam_environment, monkeypatch, missing):
    monkeypatch.delenv(missing)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)

    with pytest.raises(RuntimeError, match=f"DB_AUTH=iam needs {missing}"):
        post_confirmation.lambda_handler(sample_event(), None)


# Where else botocore looks for credentials: none of them may answer in these tests.
OTHER_CREDENTIAL_SOURCES = (
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None},
            "DB_AUTH=iam found no AWS credentials in the function's environment",
        ),
        (
            {"AWS_SECRET_ACCESS_KEY": None},
            "DB_AUTH=iam cannot sign a token: PartialCredentialsError: Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY",
        ),
        (
            {"AWS_ACCESS_KEY_ID": None, "AWS_PROFILE": "nope"},
            "DB_AUTH=iam cannot sign a token: ProfileNotFound: The config profile (nope) could not be found",
        ),
        ({"DB_HOST": "::1"}, "DB_AUTH=iam cannot sign a token: ValueError: "),
    ],
    ids=["no credentials", "half the credentials", "a profile that does not exist", "a bare IPv6 host"],
)
def test_iam_mode_that_cannot_sign_a_token_says_why_in_one_line(
    post_confirmation, iam_environment, monkeypatch, tmp_path, caplog, change, message
):
    for name in OTHER_CREDENTIAL_SOURCES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name, value in change.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)

    with pytest.raises(post_confirmation.UserNotSaved) as raised:
        post_confirmation.lambda_handler(sample_event(), None)

    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    # No chained botocore traceback under it in the function's log.
    assert raised.value.__cause__ is None and (raised.value.__context__ is None or raised.value.__suppress_context__)
    assert [r.getMessage().split(" outcome=")[1] for r in caplog.records] == [f"failed error={raised.value}"]


def test_url_mode_never_imports_botocore(schema_url):
    """Cold start: botocore costs about as much as psycopg to import; only IAM mode loads it."""
    import subprocess
    import sys

    probe = (
        "import json, sys; import cruddur_post_confirmation as h;"
        f"h.handle(json.loads(sys.stdin.read()), {schema_url!r}); print('botocore' in sys.modules)"
    )
    import os

    # The handler stands alone, as in Lambda's /var/task: its folder is the import path.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda")}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, input=json.dumps(sample_event()), capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("event", [[], "ConfirmSignUp", None, 42, [{"triggerSource": "PostConfirmation_ConfirmSignUp"}]], ids=repr)
def test_an_event_that_is_not_an_object_is_a_clear_error_and_one_log_line(post_confirmation, schema_url, caplog, event):
    caplog.set_level(logging.INFO, logger=LOGGER)

    with pytest.raises(post_confirmation.BadEvent) as raised:
        post_confirmation.handle(event, schema_url)

    assert str(raised.value) == f"the event is a {type(event).__name__}, not a JSON object"
    assert [r.getMessage() for r in caplog.records] == [
        "post-confirmation trigger=None sub=None outcome=failed error=the event is not a JSON object"
    ]
    assert users(schema_url) == []


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attribute=st.sampled_from(["name", "email", "preferred_username", "sub"]),
    before=st.text(max_size=5),
    surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
def test_a_lone_surrogate_in_an_attribute_is_a_clear_error_and_saves_nothing(
    post_confirmation, schema_url, caplog, attribute, before, surrogate
):
    caplog.set_level(logging.INFO, logger=LOGGER)
    caplog.clear()
    event = sample_event()
    event["request"]["userAttributes"][attribute] = f"{before}{surrogate}x"

    with pytest.raises(post_confirmation.BadEvent) as raised:
        post_confirmation.handle(event, schema_url)

    assert str(raised.value) == f"request.userAttributes.{attribute} is not valid text (it holds a lone surrogate)"
    (line,) = [r.getMessage() for r in caplog.records]
    line.encode("utf-8")  # the log line itself is valid text: a surrogate in the sub is shown escaped
    assert line.endswith(f"outcome=failed error={raised.value}")
    assert users(schema_url) == []
