"""Activities through the client against a real PostgreSQL: the CreateActivity rules and error
codes, the exact JSON shapes, the home feed's order, and many threads on one pool."""

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cruddur.activities import HOME_FEED_LIMIT, TTLS, count_activities, create_activity, get_activity, home_activities
from cruddur.postgres.client import Database
from tests.helpers import add_user, examples

CREATED_KEYS = {"uuid", "display_name", "handle", "message", "created_at", "expires_at"}
FEED_KEYS = {
    "uuid",
    "display_name",
    "handle",
    "message",
    "replies_count",
    "reposts_count",
    "likes_count",
    "reply_to_activity_uuid",
    "expires_at",
    "created_at",
}


def activity_count(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM activities").fetchone()[0]


@pytest.fixture
def client_with_andrewbrown(schema_url):
    add_user(schema_url, "andrewbrown", "Andrew Brown")
    with Database(schema_url, max_size=4) as client:
        yield client


@pytest.mark.parametrize(
    "handle, message, ttl, errors",
    [
        ("andrewbrown", "hi", "", ["ttl_blank"]),
        ("andrewbrown", "hi", None, ["ttl_blank"]),
        ("andrewbrown", "hi", "2-days", ["ttl_blank"]),
        ("andrewbrown", "hi", "7 days", ["ttl_blank"]),
        ("", "hi", "7-days", ["user_handle_blank"]),
        (None, "hi", "7-days", ["user_handle_blank"]),
        ("   ", "hi", "7-days", ["user_handle_blank"]),
        ("andrewbrown", "", "7-days", ["message_blank"]),
        ("andrewbrown", None, "7-days", ["message_blank"]),
        ("andrewbrown", " \n ", "7-days", ["message_blank"]),
        ("andrewbrown", "x" * 281, "7-days", ["message_exceed_max_chars"]),
        ("", "", "forever", ["ttl_blank", "user_handle_blank", "message_blank"]),
        (None, "é" * 281, None, ["ttl_blank", "user_handle_blank", "message_exceed_max_chars"]),
        ("nobody", "hi", "7-days", ["user_not_found"]),
    ],
)
def test_refusals_give_their_codes_and_store_nothing(client_with_andrewbrown, schema_url, handle, message, ttl, errors):
    result = create_activity(client_with_andrewbrown, handle, message, ttl)
    assert result == {"errors": errors, "data": {"handle": handle, "message": message}}
    assert activity_count(schema_url) == 0


def test_created_activity_has_the_exact_shape(client_with_andrewbrown, schema_url):
    message = "m" * 280  # the longest allowed
    result = create_activity(client_with_andrewbrown, "andrewbrown", message, "7-days")
    assert result["errors"] is None
    data = result["data"]
    assert set(data) == CREATED_KEYS
    assert data["display_name"] == "Andrew Brown"
    assert data["handle"] == "andrewbrown"
    assert data["message"] == message
    assert get_activity(client_with_andrewbrown, data["uuid"]) == data
    with psycopg.connect(schema_url) as conn:
        stored = conn.execute("SELECT uuid::text, message FROM activities").fetchall()
    assert stored == [(data["uuid"], message)]


@pytest.mark.parametrize("ttl", list(TTLS))
def test_expires_at_minus_created_at_is_the_ttl(client_with_andrewbrown, schema_url, ttl):
    data = create_activity(client_with_andrewbrown, "andrewbrown", f"lives {ttl}", ttl)["data"]
    created = datetime.fromisoformat(data["created_at"])
    expires = datetime.fromisoformat(data["expires_at"])
    assert created.tzinfo is not None and expires.tzinfo is not None  # ISO 8601 with its offset
    assert expires - created == TTLS[ttl]
    with psycopg.connect(schema_url) as conn:
        interval = conn.execute("SELECT expires_at - created_at FROM activities WHERE uuid = %s", (data["uuid"],)).fetchone()[0]
    assert interval == TTLS[ttl]
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


def test_get_activity_unknown_is_empty(client_with_andrewbrown):
    assert get_activity(client_with_andrewbrown, "00000000-0000-0000-0000-000000000000") == {}


def test_home_feed_is_empty_list_on_an_empty_database(client_with_andrewbrown):
    assert home_activities(client_with_andrewbrown) == []


def test_home_feed_shape_and_newest_first(client_with_andrewbrown, schema_url):
    add_user(schema_url, "bayko", "Andrew Bayko")
    with psycopg.connect(schema_url) as conn:
        for handle, message, age in [("andrewbrown", "oldest", 3), ("bayko", "newest", 1), ("andrewbrown", "middle", 2)]:
            conn.execute(
                "INSERT INTO activities (user_uuid, message, created_at, expires_at, likes_count) "
                "SELECT uuid, %s, now() - %s * interval '1 hour', now() + interval '1 day', %s "
                "FROM users WHERE handle = %s",
                (message, age, age, handle),
            )
    feed = home_activities(client_with_andrewbrown)
    assert [a["message"] for a in feed] == ["newest", "middle", "oldest"]
    assert all(set(a) == FEED_KEYS for a in feed)
    newest = feed[0]
    assert (newest["handle"], newest["display_name"], newest["likes_count"]) == ("bayko", "Andrew Bayko", 1)
    assert (newest["replies_count"], newest["reposts_count"], newest["reply_to_activity_uuid"]) == (0, 0, None)
    created = [datetime.fromisoformat(a["created_at"]) for a in feed]
    assert created == sorted(created, reverse=True)


def test_home_feed_limit(client_with_andrewbrown, schema_url):
    with psycopg.connect(schema_url) as conn:
        conn.execute(
            "INSERT INTO activities (user_uuid, message, created_at) "
            "SELECT users.uuid, 'n' || n, now() - n * interval '1 second' "
            "FROM users, generate_series(1, %s) AS n",
            (HOME_FEED_LIMIT + 5,),
        )
    default = home_activities(client_with_andrewbrown)
    assert len(default) == HOME_FEED_LIMIT
    assert default[0]["message"] == "n1"
    assert len(home_activities(client_with_andrewbrown, None)) == HOME_FEED_LIMIT + 5
    assert [a["message"] for a in home_activities(client_with_andrewbrown, 2)] == ["n1", "n2"]
    assert home_activities(client_with_andrewbrown, 0) == home_activities(client_with_andrewbrown, None)  # as `inv db.activities --limit 0`
    assert count_activities(client_with_andrewbrown) == HOME_FEED_LIMIT + 5
    with pytest.raises(ValueError):
        home_activities(client_with_andrewbrown, -1)


def plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def test_home_feed_reads_its_index_in_order_without_sorting(client_with_andrewbrown, schema_url):
    # 10,000 activities, three to a second: ties on created_at that uuid must break.
    with psycopg.connect(schema_url) as conn:
        conn.execute(
            "INSERT INTO activities (user_uuid, message, created_at) "
            "SELECT users.uuid, 'n' || n, now() - (n / 3) * interval '1 second' "
            "FROM users, generate_series(1, 10000) AS n"
        )
        conn.execute("ANALYZE activities")
        explain = psycopg.ClientCursor(conn).execute(
            "EXPLAIN (FORMAT JSON) " + client_with_andrewbrown.template("activities", "home"), {"limit": HOME_FEED_LIMIT}
        )
        nodes = list(plan_nodes(explain.fetchone()[0][0]["Plan"]))
    assert not [n["Node Type"] for n in nodes if "Sort" in n["Node Type"]]
    assert ("Index Scan", "activities_created_at_idx") in [(n["Node Type"], n.get("Index Name")) for n in nodes]


def test_created_activities_appear_in_the_feed(client_with_andrewbrown):
    first = create_activity(client_with_andrewbrown, "andrewbrown", "first", "1-hour")["data"]
    feed = home_activities(client_with_andrewbrown)
    assert [a["uuid"] for a in feed] == [first["uuid"]]
    assert {k: feed[0][k] for k in CREATED_KEYS} == first


def test_many_threads_create_through_one_pool(client_with_andrewbrown, schema_url):
    threads_n, per_thread = 16, 25
    created, failures = [], []
    lock = threading.Lock()

    def work(n):
        try:
            for i in range(per_thread):
                result = create_activity(client_with_andrewbrown, "andrewbrown", f"thread {n} message {i}", "1-day")
                assert result["errors"] is None, result
                with lock:
                    created.append(result["data"]["uuid"])
        except Exception as e:  # collected, asserted below
            failures.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(set(created)) == threads_n * per_thread
    with psycopg.connect(schema_url) as conn:
        stored = {row[0] for row in conn.execute("SELECT uuid::text FROM activities")}
    assert stored == set(created)
    stats = client_with_andrewbrown.pool.get_stats()
    assert stats.get("requests_errors", 0) == 0
    assert stats.get("connections_lost", 0) == 0
    assert stats["pool_size"] <= 4


# What the Flask backend may pass on from a request's JSON: anything at all.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)
bad_text = st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=5), st.text(max_size=5)) | st.builds(
    lambda a, surrogate: a + surrogate, st.text(max_size=5), st.sampled_from(["\udcff", "\ud800", "\udfff"])
)
CODES = {
    "ttl_blank",
    "user_handle_blank",
    "user_handle_not_text",
    "user_handle_invalid_characters",
    "message_blank",
    "message_not_text",
    "message_invalid_characters",
    "message_exceed_max_chars",
    "user_not_found",
}


@given(
    handle=st.sampled_from(["andrewbrown"]) | json_values | bad_text,
    message=st.sampled_from(["hello"]) | json_values | bad_text,
    ttl=st.sampled_from(list(TTLS)) | json_values | bad_text,
)
@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_input_gets_error_codes_never_an_exception(client_with_andrewbrown, schema_url, handle, message, ttl):
    before = activity_count(schema_url)
    result = create_activity(client_with_andrewbrown, handle, message, ttl)
    if result["errors"] is None:
        assert result["data"]["message"] == message
        assert activity_count(schema_url) == before + 1
        return
    assert set(result["errors"]) <= CODES and result["errors"]
    assert result["data"] == {"handle": handle, "message": message}
    assert activity_count(schema_url) == before
    if not isinstance(message, str) and message is not None:
        assert "message_not_text" in result["errors"]
    if isinstance(message, str) and ("\x00" in message or any("\ud800" <= c <= "\udfff" for c in message)):
        assert "message_invalid_characters" in result["errors"]
    if not isinstance(ttl, str) or ttl not in TTLS:
        assert result["errors"][0] == "ttl_blank"


@pytest.mark.parametrize(
    "handle, message, errors",
    [
        (42, "hi", ["user_handle_not_text"]),
        ("andrewbrown", ["hi"], ["message_not_text"]),
        ("andrewbrown", "nul\x00byte", ["message_invalid_characters"]),
        ("andrewbrown", "caf\udcff", ["message_invalid_characters"]),
        ("andrew\x00brown", "hi", ["user_handle_invalid_characters"]),
    ],
)
def test_bad_text_has_its_own_codes(client_with_andrewbrown, handle, message, errors):
    assert create_activity(client_with_andrewbrown, handle, message, "7-days")["errors"] == errors
